"""Fusion, measured: each expert alone and every fused combination, on real MELD clips.

    .venv/bin/python bench/fusion.py [--clips DIR] [--write]

It runs `moodlens.analyze` (ASR, then every expert) on each clip of DIR (default: the 11 MELD
test clips in ../shared, labels from its labels.csv), keeps every expert's per-utterance
emotion distribution, and prints clip-level and utterance-level accuracy for text alone, each
expert alone, and every combination fused as the pipeline fuses them (a weighted product of
experts). A clip's prediction is the duration-weighted mean of its utterances' distributions;
at utterance level every utterance is scored against its clip's label.

The fusion weights are measured here: text keeps 1, and the face and voice exponents are the
smallest grid point whose clip-level log-likelihood of the true labels is within 1 nat of the
best (of the weights the data cannot tell apart, those that trust the text most). With 11
clips that is a coarse measurement, so the script also reports
leave-one-clip-out accuracy: each clip scored with the weights fitted on the other ten, which
is what the weights are worth on clips they were not fitted on. --write stores the weights and
this record in src/moodlens/weights/fusion_v1.json, which the pipeline reads as its default.
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

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
OUT = ROOT / "src" / "moodlens" / "weights" / "fusion_v1.json"
EXPERT_NAMES = ("text", "face", "voice")
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def collect(folder: Path) -> list[dict]:
    """Per clip: its label and, per utterance, duration and each expert's distribution."""
    from moodlens.labels import EMOTIONS
    from moodlens.pipeline import analyze

    with (folder / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    clips = []
    for row in rows:
        path = folder / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
        analysis = analyze(path)
        utterances = []
        for u in analysis.utterances:
            experts = {m: [r.emotion.probabilities[e] for e in EMOTIONS]
                       for m, r in u.per_modality.items() if r.emotion is not None}
            coverage = {m: r.coverage for m, r in u.per_modality.items() if r.emotion is not None}
            utterances.append({"seconds": max(u.end - u.start, 0.05), "experts": experts, "coverage": coverage})
        clips.append({"clip": path.name, "label": EMOTIONS.index(row["Emotion"].strip().lower()),
                      "utterances": utterances})
    return clips


def fused_clip(clip: dict, weights: dict[str, float]) -> np.ndarray | None:
    """The clip's distribution under these weights; None if no chosen expert saw it."""
    from moodlens.fusion import pool

    total, parts = 0.0, []
    for u in clip["utterances"]:
        used = [m for m in u["experts"] if weights.get(m, 0) * u["coverage"][m] > 0]
        if not used:
            continue
        p = pool([np.array(u["experts"][m]) for m in used], [weights[m] * u["coverage"][m] for m in used])
        parts.append(u["seconds"] * p)
        total += u["seconds"]
    return sum(parts) / total if parts else None


def utterance_hits(clips: list[dict], weights: dict[str, float]) -> tuple[int, int]:
    from moodlens.fusion import pool

    hits = count = 0
    for clip in clips:
        for u in clip["utterances"]:
            used = [m for m in u["experts"] if weights.get(m, 0) * u["coverage"][m] > 0]
            if used:
                p = pool([np.array(u["experts"][m]) for m in used], [weights[m] * u["coverage"][m] for m in used])
                hits += int(p.argmax() == clip["label"])
                count += 1
    return hits, count


def clip_hits(clips: list[dict], weights: dict[str, float]) -> tuple[int, int]:
    scored = [(fused_clip(c, weights), c["label"]) for c in clips]
    scored = [(p, label) for p, label in scored if p is not None]
    return sum(int(p.argmax() == label) for p, label in scored), len(scored)


def log_likelihood(clips: list[dict], weights: dict[str, float]) -> float:
    total = 0.0
    for clip in clips:
        p = fused_clip(clip, weights)
        total += math.log(max(float(p[clip["label"]]), 1e-9)) if p is not None else math.log(1 / 7)
    return total


SLACK_NATS = 1.0


def fit(clips: list[dict]) -> dict[str, float]:
    """text 1; face and voice: the smallest weights on the grid whose clip-level log-likelihood
    is within SLACK_NATS of the best. On a handful of clips the likelihood surface is flat and
    noisy, so of the weights the data cannot tell apart, the ones that trust text most are kept."""
    scored = [(log_likelihood(clips, {"text": 1.0, "face": f, "voice": v}), f, v)
              for f, v in itertools.product(GRID, GRID)]
    best = max(score for score, _, _ in scored)
    _, face, voice = min(((f + v, f, v) for score, f, v in scored if score >= best - SLACK_NATS))
    return {"text": 1.0, "face": face, "voice": voice}


def leave_one_out(clips: list[dict]) -> tuple[int, int]:
    hits = 0
    for i, clip in enumerate(clips):
        weights = fit(clips[:i] + clips[i + 1:])
        p = fused_clip(clip, weights)
        hits += int(p is not None and p.argmax() == clip["label"])
    return hits, len(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    parser.add_argument("--write", action="store_true", help=f"store the measured weights in {OUT.name}")
    args = parser.parse_args()
    if not (args.clips / "labels.csv").is_file():
        raise SystemExit(f"{args.clips}/labels.csv is absent: the MELD clips in ../shared are needed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    clips = collect(args.clips)
    seconds = time.monotonic() - started
    measured = fit(clips)
    loo = leave_one_out(clips)
    print(f"{len(clips)} MELD clips, {sum(len(c['utterances']) for c in clips)} utterances from ASR "
          f"({seconds:.0f} s to analyse)")
    print(f"measured weights (smallest within {SLACK_NATS:g} nat of the best clip-level log-likelihood): "
          f"{measured}")
    print(f"{'experts':22} {'clip-level':>12} {'utterance-level':>16}")
    rows = {}
    for size in (1, 2, 3):
        for combo in itertools.combinations(EXPERT_NAMES, size):
            weights = {m: (1.0 if size == 1 else measured[m]) for m in combo}
            if size > 1 and sum(weights.values()) == weights.get("text", 0):
                note = " (= text: measured weight 0)"
            else:
                note = ""
            ch, cn = clip_hits(clips, weights)
            uh, un = utterance_hits(clips, weights)
            rows["+".join(combo)] = {"clip": [ch, cn], "utterance": [uh, un]}
            print(f"{'+'.join(combo):22} {ch:>5}/{cn:<6} {uh:>8}/{un:<7}{note}")
    print(f"default fusion, leave-one-clip-out (weights fitted on the other clips): {loo[0]}/{loo[1]}")
    if args.write:
        record = {
            "weights": measured,
            "how": "bench/fusion.py: text 1; face and voice exponents: the smallest point of the grid "
                   + str(list(GRID)) + f" whose clip-level log-likelihood of the true labels on the MELD test "
                   f"clips in ../shared is within {SLACK_NATS:g} nat of the best",
            "clips": [c["clip"] for c in clips],
            "accuracy": rows,
            "leave_one_clip_out": list(loo),
        }
        OUT.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
