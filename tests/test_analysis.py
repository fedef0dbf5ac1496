from __future__ import annotations

import jsonschema
import pytest

from moodlens.analysis import (
    Analysis,
    ModalityInfo,
    ModalityResult,
    Prediction,
    UtteranceResult,
    validate,
)
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.summary import summarize


def sample_analysis() -> Analysis:
    joy = Prediction.from_probabilities(EMOTIONS, [0.05, 0.0, 0.05, 0.7, 0.2, 0.0, 0.0])
    positive = Prediction.from_probabilities(SENTIMENTS, [0.1, 0.1, 0.8])
    face = ModalityResult(joy, positive, 0.5, {"frames": 4, "frames_with_face": 2})
    utterances = [
        UtteranceResult(0, 1.0, 2.5, "Oh it's so much more fun with you.", "Rachel", "transcript",
                        joy, positive, ["text", "face"], {"text": face, "face": face}),
        UtteranceResult(1, 3.0, 4.0, "", None, "window", None, None, [], {}),
    ]
    return Analysis(
        media={"path": "/videos/clip.mp4", "container": "mp4", "duration": 4.2, "size_bytes": 10,
               "has_audio": True, "has_video": True},
        settings={"fps": 2.0},
        modalities={"text": ModalityInfo(True, "m", "MELD"), "face": ModalityInfo(True, "f", "FER"),
                    "voice": ModalityInfo(False, None, None, "no model")},
        utterances=utterances,
        summary=summarize(utterances),
        notes=[],
        moodlens_version="0.1.0",
        created_at="2026-11-22T00:00:00+00:00",
    )


def test_valid_and_round_trips() -> None:
    data = sample_analysis().to_dict()
    validate(data)
    assert Analysis.from_dict(data) == sample_analysis()
    assert data["utterances"][0]["emotion"]["probabilities"]["joy"] == pytest.approx(0.7)


def test_schema_rejects_broken_documents() -> None:
    data = sample_analysis().to_dict()
    data["utterances"][0]["emotion"]["probabilities"].pop("anger")
    with pytest.raises(jsonschema.ValidationError):
        validate(data)
    data = sample_analysis().to_dict()
    data["utterances"][0]["modalities_used"] = ["smell"]
    with pytest.raises(jsonschema.ValidationError):
        validate(data)


def test_prediction_normalises() -> None:
    p = Prediction.from_probabilities(SENTIMENTS, [2.0, 1.0, 1.0])
    assert p.label == "negative" and p.score == pytest.approx(0.5)
    assert sum(p.probabilities.values()) == pytest.approx(1.0)
