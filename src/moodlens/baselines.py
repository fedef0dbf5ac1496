"""Lexicon and off-the-shelf baselines, run on the same rows as our model.

Mappings onto MELD's labels (documented in docs/training.md):
- VADER: compound >= 0.05 positive, <= -0.05 negative, else neutral (VADER's own thresholds).
- TextBlob: polarity > 0 positive, < 0 negative, 0 neutral.
- nade: intensities for 8 Plutchik emotions. The six that MELD shares (anger, disgust, fear,
  joy, sadness, surprise) map one to one; anticipation and trust have no MELD class and are
  dropped. The strongest of the six wins if its intensity is >= 0.5, else the row is neutral.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from moodlens.errors import MoodlensError
from moodlens.labels import EMOTIONS, SENTIMENTS

Task = Literal["emotion", "sentiment"]
NADE_NEUTRAL_BELOW = 0.5
NADE_TO_MELD = ("anger", "disgust", "fear", "joy", "sadness", "surprise")


class BaselineUnavailableError(MoodlensError):
    pass


def _need(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise BaselineUnavailableError(
            f"baseline package {module!r} is not installed: pip install 'moodlens[baselines]'"
        )


def sentiment_from_score(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Scores in [-1, 1] to sentiment indices, neutral inside (-threshold, threshold)."""
    out = np.full(scores.shape, SENTIMENTS.index("neutral"))
    out[scores >= threshold] = SENTIMENTS.index("positive")
    out[scores <= -threshold] = SENTIMENTS.index("negative")
    return out


def vader_sentiment(texts: Sequence[str]) -> np.ndarray:
    _need("vaderSentiment")
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return sentiment_from_score(np.array([analyzer.polarity_scores(t)["compound"] for t in texts]), 0.05)


def textblob_sentiment(texts: Sequence[str]) -> np.ndarray:
    _need("textblob")
    from textblob import TextBlob

    polarity = np.array([TextBlob(t).sentiment.polarity for t in texts])
    return sentiment_from_score(polarity, np.nextafter(0.0, 1.0))


def nade_emotion(texts: Sequence[str]) -> np.ndarray:
    _need("nade")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nade warns as it unpacks its models on first use
        from nade import Nade

        scores = Nade().predict(list(texts))
    intensity = np.stack([np.asarray(scores[e].to_pylist(), dtype=float) for e in NADE_TO_MELD], 1)
    best = intensity.argmax(1)
    predicted = np.array([EMOTIONS.index(NADE_TO_MELD[i]) for i in best])
    predicted[intensity.max(1) < NADE_NEUTRAL_BELOW] = EMOTIONS.index("neutral")
    return predicted


BASELINES: dict[str, tuple[Task, Callable[[Sequence[str]], np.ndarray]]] = {
    "VADER": ("sentiment", vader_sentiment),
    "TextBlob": ("sentiment", textblob_sentiment),
    "nade": ("emotion", nade_emotion),
}
