"""Decision-level late fusion: a coverage-scaled weighted average of the experts' probabilities.

Each expert's weight is multiplied by its coverage (text: 1 when there is text; face: the
share of sampled frames with a face), so a modality that saw little counts little, and a
missing one drops out without any special case.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from moodlens.analysis import ModalityResult, Prediction
from moodlens.labels import EMOTIONS, SENTIMENTS


@dataclass(frozen=True)
class FusionWeights:
    # Text is the strongest signal on MELD. FER2013 faces got 4 of 16 MELD clips right, and its
    # probabilities are over-confident (often > 0.95), so it gets a small weight.
    text: float = 1.0
    face: float = 0.25
    voice: float = 0.0

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
        return float(getattr(self, modality))


def fuse(
    results: dict[str, ModalityResult], weights: FusionWeights
) -> tuple[Prediction | None, Prediction | None, list[str]]:
    """Fused emotion and sentiment, and the modalities that really contributed."""
    used = [m for m, r in results.items() if weights.of(m) * r.coverage > 0]
    if not used:
        return None, None, []
    scale = np.array([weights.of(m) * results[m].coverage for m in used])
    scale = scale / scale.sum()
    emotion = sum(s * np.array([results[m].emotion.probabilities[e] for e in EMOTIONS])
                  for s, m in zip(scale, used, strict=True))
    sentiment = sum(s * np.array([results[m].sentiment.probabilities[x] for x in SENTIMENTS])
                    for s, m in zip(scale, used, strict=True))
    return (Prediction.from_probabilities(EMOTIONS, emotion),
            Prediction.from_probabilities(SENTIMENTS, sentiment), used)
