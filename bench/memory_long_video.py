"""Peak memory of `analyze` against video length: it must stay flat, because media streams.

    .venv/bin/python bench/memory_long_video.py [--repeats 1 4 16]

It builds videos of the demo repeated N times (about 22 s each time, speech and a face
throughout), analyses each in a fresh process, and prints peak RSS and the ratio to the
shortest. The videos are written to a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.mp4"

MEASURE = """
import json, resource, sys, time
from moodlens.pipeline import analyze
from moodlens.process import keep_memory_flat
keep_memory_flat()  # as the CLI does
start = time.perf_counter()
analysis = analyze(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start,
                  "duration": analysis.media.duration,
                  "utterances": len(analysis.utterances),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def repeat_demo(out: Path, times: int) -> None:
    """Re-encode the demo `times` times in a row (frames and audio held for one copy only)."""
    with av.open(str(DEMO)) as source:
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    with av.open(str(DEMO)) as source:
        rate = source.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in source.decode(audio=0)])
    with av.open(str(out), "w") as target:
        video = target.add_stream("libx264", rate=25)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        sound = target.add_stream("aac", rate=rate)
        sound.layout = "mono"
        for _ in range(times):
            for image in frames:
                target.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        target.mux(video.encode())
        block = 1024
        for copy in range(times):
            for start in range(0, audio.size, block):
                frame = av.AudioFrame.from_ndarray(audio[None, start : start + block].astype(np.float32),
                                                   format="flt", layout="mono")
                frame.sample_rate = rate
                frame.pts = copy * audio.size + start
                target.mux(sound.encode(frame))
        target.mux(sound.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 16, 32])
    args = parser.parse_args()
    print(f"{'repeats':>7} {'video s':>8} {'utterances':>10} {'analysis s':>10} {'peak MB':>8} {'ratio':>6}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for times in args.repeats:
            path = Path(tmp) / f"demo_x{times}.mp4"
            begin = time.perf_counter()
            repeat_demo(path, times)
            build = time.perf_counter() - begin
            result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True,
                                    text=True, check=True)
            row = json.loads(result.stdout.strip().splitlines()[-1])
            base = base or row["peak_mb"]
            print(f"{times:>7} {row['duration']:>8.1f} {row['utterances']:>10} {row['seconds']:>10.1f} "
                  f"{row['peak_mb']:>8.0f} {row['peak_mb'] / base:>6.2f}   (built in {build:.0f} s)")
            path.unlink()


if __name__ == "__main__":
    main()
