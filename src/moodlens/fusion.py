"""Late fusion: how the experts' per-utterance predictions become one, and the one assembly
step that both fusers (decision-level here, feature-level in feature_level.py) end in.

Decision-level fusion is a weighted product of experts (a log-linear pool):

    log p(c) = sum over experts e of  w_e * coverage_e * log p_e(c)   (then normalised)

- An expert that knows nothing (a uniform distribution) changes nothing, whatever its weight.
- An expert that does not know a class gives it the share a know-nothing expert would (see
  models.voice.full_distribution), so a voice head trained without "neutral" cannot push a
  neutral line away from neutral: missing classes count as unknown, not as zero.
- w_e acts as an inverse temperature: it is how much an expert's confidence is believed. The
  defaults are measured (bench/fusion.py, written to weights/fusion_v1.json), never hand-set.
- coverage_e in [0, 1] is how much of the utterance the expert saw (share of frames with a
  face, of audio that was not silence), so a modality that saw little counts little.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from moodlens.analysis import ModalityResult, Prediction, UtteranceResult
from moodlens.labels import EMOTIONS, SENTIMENTS

MEASURED = Path(__file__).resolve().parent / "weights" / "fusion_v1.json"
_FLOOR = 1e-6  # keeps log() finite for an expert that is sure a class is impossible


def _measured_weights() -> dict[str, float]:
    """The weights bench/fusion.py measured; without the file, text alone."""
    try:
        return {k: float(v) for k, v in json.loads(MEASURED.read_text(encoding="utf-8"))["weights"].items()}
    except (OSError, KeyError, ValueError, AttributeError):
        return {"text": 1.0}


_MEASURED = _measured_weights()


@dataclass(frozen=True)
class FusionWeights:
    text: float = _MEASURED.get("text", 1.0)
    face: float = _MEASURED.get("face", 0.0)
    voice: float = _MEASURED.get("voice", 0.0)

    @classmethod
    def parse(cls, spec: str) -> FusionWeights:
        """`text=1,face=0.5` -> FusionWeights; unknown names and negative values are errors."""
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
            if value < 0:
                raise ValueError(f"fusion weight for {name} must be >= 0")
            values[name] = value
        return cls(**values)

    def of(self, modality: str) -> float:
        return float(getattr(self, modality, 0.0))


def pool(distributions: Sequence[np.ndarray], exponents: Sequence[float]) -> np.ndarray:
    """Weighted product of distributions, normalised."""
    log = sum(w * np.log(np.clip(p, _FLOOR, 1.0)) for p, w in zip(distributions, exponents, strict=True))
    log = log - log.max()
    out = np.exp(log)
    return out / out.sum()


def fuse(
    results: dict[str, ModalityResult], weights: FusionWeights
) -> tuple[Prediction | None, Prediction | None, list[str]]:
    """Fused emotion and sentiment, and the modalities that really contributed.

    A weight says how far an expert is trusted against the others. An expert that is alone
    (a face-only video, say) is reported as it is, whatever its weight: there is nothing to
    weigh it against, and saying nothing would hide what it saw.
    """
    seen = [m for m, r in results.items() if r.emotion is not None and r.coverage > 0]
    used = [m for m in seen if weights.of(m) > 0]
    if not used and len(seen) == 1:
        exponents = [results[seen[0]].coverage]
        used = seen
    elif not used:
        return None, None, []
    else:
        exponents = [weights.of(m) * results[m].coverage for m in used]
    emotion = pool([np.array([results[m].emotion.probabilities[e] for e in EMOTIONS]) for m in used], exponents)
    sentiment = pool([np.array([results[m].sentiment.probabilities[s] for s in SENTIMENTS]) for m in used],
                     exponents)
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
