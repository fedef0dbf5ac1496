"""What a command-line user waits for: one `moodlens analyze` in a fresh process.

    .venv/bin/python bench/first_file.py [--repeat R] [PATH]

It runs `python -m moodlens.cli analyze PATH` R times (default 3), each in a new process, and
prints the wall time of each: Python and torch imports, model loading, the first file's
first-call costs (lazy imports, kernels built on first use) and writing the outputs, which
bench/realtime_factor.py leaves out by timing warm files. PATH defaults to the demo video.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEMO)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from moodlens.media import probe

    duration = probe(args.path).duration
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "moodlens.cli", "analyze", str(args.path), "--out", out],
                           check=True, capture_output=True)
            runs.append(time.perf_counter() - began)
    print(f"{args.path.name}: {duration:.1f} s of media; `moodlens analyze` in a fresh process, {args.repeat} runs")
    print("seconds  " + "  ".join(f"{r:.2f}" for r in runs))
    median = statistics.median(runs)
    print(f"median {median:.2f} s, {median / duration:.3f} of the media's duration")


if __name__ == "__main__":
    main()
