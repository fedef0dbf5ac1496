"""Real-time factor of `moodlens analyze`: analysis seconds / media seconds.

    .venv/bin/python bench/realtime_factor.py [--threads N] [--repeat R] [--modalities text,face,voice]
        [--device cpu|cuda] [--language auto|en|...] [--cpu-isa native|avx2] [PATH ...]

With no paths, it measures the demo video and the 11 MELD test clips in ../shared (where
present). Model loading is timed once, apart; each file is then analysed R times and the
median is kept, so the figure is the steady-state cost a batch or server sees. --modalities
runs only those experts (as `analyze --modalities` does); the issue's targets are for all three.
--language en skips telling the language (the English path alone); auto is what users get.
The last column is throughput: files analysed per minute, one after another in this process.

--cpu-isa avx2 runs this machine as an AVX2-only CPU would (no AVX-512, no bf16), the class of
many users' CPUs: it caps oneDNN (torch), CTranslate2, MKL and OpenBLAS at AVX2 and turns bf16
off (MOODLENS_BF16=0) before they load. onnxruntime (Silero VAD, the face detector) has no such
cap and keeps its own dispatch, so the figure is a little optimistic.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.mp4"
MELD_CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modalities", default="text,face,voice")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--language", default="auto")
    parser.add_argument("--cpu-isa", choices=("native", "avx2"), default="native")
    args = parser.parse_args()
    if args.cpu_isa == "avx2":
        from moodlens.runtime import AVX2_ONLY  # imports nothing numeric

        os.environ.update(AVX2_ONLY)
    os.environ["MOODLENS_THREADS"] = str(args.threads)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    import torch

    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import analyze, warm_up
    from moodlens.process import keep_memory_flat

    keep_memory_flat()  # as the CLI does
    torch.set_num_threads(args.threads)
    options = AnalyzeOptions(modalities=tuple(args.modalities.split(",")), device=args.device, language=args.language)
    start = time.perf_counter()
    warm_up(options)  # every model analyze uses: text, face detector and classifier, ASR, voice head
    load_seconds = time.perf_counter() - start

    groups: dict[str, list[Path]] = {}
    if args.paths:
        groups["given"] = args.paths
    else:
        groups["demo"] = [DEMO]
        clips = sorted(MELD_CLIPS.glob("*.mp4"))
        if clips:
            groups["MELD test clips"] = clips
        else:
            print(f"(skipping MELD clips: {MELD_CLIPS} is absent)")

    print(f"CPU threads {args.threads}; instruction set {args.cpu_isa}; device {args.device}; "
          f"modalities {args.modalities}; "
          f"model loading {load_seconds:.2f} s (once per process)")
    print(f"{'group':<16} {'files':>5} {'media s':>8} {'analysis s':>10} {'RTF':>6} {'files/min':>9}")
    for name, paths in groups.items():
        media = spent = 0.0
        for path in paths:
            runs = []
            for _ in range(args.repeat):
                begin = time.perf_counter()
                analysis = analyze(path, options)
                runs.append(time.perf_counter() - begin)
            media += analysis.media.duration
            spent += statistics.median(runs)
        print(f"{name:<16} {len(paths):>5} {media:>8.2f} {spent:>10.2f} {spent / media:>6.3f} "
              f"{60 * len(paths) / spent:>9.1f}")


if __name__ == "__main__":
    main()
