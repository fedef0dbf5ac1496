"""Throughput of `moodlens batch` (Ray) against `moodlens analyze` on the same files.

    .venv/bin/python bench/batch_throughput.py [--concurrency 1 2] [--copies N] [--device cpu|cuda] [PATH ...]

With no paths it uses the 11 MELD test clips in ../shared. --copies repeats the list (as
distinct files, so nothing is skipped) to give the workers a longer queue. Each command runs
in its own process, as a user runs it, with fresh output folders. It prints videos per minute
for each, and where the batch's time goes: starting Ray and loading the models in the workers
(the time to the first result, less that input's own analysis), then the analyses themselves.
--device cuda runs both on the GPU (the batch's workers share it: batch.gpu_share).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
MOODLENS = Path(sys.executable).parent / "moodlens"
ITEM = re.compile(r"^\[\d+/\d+\] .+ -> .+ \((?P<seconds>[\d.]+) s\)$")


def timed(command: list[str]) -> tuple[float, list[tuple[float, str]]]:
    """Wall seconds, and each stdout line with the second it arrived."""
    started = time.monotonic()
    env = {**os.environ, "COLUMNS": "400", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    lines = [(time.monotonic() - started, line.rstrip()) for line in process.stdout]
    if process.wait() not in (0, 1):
        raise SystemExit(f"{' '.join(command[:2])} failed with exit code {process.returncode}")
    return time.monotonic() - started, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    sources = args.paths or sorted(CLIPS.glob("*.mp4"))
    if not sources:
        raise SystemExit(f"no inputs: give paths, or put the MELD clips in {CLIPS}")
    work = Path(tempfile.mkdtemp(prefix="moodlens-throughput-"))
    try:
        inputs = work / "inputs"
        inputs.mkdir()
        for copy in range(args.copies):
            for source in sources:
                (inputs / f"{source.stem}-{copy}{source.suffix}").symlink_to(source.resolve())
        count = len(sources) * args.copies
        print(f"{count} inputs ({len(sources)} files x {args.copies}), {os.cpu_count()} cores, device {args.device}")
        seconds, _ = timed([str(MOODLENS), "analyze", str(inputs), "--out", str(work / "analyze"),
                            "--device", args.device])
        print(f"{'moodlens analyze (one process)':40} {seconds:7.1f} s  {60 * count / seconds:6.1f} videos/min")
        for concurrency in args.concurrency:
            seconds, lines = timed([str(MOODLENS), "batch", str(inputs), "--out", str(work / f"batch-{concurrency}"),
                                    "--concurrency", str(concurrency), "--device", args.device])
            items = [(at, float(m["seconds"])) for at, line in lines if (m := ITEM.match(line))]
            if len(items) != count:
                raise SystemExit(f"batch reported {len(items)} analysed inputs of {count}")
            startup = items[0][0] - items[0][1]
            busy = sum(s for _, s in items)
            print(f"{f'moodlens batch --concurrency {concurrency}':40} {seconds:7.1f} s  "
                  f"{60 * count / seconds:6.1f} videos/min  (Ray start + model loading {startup:.1f} s; "
                  f"analyses {busy:.1f} worker-seconds, {busy / count:.2f} s per video)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
