"""Where `moodlens analyze` spends its time, stage by stage, warm (models already loaded).

    .venv/bin/python bench/stage_profile.py [--device cpu|cuda] [--mmap-threshold BYTES] [--repeat R] [PATH ...]

With no paths: the demo and the 11 MELD test clips in ../shared. Each stage is timed from the
pipeline's own progress reports (the time from a stage's first report to the next stage's),
plus writing the JSON, CSV and SRT files. Every file is analysed once to warm up, then R times;
the median per stage is kept. --mmap-threshold sets glibc's threshold (default: what the CLI
sets, moodlens.process.DEFAULT_THRESHOLD), or 0 to leave glibc's own dynamic threshold, to show
what flat memory costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moodlens.options import AnalyzeOptions

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.mp4"
MELD_CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"


def profile_once(path: Path, out: Path, options: AnalyzeOptions) -> dict[str, float]:
    from moodlens.pipeline import analyze
    from moodlens.writers import write

    marks: list[tuple[str, float]] = []

    def report(stage: str, done: float) -> None:
        if not marks or marks[-1][0] != stage:
            marks.append((stage, time.perf_counter()))

    began = time.perf_counter()
    analysis = analyze(path, options, progress=report)
    analysed = time.perf_counter()
    write(analysis, out, ["json", "csv", "srt"])
    seconds: dict[str, float] = defaultdict(float)
    ends = [t for _, t in marks[1:]] + [analysed]
    for (stage, start), end in zip(marks, ends, strict=True):
        seconds[stage] += end - start
    seconds["(before the first stage)"] = marks[0][1] - began if marks else 0.0
    seconds["writing"] = time.perf_counter() - analysed
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--mmap-threshold", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import warm_up
    from moodlens.process import DEFAULT_THRESHOLD, limit_heap_growth

    threshold = DEFAULT_THRESHOLD if args.mmap_threshold is None else args.mmap_threshold
    if threshold > 0:
        limit_heap_growth(threshold)
    started = time.perf_counter()
    options = AnalyzeOptions(device=args.device)
    warm_up(options)
    loading = time.perf_counter() - started
    paths = args.paths or [DEMO, *sorted(MELD_CLIPS.glob("*.mp4"))]
    totals: dict[str, float] = defaultdict(float)
    media = 0.0
    with tempfile.TemporaryDirectory() as out:
        from moodlens.media import probe

        for path in paths:
            media += probe(path).duration
            profile_once(path, Path(out), options)  # warm: first-call costs are not per-file costs
            runs = [profile_once(path, Path(out), options) for _ in range(args.repeat)]
            for stage in runs[0]:
                totals[stage] += statistics.median(r.get(stage, 0.0) for r in runs)
    total = sum(totals.values())
    described = f"{threshold} bytes" if threshold > 0 else "glibc's default (dynamic)"
    print(f"{len(paths)} files, {media:.1f} s of media, mmap threshold {described}, "
          f"{os.cpu_count()} cores, device {args.device}; models loaded in {loading:.2f} s (warm_up, once per process)")
    print(f"{'stage':<26} {'seconds':>8} {'share':>6} {'RTF':>6}")
    for stage, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"{stage:<26} {seconds:8.2f} {seconds / total:6.1%} {seconds / media:6.3f}")
    print(f"{'all':<26} {total:8.2f} {1:6.1%} {total / media:6.3f}")


if __name__ == "__main__":
    main()
