from __future__ import annotations

import pytest

from moodlens.analysis import Prediction, UtteranceResult
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.summary import summarize


def utterance(start: float, end: float, emotion: str, positive: float, negative: float,
              source: str = "asr") -> UtteranceResult:
    e = [1.0 if x == emotion else 0.0 for x in EMOTIONS]
    s = [negative, 1.0 - positive - negative, positive]
    return UtteranceResult(0, start, end, "x", None, source,
                           Prediction.from_probabilities(EMOTIONS, e),
                           Prediction.from_probabilities(SENTIMENTS, s), ["text"], {})


def test_shares_score_and_dominant_emotion() -> None:
    summary = summarize([utterance(0, 3, "joy", 0.9, 0.1), utterance(3, 4, "anger", 0.0, 1.0)])
    assert summary.emotion_share["joy"] == pytest.approx(0.75)
    assert summary.emotion_share["anger"] == pytest.approx(0.25)
    assert summary.dominant_emotion == "joy"
    assert [p.score for p in summary.sentiment_timeline] == pytest.approx([0.8, -1.0])
    assert summary.sentiment_score == pytest.approx((0.8 * 3 - 1.0) / 4)
    assert summary.speaking_time == pytest.approx(4.0)


def test_empty_video() -> None:
    summary = summarize([])
    assert summary.utterance_count == 0 and summary.dominant_emotion is None
    assert summary.sentiment_score is None and summary.sentiment_timeline == []


def test_windows_are_not_speaking_time() -> None:
    summary = summarize([utterance(0, 5, "neutral", 0.2, 0.2, source="window")])
    assert summary.speaking_time == 0.0 and summary.dominant_emotion == "neutral"
