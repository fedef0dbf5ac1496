from __future__ import annotations

import numpy as np
import pytest

from moodlens.analysis import ModalityResult, Prediction, UtteranceResult
from moodlens.fusion import FusionWeights, assemble, fuse, pool
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.voice import full_distribution
from moodlens.utterances import Utterance


def result(emotion: str | dict[str, float], sentiment: str, coverage: float = 1.0) -> ModalityResult:
    if isinstance(emotion, str):
        e = [0.94 if x == emotion else 0.01 for x in EMOTIONS]
    else:
        e = [emotion.get(x, 0.0) for x in EMOTIONS]
    s = [0.98 if x == sentiment else 0.01 for x in SENTIMENTS]
    return ModalityResult(Prediction.from_probabilities(EMOTIONS, e),
                          Prediction.from_probabilities(SENTIMENTS, s), coverage)


def test_product_of_experts_weighted_by_weight_and_coverage() -> None:
    text, face = result("anger", "negative"), result("joy", "positive", coverage=0.5)
    emotion, sentiment, used = fuse({"text": text, "face": face}, FusionWeights(text=1.0, face=1.0))
    assert used == ["text", "face"]
    expected = pool([np.array(list(text.emotion.probabilities.values())),
                     np.array(list(face.emotion.probabilities.values()))], [1.0, 0.5])
    assert [emotion.probabilities[e] for e in EMOTIONS] == pytest.approx(expected, abs=1e-6)
    assert emotion.label == "anger" and sentiment.label == "negative"  # face's half weight can't outvote
    assert sum(emotion.probabilities.values()) == pytest.approx(1.0)


def test_a_know_nothing_expert_changes_nothing_whatever_its_weight() -> None:
    text = result({"neutral": 0.6, "joy": 0.3, "anger": 0.1}, "neutral")
    flat = result({e: 1 / 7 for e in EMOTIONS}, "neutral")
    alone, _, _ = fuse({"text": text}, FusionWeights(text=1.0))
    both, _, _ = fuse({"text": text, "voice": flat}, FusionWeights(text=1.0, voice=5.0))
    assert both.probabilities == pytest.approx(alone.probabilities, abs=1e-6)


def test_a_class_an_expert_does_not_know_is_unknown_not_zero() -> None:
    """A voice head trained without "neutral" must not push a neutral line away from neutral."""
    known = [e for e in EMOTIONS if e not in ("neutral", "surprise")]
    voice = full_distribution(known, np.full(len(known), 1 / len(known)), EMOTIONS)
    assert voice == pytest.approx(np.full(7, 1 / 7))  # uncertain among what it knows = knows nothing
    confident = full_distribution(known, np.array([0.9, 0.02, 0.02, 0.02, 0.04]), EMOTIONS)
    assert confident[EMOTIONS.index("neutral")] == pytest.approx(1 / 7)
    assert confident.sum() == pytest.approx(1.0)
    text = {"neutral": 0.8, "anger": 0.1, "joy": 0.1}
    fused, _, _ = fuse({"text": result(text, "neutral"),
                        "voice": ModalityResult(Prediction.from_probabilities(EMOTIONS, confident),
                                                Prediction.from_probabilities(SENTIMENTS, [0.4, 0.3, 0.3]), 1.0)},
                       FusionWeights(text=1.0, voice=1.0))
    # voice moves mass between the classes it knows (towards anger), never out of neutral
    assert fused.label == "neutral"
    assert fused.probabilities["anger"] / fused.probabilities["joy"] > text["anger"] / text["joy"]


def test_missing_unseen_or_skipped_modality_drops_out() -> None:
    weights = FusionWeights(text=1.0, face=0.5)
    emotion, _, used = fuse({"text": result("fear", "negative"),
                             "face": result("joy", "positive", coverage=0.0)}, weights)
    assert used == ["text"] and emotion.label == "fear"
    skipped = ModalityResult(None, None, 0.0, {"skipped": "too short"})
    _, _, used = fuse({"text": result("fear", "negative"), "voice": skipped}, FusionWeights(voice=1.0))
    assert used == ["text"]
    emotion, _, used = fuse({"face": result("joy", "positive")}, weights)
    assert used == ["face"] and emotion.label == "joy"
    assert fuse({}, weights) == (None, None, [])


def test_zero_weight_removes_a_modality_unless_it_is_alone() -> None:
    _, _, used = fuse({"text": result("fear", "negative"), "face": result("joy", "positive")},
                      FusionWeights(face=0.0))
    assert used == ["text"]
    emotion, _, used = fuse({"face": result("joy", "positive")}, FusionWeights(face=0.0))
    assert used == ["face"] and emotion.label == "joy"  # a face-only video still says what the face saw


def test_default_weights_are_the_measured_ones() -> None:
    import json

    from moodlens.fusion import MEASURED

    measured = json.loads(MEASURED.read_text(encoding="utf-8"))
    assert FusionWeights() == FusionWeights(**measured["weights"])
    assert "bench/fusion.py" in measured["how"]


def test_parse_weights() -> None:
    assert FusionWeights.parse("text=2, face=0.5, voice=0") == FusionWeights(text=2.0, face=0.5, voice=0.0)
    for bad, reason in (("smell=1", "unknown modality"), ("text=abc", "not a number"),
                        ("face=-1", ">= 0")):
        with pytest.raises(ValueError, match=reason):
            FusionWeights.parse(bad)


def test_one_assembly_step_for_every_fuser() -> None:
    utterances = [Utterance(0.0, 1.0, "hi"), Utterance(1.0, 2.5, "", source="window")]
    per_modality = [{"text": result("joy", "positive")}, {}]
    fused = [fuse(m, FusionWeights()) for m in per_modality]
    rows = assemble(utterances, per_modality, fused)
    assert [type(r) for r in rows] == [UtteranceResult, UtteranceResult]
    assert rows[0].emotion.label == "joy" and rows[0].modalities_used == ["text"] and rows[0].index == 0
    assert rows[1].emotion is None and rows[1].modalities_used == [] and rows[1].source == "window"
