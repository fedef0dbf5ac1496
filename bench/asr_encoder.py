"""Whisper's encoder, CTranslate2 int8 against torch bf16 (models/whisper_encoder.py), each on the
whole 30 s window and on the speech plus 10 s of padding (utterances.shorten_windows): speed and WER.

    .venv/bin/python bench/asr_encoder.py [--ravdess-per-actor 5] [--repeat 5] [--padding 30,10]

Prints, for each encoder and padding: the seconds of one encoder pass over the window of the
first MELD clip (2.3 s of speech; median of --repeat), the ASR seconds over the 11 MELD test
clips in ../shared, and the word error rate on those clips (all 11, and the 7 whose audio is
their CSV line, as tests/test_meld_clips.py splits them) and on RAVDESS speech in ../shared
(--ravdess-per-actor files from each of actors 1-20; every file reads one of two known
sentences). The decoder, beam search and word alignment are CTranslate2's in all. Each encoder
runs in a process of its own, set up as `analyze` sets it up (CTranslate2 on one thread beside
the torch encoder, on all of them alone; numpy's BLAS on one thread): the two share one libgomp,
and a CTranslate2 thread team slows torch for the rest of a process.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from moodlens.asr import TranscribeOptions

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
MELD_CLIPS = SHARED / "meld" / "media" / "test"
RAVDESS = SHARED / "speech" / "ravdess"
ENCODERS = ("CTranslate2 int8", "torch bf16")
sys.path.insert(0, str(ROOT))
from tests.test_meld_clips import aligned, word_errors, words  # noqa: E402

STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ravdess-per-actor", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--padding", default="30,10", help="seconds of padding the encoder reads, comma-separated")
    parser.add_argument("--encoder", choices=ENCODERS, help="measure this one only, in this process")
    args = parser.parse_args()
    paddings = [float(p) for p in args.padding.split(",")]
    if not (MELD_CLIPS / "labels.csv").is_file() or not RAVDESS.is_dir():
        raise SystemExit(f"the MELD clips ({MELD_CLIPS}) and RAVDESS speech ({RAVDESS}) in ../shared are needed")
    if args.encoder is None:
        print(f"{'encoder':22} {'padding':>7} {'pass s':>7} {'MELD ASR s':>10} {'MELD WER':>9} {'7 aligned':>9} "
              f"{'RAVDESS WER':>11}", flush=True)
        for name in ENCODERS:
            subprocess.run([sys.executable, __file__, "--encoder", name, "--repeat", str(args.repeat),
                            "--ravdess-per-actor", str(args.ravdess_per_actor), "--padding", args.padding],
                           check=True)
        return
    from faster_whisper.audio import pad_or_trim
    from threadpoolctl import threadpool_limits

    from moodlens.asr import TranscribeOptions, load_asr_model
    from moodlens.media import probe, read_audio
    from moodlens.runtime import fast_bf16

    os.environ["MOODLENS_BF16"] = "1" if args.encoder == "torch bf16" else "0"
    fast_bf16.cache_clear()
    with (MELD_CLIPS / "labels.csv").open(newline="", encoding="utf-8") as handle:
        paths = [(row, MELD_CLIPS / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4")
                 for row in csv.DictReader(handle)]
    meld = [(row, read_audio(path), aligned(row, probe(path).duration)) for row, path in paths]
    every = max(1, 60 // args.ravdess_per_actor)  # spread over emotions and both statements
    ravdess = [(STATEMENTS[path.stem.split("-")[4]], read_audio(path))
               for actor in sorted(RAVDESS.glob("Actor_*"))
               for path in sorted(actor.glob("*.flac"))[::every][: args.ravdess_per_actor]]
    for padding in paddings:
        options = TranscribeOptions(padding_seconds=padding)
        model = load_asr_model(options)
        if hasattr(model, "torch_encoder") != (args.encoder == "torch bf16"):
            raise SystemExit(f"{args.encoder}: not what analyze runs here (MOODLENS_BF16 was forced)")
        window = pad_or_trim(model.feature_extractor(meld[0][1]))
        with threadpool_limits(1, user_api="blas"):
            model.encode(window)
            passes = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                model.encode(window)
                passes.append(time.perf_counter() - began)
            began = time.perf_counter()
            meld_words = [(words(row["Utterance"]), heard(model, audio, options), matches)
                          for row, audio, matches in meld]
            meld_seconds = time.perf_counter() - began
            ravdess_words = [(words(sentence), heard(model, audio, options)) for sentence, audio in ravdess]
        print(f"{args.encoder:22} {padding:6g}s {statistics.median(passes):7.3f} {meld_seconds:10.2f} "
              f"{rate(meld_words):>9} {rate([p for p in meld_words if p[2]]):>9} {rate(ravdess_words):>11}  "
              f"({len(meld)} MELD clips, {len(ravdess)} RAVDESS files; pass: median of {args.repeat})", flush=True)


def heard(model: WhisperModel, samples: np.ndarray, options: TranscribeOptions) -> list[str]:
    from moodlens.asr import _transcribe_piece

    return words(" ".join(u.text for u in _transcribe_piece(model, samples, 0.0, options)))


def rate(pairs: list) -> str:
    errors = sum(word_errors(ref, hyp) for ref, hyp, *_ in pairs)
    total = sum(len(ref) for ref, *_ in pairs)
    return f"{errors / total:.3f}"


if __name__ == "__main__":
    main()
