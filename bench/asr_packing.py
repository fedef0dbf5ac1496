"""ASR on short clips packed into one Whisper window, against each clip alone: faster, but worse.

    .venv/bin/python bench/asr_packing.py [--clips DIR] [--gap 1.0 2.0]

Whisper's encoder always reads a 30 s window, so a 2 s clip pays for 28 s of padding (about
0.3 s of the 0.4 s a MELD clip's ASR costs on 2 cores). Packing several clips into one window,
with GAP seconds of silence between them, and giving each clip the words whose middle falls in
its span, would share that cost across files. This prints, for the 11 MELD test clips in
../shared: the ASR seconds and word error rate alone and packed (in file order and reversed,
per gap), and every clip whose words changed. WER is over all clips and over the 7 whose audio
is their CSV line (tests/test_meld_clips.py's split).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
WINDOW = 28.0  # seconds of clips per window, leaving room in Whisper's 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    parser.add_argument("--gap", type=float, nargs="+", default=[1.0, 2.0])
    args = parser.parse_args()
    if not (args.clips / "labels.csv").is_file():
        raise SystemExit(f"{args.clips}/labels.csv is absent: the MELD clips in ../shared are needed")
    sys.path.insert(0, str(ROOT))
    from tests.test_meld_clips import aligned, clip_name, word_errors, words

    from moodlens.asr import TranscribeOptions, load_asr_model
    from moodlens.media import SAMPLE_RATE, read_audio

    with (args.clips / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    audio = [read_audio(args.clips / f"{clip_name(row)}.mp4") for row in rows]
    model = load_asr_model(TranscribeOptions())

    def timed_words(samples: np.ndarray) -> list:
        segments, _ = model.transcribe(samples, language="en", beam_size=1, vad_filter=True,
                                       condition_on_previous_text=False, word_timestamps=True)
        return [word for segment in segments for word in segment.words or []]

    def wer(hypotheses: list[str]) -> str:
        errors = [word_errors(words(row["Utterance"]), words(h)) for row, h in zip(rows, hypotheses, strict=True)]
        lengths = [len(words(row["Utterance"])) for row in rows]
        keep = [aligned(row, len(a) / SAMPLE_RATE) for row, a in zip(rows, audio, strict=True)]
        kept_errors = sum(e for e, k in zip(errors, keep, strict=True) if k)
        kept_words = sum(n for n, k in zip(lengths, keep, strict=True) if k)
        return (f"WER {sum(errors) / sum(lengths):.2f} all, "
                f"{kept_errors / kept_words:.2f} aligned ({kept_errors}/{kept_words})")

    def packed(order: list[int], gap: float) -> list[str]:
        hypotheses = [""] * len(audio)
        i = 0
        while i < len(order):
            parts, spans, at = [], [], 0.0
            while i < len(order) and (at + len(audio[order[i]]) / SAMPLE_RATE <= WINDOW or not spans):
                clip = audio[order[i]]
                spans.append((order[i], at, at + len(clip) / SAMPLE_RATE))
                parts += [clip, np.zeros(int(gap * SAMPLE_RATE), np.float32)]
                at += len(clip) / SAMPLE_RATE + gap
                i += 1
            for word in timed_words(np.concatenate(parts)):
                middle = (word.start + word.end) / 2
                for k, start, end in spans:
                    if start - gap / 2 <= middle < end + gap / 2:
                        hypotheses[k] += word.word
        return hypotheses

    timed_words(audio[0])  # warm
    started = time.perf_counter()
    alone = ["".join(w.word for w in timed_words(a)) for a in audio]
    print(f"{len(rows)} clips, {sum(map(len, audio)) / SAMPLE_RATE:.1f} s of audio")
    print(f"alone:  ASR {time.perf_counter() - started:5.2f} s, {wer(alone)}")
    for gap in args.gap:
        for name, order in (("in order", list(range(len(audio)))), ("reversed", list(range(len(audio)))[::-1])):
            started = time.perf_counter()
            hypotheses = packed(order, gap)
            print(f"packed, gap {gap:g} s, {name}: ASR {time.perf_counter() - started:5.2f} s, {wer(hypotheses)}")
            for row, a, b in zip(rows, alone, hypotheses, strict=True):
                if words(a) != words(b):
                    print(f"    {clip_name(row):14} alone: {a.strip()!r}  packed: {b.strip()!r}")


if __name__ == "__main__":
    main()
