"""The face model exported to ONNX (`moodlens export face`) against the torch original, on real faces.

    .venv/bin/python bench/export_face.py [--clips DIR]

Collects every clear RetinaFace face at 2 fps in the MELD test clips in ../shared, then prints
how far the export's probabilities are from torch's (largest difference, argmax agreement) and
the time per call of each with one face and with four (the face expert calls the model once per
frame, with that frame's faces).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    args = parser.parse_args()
    clips = sorted(args.clips.glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no .mp4 clips in {args.clips}: the MELD clips in ../shared are needed")

    from moodlens.export import export_face
    from moodlens.faces import crop_face, detect_faces
    from moodlens.media import sample_frames
    from moodlens.models.face import FaceExpert, load_face_expert

    crops = [crop_face(frame.image, box) for clip in clips for frame in sample_frames(clip, 2.0)
             for box in detect_faces(frame.image)]
    with tempfile.TemporaryDirectory() as tmp:
        report = export_face(Path(tmp) / "face")
        models = {"torch": FaceExpert(), "ONNX float32": load_face_expert(report.folder)}
        probs = {name: model.predict(crops) for name, model in models.items()}
        print(f"{len(crops)} faces from {len(clips)} clips; export {report.size_bytes / 1e3:.0f} KB")
        print(f"largest |dp| {np.abs(probs['torch'] - probs['ONNX float32']).max():.2e}, argmax agrees on "
              f"{(probs['torch'].argmax(1) == probs['ONNX float32'].argmax(1)).mean():.3f}")
        print(f"{'model':14}{'ms per call, 1 face':>22}{'4 faces':>10}")
        for name, model in models.items():
            times = []
            for n in (1, 4):
                model.predict(crops[:n])
                started = time.perf_counter()
                calls = 0
                for _ in range(3):
                    for i in range(0, len(crops) - n + 1, n):
                        model.predict(crops[i:i + n])
                        calls += 1
                times.append(1000 * (time.perf_counter() - started) / calls)
            print(f"{name:14}{times[0]:>22.2f}{times[1]:>10.2f}")


if __name__ == "__main__":
    main()
