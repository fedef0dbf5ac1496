"""Fuzz `moodlens analyze` with damaged copies of real clips.

    .venv/bin/python bench/fuzz_media.py N [--seed S] [--out DIR] [--json] [SOURCE ...]

Writes N mutated copies of real media (the MELD test clips in ../shared and the demo, or the
SOURCEs given): truncation, flipped header bytes, flipped bytes mid-stream, zeroed ranges,
repeated chunks and a junk prefix. Then it runs them through `moodlens analyze` as one batch
(in slices of --slice files, each a single process, so models load once per slice) and prints:

    analysed       files that got an analysis (complete, or partial with a one-line error)
    one-line errors  files refused with one `error: PATH: reason` line
    internal errors  one-line errors that hide an unexpected exception ("analysis failed (...)")
    tracebacks     Python tracebacks printed (must be 0)
    hangs          files that did not finish within --file-timeout seconds (must be 0)
    crashes        processes that died on a signal (must be 0)
    seconds        wall time of the analyses

A hang ends its slice: the files after it run again in a fresh process, so one stuck file is
counted once and the rest are still tried.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MELD_CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
DEMO = ROOT / "examples" / "demo.mp4"

Mutation = Callable[[bytearray, random.Random], bytearray]


def truncate(data: bytearray, rng: random.Random) -> bytearray:
    return data[: rng.randint(1, len(data) - 1)]


def flip_header(data: bytearray, rng: random.Random) -> bytearray:
    for _ in range(rng.randint(1, 16)):
        data[rng.randrange(min(len(data), 4096))] ^= 1 << rng.randrange(8)
    return data


def flip_middle(data: bytearray, rng: random.Random) -> bytearray:
    start = rng.randrange(len(data) // 4, 3 * len(data) // 4)
    for i in range(start, min(len(data), start + rng.choice((1, 16, 256)))):
        data[i] ^= 0xFF
    return data


def zero_range(data: bytearray, rng: random.Random) -> bytearray:
    start = rng.randrange(len(data))
    size = rng.choice((64, 4096, 65536, len(data) // 3))
    data[start : start + size] = bytes(len(data[start : start + size]))
    return data


def repeat_chunk(data: bytearray, rng: random.Random) -> bytearray:
    start = rng.randrange(len(data))
    chunk = data[start : start + rng.choice((512, 8192, 65536))]
    return data[:start] + chunk * rng.randint(2, 4) + data[start:]


def junk_prefix(data: bytearray, rng: random.Random) -> bytearray:
    return bytearray(rng.randbytes(rng.choice((1, 7, 512, 4096)))) + data


MUTATIONS: dict[str, Mutation] = {
    "truncate": truncate, "flip_header": flip_header, "flip_middle": flip_middle,
    "zero_range": zero_range, "repeat_chunk": repeat_chunk, "junk_prefix": junk_prefix,
}


def default_sources() -> list[Path]:
    sources = sorted(MELD_CLIPS.glob("*.mp4")) if MELD_CLIPS.is_dir() else []
    return [*sources, DEMO] if DEMO.is_file() else sources


def write_mutants(sources: list[Path], count: int, seed: int, folder: Path) -> list[Path]:
    """N mutated copies, named after their source and mutation; the same seed writes the same bytes."""
    rng = random.Random(seed)
    originals = {s: s.read_bytes() for s in sources}
    written = []
    for index in range(count):
        source = sources[index % len(sources)]
        name = sorted(MUTATIONS)[rng.randrange(len(MUTATIONS))]
        data = MUTATIONS[name](bytearray(originals[source]), rng)
        path = folder / f"{index:04d}-{name}-{source.stem}{source.suffix}"
        path.write_bytes(bytes(data))
        written.append(path)
    return written


@dataclass
class Summary:
    files: int = 0
    analysed: int = 0
    one_line_errors: int = 0
    internal_errors: int = 0
    tracebacks: int = 0
    hangs: int = 0
    crashes: int = 0
    seconds: float = 0.0
    by_mutation: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # one-line errors, numbers masked
    problems: list[str] = field(default_factory=list)

    def count(self, path: Path, outcome: str) -> None:
        mutation = path.name.split("-")[1]
        bucket = self.by_mutation.setdefault(mutation, {})
        bucket[outcome] = bucket.get(outcome, 0) + 1


def run_slice(files: list[Path], out: Path, file_timeout: float, summary: Summary) -> list[Path]:
    """Analyse `files` in one process; returns the files still to do after a hang or crash."""
    command = [sys.executable, "-m", "moodlens.cli", "analyze", *map(str, files), "--out", str(out),
               "--format", "json"]
    started = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace",
                                timeout=30 + file_timeout * len(files))
        stderr, code = result.stderr, result.returncode
        timed_out = False
    except subprocess.TimeoutExpired as err:
        stderr = (err.stderr or b"").decode(errors="replace") if isinstance(err.stderr, bytes) else (err.stderr or "")
        code, timed_out = None, True
    summary.seconds += time.monotonic() - started
    summary.tracebacks += stderr.count("Traceback (most recent call last)")
    if "Traceback (most recent call last)" in stderr:
        summary.problems.append(stderr[stderr.index("Traceback"):][:2000])
    done: set[Path] = set()
    for path in files:
        if (out / f"{path.stem}.analysis.json").is_file():
            done.add(path)
            summary.analysed += 1
            summary.count(path, "analysed")
    for line in stderr.splitlines():
        match = re.match(r"error: (.+?\.\w+): (.*)$", line)
        if not match:
            continue
        path = Path(match.group(1))
        if path not in files or path in done:
            continue  # an analysed file's "partial results written" line is counted as analysed
        done.add(path)
        summary.one_line_errors += 1
        summary.count(path, "error")
        reason = re.sub(r"\d+(\.\d+)?", "N", match.group(2))
        summary.reasons[reason] = summary.reasons.get(reason, 0) + 1
        if "analysis failed (" in match.group(2):
            summary.internal_errors += 1
            summary.problems.append(line)
    if timed_out or (code is not None and code < 0):
        # the first file with no outcome is the one it stopped on
        stuck = next((p for p in files if p not in done), None)
        if stuck is not None:
            if timed_out:
                summary.hangs += 1
                summary.count(stuck, "hang")
            else:
                summary.crashes += 1
                summary.count(stuck, "crash")
            summary.problems.append(f"{'hang' if timed_out else f'signal {-code}'}: {stuck}")
            return [p for p in files[files.index(stuck) + 1:] if p not in done]
    return []


def fuzz(count: int, seed: int, folder: Path, sources: list[Path], slice_size: int,
         file_timeout: float) -> Summary:
    inputs = folder / "inputs"
    out = folder / "out"
    inputs.mkdir(parents=True, exist_ok=True)
    out.mkdir(exist_ok=True)
    files = write_mutants(sources, count, seed, inputs)
    summary = Summary(files=len(files))
    for begin in range(0, len(files), slice_size):
        todo = files[begin : begin + slice_size]
        while todo:
            todo = run_slice(todo, out, file_timeout, summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("sources", nargs="*", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="Keep the mutants and outputs here (default: a temp folder).")
    parser.add_argument("--slice", type=int, default=100, help="Files per analyze process.")
    parser.add_argument("--file-timeout", type=float, default=60.0, help="Seconds a file may take.")
    parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")
    args = parser.parse_args()
    sources = args.sources or default_sources()
    if not sources:
        sys.exit("no sources: give media files, or put the MELD clips in ../shared")
    with tempfile.TemporaryDirectory(prefix="moodlens-fuzz-") as temp:
        folder = args.out or Path(temp)
        summary = fuzz(args.count, args.seed, folder, sources, args.slice, args.file_timeout)
    if args.json:
        print(json.dumps(asdict(summary), indent=2))
        return
    print(f"{summary.files} mutated files (seed {args.seed}) from {len(sources)} sources")
    for key in ("analysed", "one_line_errors", "internal_errors", "tracebacks", "hangs", "crashes"):
        print(f"  {key.replace('_', ' '):16} {getattr(summary, key)}")
    print(f"  {'seconds':16} {summary.seconds:.1f}")
    for mutation, outcomes in sorted(summary.by_mutation.items()):
        print(f"  {mutation:14} " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    for reason, times in sorted(summary.reasons.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {times:5d} x {reason}")
    for problem in summary.problems[:20]:
        print(f"problem: {problem}")


if __name__ == "__main__":
    main()
