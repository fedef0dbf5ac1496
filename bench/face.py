"""The face path, measured on real MELD clips: detectors, and how far FER2013's probabilities can be believed.

    .venv/bin/python bench/face.py [--clips DIR] [--fps 5] [--max-side 640] [--detect-sides 480 400]

For each detector (RetinaFace on the frames as sampled, the default; RetinaFace
shrunk to each of --detect-sides instead; OpenCV's Haar cascade, the fallback) it prints the
time per frame, the frames with a face, the faces found, and how often each agrees with the
default on the largest face (box centres within half a face width). Then, on the largest
RetinaFace face of each frame, FER2013's clip-level accuracy (mean over the clip's frames) and
its calibration: the mean negative log-likelihood of the clip's label, per frame, at several
temperatures, beside a uniform guess (log 7 = 1.95). A model whose likelihood is worse than
uniform at every temperature carries no measurable information there; that is why fusion relies
on the face only by a small measured weight (bench/fusion.py), and counts it only where it
departs from its baseline.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0, 64.0)


def frame_nll(log_probs: list[np.ndarray], labels: list[int], temperature: float) -> float:
    total = 0.0
    for lp, label in zip(log_probs, labels, strict=True):
        z = lp / temperature
        z = z - z.max()
        total -= z[label] - math.log(np.exp(z).sum())
    return total / max(len(labels), 1)


def main() -> None:
    from moodlens.faces import HaarDetector, RetinaFaceDetector, crop_face
    from moodlens.labels import EMOTIONS
    from moodlens.media import sample_frames
    from moodlens.models.face import load_face_expert

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--detect-sides", type=int, nargs="*", default=[640])
    args = parser.parse_args()
    if not (args.clips / "labels.csv").is_file():
        raise SystemExit(f"{args.clips}/labels.csv is absent: the MELD clips in ../shared are needed")
    with (args.clips / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))

    shipped = f"RetinaFace {args.max_side}"
    detectors = {shipped: RetinaFaceDetector(),
                 **{f"RetinaFace {side}": RetinaFaceDetector(max_side=side) for side in args.detect_sides
                    if side < args.max_side},
                 "Haar": HaarDetector()}
    fer = load_face_expert()
    seconds = dict.fromkeys(detectors, 0.0)
    found = dict.fromkeys(detectors, 0)
    faces = dict.fromkeys(detectors, 0)
    agree, both = dict.fromkeys(detectors, 0), dict.fromkeys(detectors, 0)
    frames = 0
    log_probs: list[np.ndarray] = []
    labels: list[int] = []
    clip_hits = clips_with_face = 0
    for row in rows:
        path = args.clips / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
        label = EMOTIONS.index(row["Emotion"].strip().lower())
        clip_probs = []
        for frame in sample_frames(path, args.fps, args.max_side):
            frames += 1
            boxes = {}
            for name, detector in detectors.items():
                started = time.perf_counter()
                boxes[name] = detector.detect(frame.image)
                seconds[name] += time.perf_counter() - started
                found[name] += bool(boxes[name])
                faces[name] += len(boxes[name])
            retina = boxes[shipped]
            for name, other in boxes.items():
                if retina and other:
                    both[name] += 1
                    a, b = retina[0], other[0]
                    distance = math.hypot(a.x + a.width / 2 - b.x - b.width / 2,
                                          a.y + a.height / 2 - b.y - b.height / 2)
                    agree[name] += distance < a.width / 2
            if retina:
                probs = fer.predict([crop_face(frame.image, retina[0])])[0]
                clip_probs.append(probs)
                log_probs.append(np.log(np.clip(probs, 1e-6, 1.0)))
                labels.append(label)
        if clip_probs:
            clips_with_face += 1
            clip_hits += int(np.mean(clip_probs, axis=0).argmax() == label)

    print(f"{len(rows)} MELD clips, {frames} frames at {args.fps:g} fps, longer side {args.max_side} px")
    print(f"{'detector':16} {'ms/frame':>9} {'frames with a face':>20} {'faces':>6}  "
          f"largest face agrees with {shipped}")
    for name in detectors:
        print(f"{name:16} {1000 * seconds[name] / max(frames, 1):9.1f} {found[name]:>12}/{frames:<7} "
              f"{faces[name]:>6}  {agree[name]}/{both[name]}")
    print(f"FER2013 on RetinaFace crops: clip-level accuracy {clip_hits}/{clips_with_face} (chance 1/7)")
    print("frame-level NLL of the clip's label: " + ", ".join(
        f"T={t:g}: {frame_nll(log_probs, labels, t):.3f}" for t in TEMPERATURES) + f"; uniform {math.log(7):.3f}")


if __name__ == "__main__":
    main()
