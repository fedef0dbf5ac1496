"""The whole-video summary: where the time went, emotionally, and how sentiment moved."""

from __future__ import annotations

from collections.abc import Sequence

from moodlens.analysis import SentimentPoint, Summary, UtteranceResult
from moodlens.labels import EMOTIONS


def sentiment_score(probabilities: dict[str, float]) -> float:
    """P(positive) - P(negative), in [-1, 1]."""
    return probabilities["positive"] - probabilities["negative"]


def summarize(utterances: Sequence[UtteranceResult]) -> Summary:
    predicted = [u for u in utterances if u.emotion is not None and u.sentiment is not None]
    # A zero-length utterance still happened; give it a sliver of time so it counts.
    durations = [max(u.end - u.start, 1e-3) for u in predicted]
    total = sum(durations)
    share = dict.fromkeys(EMOTIONS, 0.0)
    for u, d in zip(predicted, durations, strict=True):
        share[u.emotion.label] += d / total
    timeline = [
        SentimentPoint(u.start, u.end, round(sentiment_score(u.sentiment.probabilities), 6))
        for u in predicted
    ]
    overall = (
        round(sum(p.score * d for p, d in zip(timeline, durations, strict=True)) / total, 6)
        if predicted else None
    )
    return Summary(
        utterance_count=len(utterances),
        speaking_time=round(sum(u.end - u.start for u in utterances if u.source != "window"), 3),
        emotion_share={k: round(v, 6) for k, v in share.items()},
        dominant_emotion=max(share, key=share.__getitem__) if predicted else None,
        sentiment_score=overall,
        sentiment_timeline=timeline,
    )
