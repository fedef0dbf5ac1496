from __future__ import annotations

import pytest

from moodlens.analysis import ModalityResult, Prediction
from moodlens.fusion import FusionWeights, fuse
from moodlens.labels import EMOTIONS, SENTIMENTS


def result(emotion: str, sentiment: str, coverage: float = 1.0) -> ModalityResult:
    e = [1.0 if x == emotion else 0.0 for x in EMOTIONS]
    s = [1.0 if x == sentiment else 0.0 for x in SENTIMENTS]
    return ModalityResult(Prediction.from_probabilities(EMOTIONS, e),
                          Prediction.from_probabilities(SENTIMENTS, s), coverage)


def test_weighted_average_scaled_by_coverage() -> None:
    weights = FusionWeights(text=1.0, face=1.0)
    emotion, sentiment, used = fuse(
        {"text": result("anger", "negative"), "face": result("joy", "positive", coverage=0.5)},
        weights)
    assert used == ["text", "face"]
    assert emotion.probabilities["anger"] == pytest.approx(2 / 3)
    assert emotion.probabilities["joy"] == pytest.approx(1 / 3)
    assert sentiment.label == "negative"
    assert sum(emotion.probabilities.values()) == pytest.approx(1.0)


def test_missing_or_unseen_modality_drops_out() -> None:
    weights = FusionWeights()
    emotion, _, used = fuse({"text": result("fear", "negative"),
                             "face": result("joy", "positive", coverage=0.0)}, weights)
    assert used == ["text"] and emotion.label == "fear" and emotion.score == pytest.approx(1.0)
    emotion, _, used = fuse({"face": result("joy", "positive")}, weights)
    assert used == ["face"] and emotion.label == "joy"
    assert fuse({}, weights) == (None, None, [])


def test_zero_weight_removes_a_modality() -> None:
    _, _, used = fuse({"text": result("fear", "negative"), "face": result("joy", "positive")},
                      FusionWeights(face=0.0))
    assert used == ["text"]


def test_parse_weights() -> None:
    assert FusionWeights.parse("text=2, face=0.5") == FusionWeights(text=2.0, face=0.5, voice=0.0)
    for bad, reason in (("smell=1", "unknown modality"), ("text=abc", "not a number"),
                        ("face=-1", ">= 0")):
        with pytest.raises(ValueError, match=reason):
            FusionWeights.parse(bad)
