"""Audio against the true transcript, on MELD dev dialogues spoken by espeak-ng.

    .venv/bin/python bench/spoken_dialogues.py [--dialogues 40] [--seed 0] [--cache DIR]
                                               [--turn-gap S ...] [--modalities text,voice]
                                               [--text-weights FILE] [--asr-model NAME]
                                               [--true-speakers] [--whisper-times] [--live]

It builds each dialogue as one 16 kHz wav (scripts/spoken_dialogues.py: one espeak-ng voice per
speaker, a seeded turn gap between lines) with an SRT of its true lines, then analyses every wav
twice: from the audio (speech recognition, what users get) and with the SRT as the transcript.
Each true line takes the overlap-weighted mean of the distributions of the analysed utterances
that overlap it (a line that none overlaps counts as wrong), and the bench prints weighted F1 of
emotion and sentiment on the lines for each path, the ratio audio / transcript (the target is
0.92 or more), and the word error rate of the audio path.

The text path is what the ratio is about: the speech is clean and synthetic, so the loss is
segmentation and context, not noise. Fused figures are printed beside it; espeak-ng's voice is
out of the voice expert's domain, so they say what fusion does with an untrusted voice, not how
real voices sound. MELD test dialogues are held back: this is dev.

A change of voice ends a turn (turns.group_turns). The bench counts the quick steps between two
people's lines (a pause no longer than the turn gap) and how many of them the voices (CAM++)
told apart; `--true-speakers` adds a row where each segment's voice is its true line's speaker,
what a perfect voice cue would give; `--whisper-times` one where the recognised segments keep
Whisper's own times (asr.snap_to_speech moves them onto the speech that Silero hears).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.spoken_dialogues import DEV_CSV, SpokenLine, build  # noqa: E402
from tests.test_meld_clips import word_errors, words  # noqa: E402

if TYPE_CHECKING:
    from moodlens.analysis import Analysis
    from moodlens.options import AnalyzeOptions

EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
SENTIMENTS = ("negative", "neutral", "positive")


LIVE = "audio, live path"
TRUE_SPEAKERS = "audio, true speakers"
WHISPER_TIMES = "audio, Whisper's own times"


@contextlib.contextmanager
def whisper_times(on: bool) -> Iterator[None]:
    """Within it (when `on`), recognised segments keep Whisper's own times, as before they were
    moved onto the speech that Silero hears (asr.snap_to_speech)."""
    from moodlens import asr

    snap = asr.snap_to_speech
    if on:
        asr.snap_to_speech = lambda heard, regions: list(heard)
    try:
        yield
    finally:
        asr.snap_to_speech = snap


@contextlib.contextmanager
def voice_cue(lines: list[SpokenLine], max_gap: float, tally: Counter, truth: bool) -> Iterator[None]:
    """Within it, analyze's voice cue is counted against the true speakers: `tally` gets the
    quick steps between two people's lines and how many of them the voices told apart; `truth`:
    the cue is each segment's true speaker instead."""
    import moodlens.pipeline as pipeline

    heard_by = pipeline.voice_labels

    def cue(segments: list, evidence: object) -> list[str | None]:
        voices = heard_by(segments, evidence)
        speakers = [max(lines, key=lambda line: min(line.end, s.end) - max(line.start, s.start)).speaker
                    for s in segments]
        for k in range(1, len(segments)):
            if speakers[k] != speakers[k - 1] and segments[k].start - segments[k - 1].end <= max_gap:
                tally["quick steps"] += 1
                tally["told apart"] += None not in voices[k - 1:k + 1] and voices[k] != voices[k - 1]
        return list(speakers) if truth else voices

    pipeline.voice_labels = cue
    try:
        yield
    finally:
        pipeline.voice_labels = heard_by


def analyze_live(path: Path, options: AnalyzeOptions) -> Analysis:
    """The wav as `moodlens live FILE` reads it: speech spans closed by Silero VAD, at full speed."""
    from moodlens.live import LiveOptions, run_live
    from moodlens.sources import parse_source

    return run_live(parse_source(str(path)), LiveOptions(analyze=options), emit=lambda event: None)


def line_predictions(lines: list[SpokenLine], utterances: list[dict], source: str, task: str,
                     labels: tuple[str, ...]) -> list[str | None]:
    """Per true line, the top class of the overlap-weighted mean of the analysed utterances'
    `source` distributions (`fused`, or one expert's), or None where no utterance overlaps."""
    found: list[str | None] = []
    for line in lines:
        total, weight = np.zeros(len(labels)), 0.0
        for u in utterances:
            overlap = min(line.end, u["end"]) - max(line.start, u["start"])
            result = u[task] if source == "fused" else (u["per_modality"].get(source) or {}).get(task)
            if overlap <= 0 or not result:
                continue
            total += overlap * np.array([result["probabilities"][c] for c in labels])
            weight += overlap
        found.append(labels[int(total.argmax())] if weight else None)
    return found


def weighted_f1(truth: list[str], predicted: list[str | None], labels: tuple[str, ...]) -> float:
    """Weighted F1 over the true classes; a missing prediction is wrong for every class."""
    score = 0.0
    for label in labels:
        support = sum(t == label for t in truth)
        if not support:
            continue
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        score += f1 * support / len(truth)
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "spoken_dialogues")
    parser.add_argument("--csv", type=Path, default=DEV_CSV)
    parser.add_argument("--turn-gap", type=float, nargs="*", default=[],
                        help="turn gaps (s) to compare; default: the shipped one only")
    parser.add_argument("--modalities", default="text,voice")
    parser.add_argument("--text-weights", help="a text model file; default: the shipped one")
    parser.add_argument("--asr-model", default="tiny.en", help="the speech recognition model (--asr-model of analyze)")
    parser.add_argument("--live", action="store_true",
                        help="also analyse each wav on the live path (moodlens live FILE: speech spans, at full speed)")
    parser.add_argument("--true-speakers", action="store_true",
                        help="also analyse with each segment's true speaker as its voice (a perfect voice cue)")
    parser.add_argument("--whisper-times", action="store_true",
                        help="also analyse with Whisper's own segment times, not moved onto Silero's speech")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()

    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import analyze

    started = time.perf_counter()
    dialogues = build(args.csv, args.cache, args.dialogues, args.seed)
    lines = [line for d in dialogues for line in d.lines]
    print(f"{len(dialogues)} MELD dev dialogues, {len(lines)} lines, "
          f"{sum(d.duration for d in dialogues) / 60:.1f} min of espeak-ng speech "
          f"(built in {time.perf_counter() - started:.0f} s, cached in {args.cache})")
    base = AnalyzeOptions(modalities=tuple(args.modalities.split(",")), speakers=None, text_weights=args.text_weights,
                          asr_model=args.asr_model)
    # the reference judges each true line alone, as MELD labels it
    settings: list[tuple[str, AnalyzeOptions, bool]] = [("transcript", replace(base, turn_gap=0.0), True)]
    gaps = args.turn_gap or [base.turn_gap]
    settings += [(f"audio, turn gap {gap:g} s", replace(base, turn_gap=gap), False) for gap in gaps]
    if args.whisper_times:
        settings.append((WHISPER_TIMES, base, False))
    if args.true_speakers:
        settings.append((TRUE_SPEAKERS, base, False))
    if args.live:
        settings.append((LIVE, base, False))

    truth_emotion = [line.emotion for line in lines]
    truth_sentiment = [line.sentiment for line in lines]
    figures: dict[str, dict[str, float]] = {}
    print(f"\n{'path':<28} {'text emo':>9} {'text sent':>9} {'fused emo':>9} {'fused sent':>10} "
          f"{'no utt.':>7} {'WER':>6} {'time':>6}")
    for name, options, with_transcript in settings:
        started = time.perf_counter()
        per_line: dict[str, list[str | None]] = {k: [] for k in ("te", "ts", "fe", "fs")}
        errors = total = missing = 0
        tally: Counter = Counter()
        for dialogue in dialogues:
            chosen = replace(options, transcript=str(dialogue.srt)) if with_transcript else options
            counted = (contextlib.nullcontext() if with_transcript
                       else voice_cue(dialogue.lines, options.turn_gap, tally, truth=name == TRUE_SPEAKERS))
            with counted, whisper_times(name == WHISPER_TIMES):
                analysis = (analyze_live(dialogue.wav, chosen) if name == LIVE
                            else analyze(dialogue.wav, chosen)).to_dict()
            utterances = analysis["utterances"]
            per_line["te"] += line_predictions(dialogue.lines, utterances, "text", "emotion", EMOTIONS)
            per_line["ts"] += line_predictions(dialogue.lines, utterances, "text", "sentiment", SENTIMENTS)
            per_line["fe"] += line_predictions(dialogue.lines, utterances, "fused", "emotion", EMOTIONS)
            per_line["fs"] += line_predictions(dialogue.lines, utterances, "fused", "sentiment", SENTIMENTS)
            reference = words(" ".join(line.text for line in dialogue.lines))
            errors += word_errors(reference, words(" ".join(u["text"] for u in utterances)))
            total += len(reference)
        missing = sum(p is None for p in per_line["te"])
        scores = {
            "text_emotion": weighted_f1(truth_emotion, per_line["te"], EMOTIONS),
            "text_sentiment": weighted_f1(truth_sentiment, per_line["ts"], SENTIMENTS),
            "fused_emotion": weighted_f1(truth_emotion, per_line["fe"], EMOTIONS),
            "fused_sentiment": weighted_f1(truth_sentiment, per_line["fs"], SENTIMENTS),
            "lines_without_utterance": missing, "wer": errors / max(total, 1),
            "seconds": time.perf_counter() - started, **tally,
        }
        figures[name] = scores
        print(f"{name:<28} {scores['text_emotion']:>9.3f} {scores['text_sentiment']:>9.3f} "
              f"{scores['fused_emotion']:>9.3f} {scores['fused_sentiment']:>10.3f} {missing:>7} "
              f"{scores['wer'] if not with_transcript else 0:>6.3f} {scores['seconds']:>5.0f}s")
        if tally and name != TRUE_SPEAKERS:
            print(f"{'':<28} quick steps between two people's lines: {tally['quick steps']}, "
                  f"told apart by voice: {tally['told apart']}")
    reference = figures["transcript"]
    print("\nratio audio / transcript (target >= 0.92):")
    for name, scores in figures.items():
        if name == "transcript":
            continue
        print(f"  {name:<26} text emotion {scores['text_emotion'] / reference['text_emotion']:.3f}"
              f"  text sentiment {scores['text_sentiment'] / reference['text_sentiment']:.3f}"
              f"  fused emotion {scores['fused_emotion'] / reference['fused_emotion']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
