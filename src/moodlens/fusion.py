"""Late fusion: how the experts' per-utterance predictions become one, and the one assembly
step that both fusers (decision-level here, feature-level in feature_level.py) end in.

Decision-level fusion multiplies likelihood ratios, each expert mixed with its own baseline:

    log p(c) = sum over experts e of  log( (r_e p_e(c) + (1 - r_e) b_e(c)) / b_e(c) ),
    r_e = weight_e * coverage_e

- b_e is what expert e says on average on TV dialogue (its *baseline*, measured without labels
  on the MELD clips by bench/fusion.py). By Bayes' rule p_e(c | x) / p_e(c) is proportional to
  the likelihood p(x | c), so an expert counts only where it says more than it always says: the
  FER face model answers "sadness" for a third of TV faces, and such a face adds nothing. The
  text expert is the anchor: its baseline is uniform, so its own distribution, class prior
  included, is the starting point, and the prior enters once.
- r_e in [0, 1] is how far the expert is relied on: the chance that it read this utterance
  rather than said its baseline. Unlike an exponent it bounds what one expert can do: it can
  lower a class by at most log(1 / (1 - r_e)) nats, so a confidently wrong voice or face cannot
  veto what the text says, only weigh against it. The weights are measured (bench/fusion.py,
  written to weights/fusion_v2.json), never hand-set.
- An expert that says its baseline changes nothing, whatever its weight.
- An expert that does not know a class gives it the share a know-nothing expert would (see
  models.voice.full_distribution), so a voice head trained without "neutral" cannot push a
  neutral line away from neutral: missing classes count as unknown, not as zero.
- coverage_e in [0, 1] is how much of the utterance the expert saw (share of frames with a
  face, of audio that was not silence), so a modality that saw little counts little.
- A user's own face or voice weights have no measured baseline; theirs is taken as uniform.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from moodlens.analysis import ModalityResult, Prediction, UtteranceResult
from moodlens.labels import EMOTIONS, SENTIMENTS

MEASURED = Path(__file__).resolve().parent / "weights" / "fusion_v2.json"
_FLOOR = 1e-6  # keeps log() finite for an expert that is sure a class is impossible


def _measured() -> dict:
    """What bench/fusion.py measured; without the file, text alone."""
    try:
        document = json.loads(MEASURED.read_text(encoding="utf-8"))
        return {"weights": {k: float(v) for k, v in document["weights"].items()},
                "baselines": {name: Baseline(np.array(b["emotion"]), np.array(b["sentiment"]))
                              for name, b in document.get("baselines", {}).items()}}
    except (OSError, KeyError, ValueError, AttributeError, TypeError):
        return {"weights": {"text": 1.0}, "baselines": {}}


@dataclass(frozen=True)
class Baseline:
    """An expert's average emotion and sentiment distributions on TV dialogue."""

    emotion: np.ndarray
    sentiment: np.ndarray


_MEASURED = _measured()
_WEIGHTS: dict[str, float] = _MEASURED["weights"]
BASELINES: dict[str, Baseline] = _MEASURED["baselines"]


@dataclass(frozen=True)
class FusionWeights:
    text: float = _WEIGHTS.get("text", 1.0)
    face: float = _WEIGHTS.get("face", 0.0)
    voice: float = _WEIGHTS.get("voice", 0.0)

    @classmethod
    def parse(cls, spec: str) -> FusionWeights:
        """`text=1,face=0.5` -> FusionWeights; unknown names and values outside [0, 1] are errors."""
        values = {}
        known = {f.name for f in fields(cls)}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, raw = part.partition("=")
            name = name.strip()
            if name not in known:
                raise ValueError(f"unknown modality {name!r} in fusion weights (use {sorted(known)})")
            try:
                value = float(raw)
            except ValueError as err:
                raise ValueError(f"fusion weight for {name} is not a number: {raw!r}") from err
            if not 0 <= value <= 1:
                raise ValueError(f"fusion weight for {name} must be between 0 and 1 (a reliability)")
            values[name] = value
        return cls(**values)

    def of(self, modality: str) -> float:
        return float(getattr(self, modality, 0.0))


def pool(distributions: Sequence[np.ndarray], reliabilities: Sequence[float],
         baselines: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Product of each distribution's likelihood ratio against its baseline (uniform where it has
    none), after mixing it with that baseline by its reliability; normalised."""
    baselines = baselines or [None] * len(distributions)
    log = np.zeros(len(distributions[0]))
    for p, r, b in zip(distributions, reliabilities, baselines, strict=True):
        base = np.full(len(p), 1 / len(p)) if b is None else np.clip(b, _FLOOR, 1.0)
        log = log + np.log(np.clip(r * np.asarray(p) + (1 - r) * base, _FLOOR, None) / base)
    log = log - log.max()
    out = np.exp(log)
    return out / out.sum()


def fuse(
    results: dict[str, ModalityResult], weights: FusionWeights,
    baselines: dict[str, Baseline] | None = None,
) -> tuple[Prediction | None, Prediction | None, list[str]]:
    """Fused emotion and sentiment, and the modalities that really contributed.

    A weight says how far an expert is relied on against the others. An expert that is alone
    (a face-only video, say) is reported as it is, whatever its weight: there is nothing to
    weigh it against, and saying nothing would hide what it saw.
    """
    seen = [m for m, r in results.items() if r.emotion is not None and r.coverage > 0]
    used = [m for m in seen if weights.of(m) > 0] or (seen if len(seen) == 1 else [])
    if not used:
        return None, None, []
    if len(used) == 1:
        alone = results[used[0]]
        return alone.emotion, alone.sentiment, used
    reliabilities = [weights.of(m) * results[m].coverage for m in used]
    known = baselines or {}
    emotion = pool([np.array([results[m].emotion.probabilities[e] for e in EMOTIONS]) for m in used],
                   reliabilities, [known[m].emotion if m in known else None for m in used])
    sentiment = pool([np.array([results[m].sentiment.probabilities[s] for s in SENTIMENTS]) for m in used],
                     reliabilities, [known[m].sentiment if m in known else None for m in used])
    return (Prediction.from_probabilities(EMOTIONS, emotion),
            Prediction.from_probabilities(SENTIMENTS, sentiment), used)


def assemble(utterances: Sequence[object], per_modality: Sequence[dict[str, ModalityResult]],
             fused: Sequence[tuple[Prediction | None, Prediction | None, list[str]]]) -> list[UtteranceResult]:
    """One UtteranceResult per utterance, from what each expert said and what the fuser made of it."""
    return [
        UtteranceResult(
            index=index, start=round(u.start, 3), end=round(u.end, 3), text=u.text, speaker=u.speaker,
            source=u.source, emotion=emotion, sentiment=sentiment, modalities_used=used,
            per_modality=dict(modalities),
        )
        for index, (u, modalities, (emotion, sentiment, used)) in enumerate(
            zip(utterances, per_modality, fused, strict=True))
    ]
