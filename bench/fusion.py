"""Fusion, measured: each expert alone and every fused combination, on real MELD clips.

    .venv/bin/python bench/fusion.py [--clips DIR] [--cache FILE] [--write] [--face-selection active|largest]

It runs `moodlens.analyze` (ASR, then every expert) on each clip of DIR (default: the 11 MELD
test clips in ../shared, labels from its labels.csv), keeps every expert's per-utterance
distributions, and prints clip-level and utterance-level accuracy for text alone, each expert
alone, and every combination fused exactly as the pipeline fuses them (`moodlens.fusion.fuse`).
A clip's prediction is the duration-weighted mean of its utterances' distributions; at
utterance level every utterance is scored against its clip's label.

Two things are measured here and stored by --write in src/moodlens/weights/fusion_v2.json,
which the pipeline reads as its default:
- each non-text expert's *baseline*: its mean emotion and sentiment distribution over the
  utterances, with one pseudo-count per class (no labels are used);
- the weights: text keeps 1; the face and voice reliabilities are the posterior mean over the
  grid below (uniform prior) under the clip-level likelihood of the true labels. On a handful of
  clips the likelihood is flat and noisy; the mean keeps the uncertainty that a maximum drops.
Leave-one-clip-out accuracy refits both on the other clips for each clip: it is what the
measurement is worth on clips it was not made on.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from moodlens.fusion import FusionWeights

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
OUT = ROOT / "src" / "moodlens" / "weights" / "fusion_v2.json"
EXPERT_NAMES = ("text", "face", "voice")
EMOTION_NAMES = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
GRID = tuple(round(0.05 * i, 2) for i in range(21))  # reliabilities 0, 0.05, ..., 1


def collect(folder: Path, face_selection: str = "active") -> list[dict]:
    """Per clip: its label and, per utterance, duration and each expert's distribution."""
    from moodlens.labels import EMOTIONS, SENTIMENTS
    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import analyze

    with (folder / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    clips = []
    for row in rows:
        path = folder / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
        analysis = analyze(path, AnalyzeOptions(face_selection=face_selection))
        utterances = []
        for u in analysis.utterances:
            experts = {m: [r.emotion.probabilities[e] for e in EMOTIONS]
                       for m, r in u.per_modality.items() if r.emotion is not None}
            sentiment = {m: [r.sentiment.probabilities[s] for s in SENTIMENTS]
                         for m, r in u.per_modality.items() if r.sentiment is not None}
            coverage = {m: r.coverage for m, r in u.per_modality.items() if r.emotion is not None}
            utterances.append({"seconds": max(u.end - u.start, 0.05), "experts": experts, "sentiment": sentiment,
                               "coverage": coverage})
        clips.append({"clip": path.name, "label": EMOTIONS.index(row["Emotion"].strip().lower()),
                      "utterances": utterances})
    return clips


def clip_distribution(clip: dict, weights: FusionWeights, baselines: dict) -> np.ndarray | None:
    """The clip's fused distribution (duration-weighted over utterances); None if no expert saw it."""
    total, parts = 0.0, []
    for u in clip["utterances"]:
        emotion = utterance_emotion(u, weights, baselines)
        if emotion is not None:
            parts.append(u["seconds"] * emotion)
            total += u["seconds"]
    return sum(parts) / total if parts else None


def utterance_emotion(u: dict, weights: FusionWeights, baselines: dict) -> np.ndarray | None:
    from moodlens.analysis import ModalityResult, Prediction
    from moodlens.fusion import fuse
    from moodlens.labels import EMOTIONS, SENTIMENTS

    results = {m: ModalityResult(Prediction.from_probabilities(EMOTIONS, u["experts"][m]),
                                 Prediction.from_probabilities(SENTIMENTS, u["sentiment"][m]), u["coverage"][m])
               for m in u["experts"] if weights.of(m) > 0}
    emotion, _, _ = fuse(results, weights, baselines)
    return None if emotion is None else np.array([emotion.probabilities[e] for e in EMOTIONS])


def measure_baselines(clips: list[dict]) -> dict:
    """Each non-text expert's mean output over every utterance, plus one pseudo-count per class."""
    from moodlens.fusion import Baseline

    out = {}
    for name in EXPERT_NAMES[1:]:
        seen = [u for c in clips for u in c["utterances"] if name in u["experts"]]
        if seen:
            emotion = (np.sum([u["experts"][name] for u in seen], axis=0) + 1) / (len(seen) + 7)
            sentiment = (np.sum([u["sentiment"][name] for u in seen], axis=0) + 1) / (len(seen) + 3)
            out[name] = Baseline(emotion, sentiment)
    return out


def utterance_hits(clips: list[dict], weights: FusionWeights, baselines: dict) -> tuple[int, int]:
    hits = count = 0
    for clip in clips:
        for u in clip["utterances"]:
            p = utterance_emotion(u, weights, baselines)
            if p is not None:
                hits += int(p.argmax() == clip["label"])
                count += 1
    return hits, count


def clip_hits(clips: list[dict], weights: FusionWeights, baselines: dict) -> tuple[int, int]:
    scored = [(clip_distribution(c, weights, baselines), c["label"]) for c in clips]
    scored = [(p, label) for p, label in scored if p is not None]
    return sum(int(p.argmax() == label) for p, label in scored), len(scored)


def log_likelihood(clips: list[dict], weights: FusionWeights, baselines: dict) -> float:
    total = 0.0
    for clip in clips:
        p = clip_distribution(clip, weights, baselines)
        total += math.log(max(float(p[clip["label"]]), 1e-9)) if p is not None else math.log(1 / 7)
    return total


def fit(clips: list[dict]) -> tuple[FusionWeights, dict]:
    """Baselines (label-free), then text 1 and the posterior mean of the face and voice reliabilities."""
    baselines = measure_baselines(clips)
    grid = [(f, v, log_likelihood(clips, FusionWeights(text=1.0, face=f, voice=v), baselines))
            for f, v in itertools.product(GRID, GRID)]
    best = max(ll for _, _, ll in grid)
    mass = [(f, v, math.exp(ll - best)) for f, v, ll in grid]
    total = sum(m for _, _, m in mass)
    face = sum(f * m for f, _, m in mass) / total
    voice = sum(v * m for _, v, m in mass) / total
    return FusionWeights(text=1.0, face=round(face, 2), voice=round(voice, 2)), baselines


def leave_one_out(clips: list[dict]) -> tuple[int, int, list[FusionWeights]]:
    hits, folds = 0, []
    for i, clip in enumerate(clips):
        weights, baselines = fit(clips[:i] + clips[i + 1:])
        folds.append(weights)
        p = clip_distribution(clip, weights, baselines)
        hits += int(p is not None and p.argmax() == clip["label"])
    return hits, len(clips), folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    parser.add_argument("--cache", type=Path, help="keep the analysed clips in this JSON and reuse them")
    parser.add_argument("--write", action="store_true", help=f"store the measurement in {OUT.name}")
    parser.add_argument("--face-selection", choices=("active", "largest"), default="active",
                        help="the face the face expert reads: the talking one (default) or the largest")
    args = parser.parse_args()
    if not (args.clips / "labels.csv").is_file():
        raise SystemExit(f"{args.clips}/labels.csv is absent: the MELD clips in ../shared are needed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    if args.cache and args.cache.is_file():
        clips = json.loads(args.cache.read_text(encoding="utf-8"))
    else:
        clips = collect(args.clips, args.face_selection)
        if args.cache:
            args.cache.write_text(json.dumps(clips), encoding="utf-8")
    seconds = time.monotonic() - started
    measured, baselines = fit(clips)
    *loo, folds = leave_one_out(clips)
    print(f"{len(clips)} MELD clips, {sum(len(c['utterances']) for c in clips)} utterances from ASR "
          f"({seconds:.0f} s to analyse or load)")
    for name, b in baselines.items():
        shares = zip(EMOTION_NAMES, b.emotion, strict=True)
        print(f"baseline {name:6} " + " ".join(f"{e[:3]}={p:.2f}" for e, p in shares))
    print(f"measured weights (posterior mean under the clip-level likelihood): {measured}")
    print(f"{'experts':22} {'clip-level':>12} {'utterance-level':>16}")
    rows = {}
    for size in (1, 2, 3):
        for combo in itertools.combinations(EXPERT_NAMES, size):
            weights = FusionWeights(**{m: (1.0 if size == 1 else measured.of(m)) if m in combo else 0.0
                                       for m in EXPERT_NAMES})
            ch, cn = clip_hits(clips, weights, baselines)
            uh, un = utterance_hits(clips, weights, baselines)
            rows["+".join(combo)] = {"clip": [ch, cn], "utterance": [uh, un]}
            print(f"{'+'.join(combo):22} {ch:>5}/{cn:<6} {uh:>8}/{un:<7}")
    print(f"default fusion, leave-one-clip-out (baselines and weights refitted without the clip): {loo[0]}/{loo[1]}; "
          f"face {min(w.face for w in folds):g}-{max(w.face for w in folds):g}, "
          f"voice {min(w.voice for w in folds):g}-{max(w.voice for w in folds):g} across folds")
    text_only = FusionWeights(text=1.0, face=0.0, voice=0.0)
    for clip in clips:
        text_p = clip_distribution(clip, text_only, baselines)
        fused_p = clip_distribution(clip, measured, baselines)
        if text_p is not None and fused_p is not None and text_p.argmax() != fused_p.argmax():
            print(f"  {clip['clip']} ({EMOTION_NAMES[clip['label']]}): text {EMOTION_NAMES[text_p.argmax()]}, "
                  f"fused {EMOTION_NAMES[fused_p.argmax()]}")
    if args.write:
        record = {
            "weights": {m: measured.of(m) for m in EXPERT_NAMES},
            "baselines": {name: {"emotion": [round(float(x), 6) for x in b.emotion],
                                 "sentiment": [round(float(x), 6) for x in b.sentiment]}
                          for name, b in baselines.items()},
            "how": "bench/fusion.py: baselines are each expert's mean output over the utterances of the MELD test "
                   "clips in ../shared (one pseudo-count per class, no labels); text 1, and the face and voice "
                   f"reliabilities are the posterior mean over the grid {list(GRID)} (uniform prior) under the "
                   "clip-level likelihood of the true labels",
            "clips": [c["clip"] for c in clips],
            "accuracy": rows,
            "leave_one_clip_out": list(loo),
        }
        OUT.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
