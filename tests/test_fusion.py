from __future__ import annotations

import numpy as np
import pytest

from moodlens.analysis import ModalityResult, Prediction, UtteranceResult
from moodlens.fusion import BASELINES, Baseline, FusionWeights, assemble, fuse, pool
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


def distribution(r: ModalityResult) -> np.ndarray:
    return np.array([r.emotion.probabilities[e] for e in EMOTIONS])


def test_likelihood_ratios_mixed_by_weight_and_coverage() -> None:
    text, face = result("anger", "negative"), result("joy", "positive", coverage=0.5)
    emotion, sentiment, used = fuse({"text": text, "face": face}, FusionWeights(text=1.0, face=1.0))
    assert used == ["text", "face"]
    # without a baseline each expert is a ratio against uniform; face is mixed half with it (coverage)
    expected = distribution(text) * (0.5 * distribution(face) + 0.5 / 7)
    assert [emotion.probabilities[e] for e in EMOTIONS] == pytest.approx(expected / expected.sum(), abs=1e-4)
    assert emotion.label == "anger" and sentiment.label == "negative"  # face at half coverage can't outvote
    assert sum(emotion.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_an_expert_counts_only_where_it_departs_from_its_baseline() -> None:
    """A face model that calls every TV face sad adds nothing when it calls this one sad."""
    text = result({"neutral": 0.5, "sadness": 0.3, "joy": 0.2}, "neutral")
    sad_as_ever = {"anger": 0.1, "disgust": 0.05, "fear": 0.05, "joy": 0.1, "neutral": 0.1, "sadness": 0.55,
                   "surprise": 0.05}
    face = result(sad_as_ever, "negative")
    baseline = Baseline(distribution(face), np.array([0.5, 0.3, 0.2]))
    alone, _, _ = fuse({"text": text}, FusionWeights(text=1.0))
    both, _, _ = fuse({"text": text, "face": face}, FusionWeights(text=1.0, face=1.0), {"face": baseline})
    assert both.probabilities == pytest.approx(alone.probabilities, abs=1e-4)
    naive, _, _ = fuse({"text": text, "face": face}, FusionWeights(text=1.0, face=1.0))
    assert naive.label == "sadness"  # without its baseline the same face would have flipped the line


def test_reliability_bounds_what_a_confident_expert_can_take_away() -> None:
    """At reliability r an expert lowers a class by at most log(1 / (1 - r)) nats."""
    text = result({"sadness": 0.64, "disgust": 0.12, "anger": 0.09, "neutral": 0.15}, "negative")
    voice = result({"disgust": 0.98, "sadness": 0.0, "neutral": 0.02}, "negative")
    base = np.full(7, 1 / 7)
    for r in (0.3, 0.6, 0.9):
        fused, _, _ = fuse({"text": text, "voice": voice}, FusionWeights(text=1.0, voice=r),
                           {"voice": Baseline(base, np.full(3, 1 / 3))})
        ratio = (fused.probabilities["sadness"] / fused.probabilities["neutral"]) / (0.64 / 0.15)
        # sadness falls by (1 - r) at most, neutral rises by voice's own ratio for it
        assert ratio >= (1 - r) * base[4] / (r * 0.02 + (1 - r) * base[4]) * (1 - 1e-3)


def test_a_smiling_still_photo_does_not_turn_an_angry_line_into_joy() -> None:
    """The demo's case, at the measured weights and baselines: the face is as sure of joy as FER gets."""
    text = result({"anger": 0.5, "disgust": 0.2, "sadness": 0.15, "neutral": 0.1, "joy": 0.05}, "negative")
    photo = result({"joy": 0.99, "neutral": 0.01}, "positive")
    fused, _, used = fuse({"text": text, "face": photo}, FusionWeights(), BASELINES)
    assert "face" in used and fused.label == "anger"


def test_an_expert_saying_its_baseline_changes_nothing_whatever_its_weight() -> None:
    text = result({"neutral": 0.6, "joy": 0.3, "anger": 0.1}, "neutral")
    flat = result({e: 1 / 7 for e in EMOTIONS}, "neutral")
    alone, _, _ = fuse({"text": text}, FusionWeights(text=1.0))
    both, _, _ = fuse({"text": text, "voice": flat}, FusionWeights(text=1.0, voice=1.0))
    assert both.probabilities == pytest.approx(alone.probabilities, abs=1e-4)
    assert pool([distribution(text)], [1.0]) == pytest.approx(distribution(text), abs=1e-4)


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
    assert set(BASELINES) == {"face", "voice"}
    for b in BASELINES.values():
        assert b.emotion.shape == (7,) and b.emotion.sum() == pytest.approx(1.0, abs=1e-4)
        assert b.sentiment.shape == (3,) and b.sentiment.sum() == pytest.approx(1.0, abs=1e-4)
    assert set(measured["trust"]) == {"face_change", "text_neutral", "voice_typical", "voice_halving", "voice_human",
                                      "voice_human_ramp"}
    # in every regime it was fitted on, the default fusion is about as good as the expert that
    # leads there (the voice on real speech with neutral words, the text on synthetic voices), or
    # better: within 1 % of the files, less than the dialogue turns move between two ASR runs
    assert set(measured["leads"]) == set(measured["scores"]) >= {"meld", "ravdess", "spoken", "dialogues"}
    for regime, rows in measured["scores"].items():
        assert rows["fused"]["accuracy"] >= rows[measured["leads"][regime]]["accuracy"] - 0.01, regime


def test_parse_weights() -> None:
    assert FusionWeights.parse("text=1, face=0.5, voice=0") == FusionWeights(text=1.0, face=0.5, voice=0.0)
    for bad, reason in (("smell=1", "unknown modality"), ("text=abc", "not a number"),
                        ("face=-1", "between 0 and 1"), ("voice=2", "between 0 and 1")):
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


def with_detail(r: ModalityResult, **detail: object) -> ModalityResult:
    return ModalityResult(r.emotion, r.sentiment, r.coverage, dict(detail))


def test_a_face_that_never_changes_has_no_effect() -> None:
    """A smiling still photo, read as joy at 0.99 on every line (its track restarting in the gaps),
    leaves every line as its words say, at full face weight."""
    from moodlens.fusion import Trust, fuse_file

    lines = [{"anger": 0.27, "disgust": 0.26, "sadness": 0.25, "neutral": 0.12, "joy": 0.1},
             {"joy": 0.6, "neutral": 0.3, "surprise": 0.1}, {"sadness": 0.5, "neutral": 0.3, "joy": 0.2},
             {"disgust": 0.58, "anger": 0.18, "neutral": 0.24}, {"surprise": 0.64, "joy": 0.2, "neutral": 0.16},
             {"neutral": 0.73, "joy": 0.27}]
    photo = {"joy": 0.99, "neutral": 0.01}
    per_modality = [{"text": result(t, "neutral"), "face": with_detail(result(photo, "positive"),
                                                                       talking_track=f"F{k // 2 + 1}")}
                    for k, t in enumerate(lines)]
    trust = Trust(face_change=0.2, text_neutral=1.0)
    fused = fuse_file(per_modality, FusionWeights(text=1.0, face=1.0), BASELINES, trust)
    text_alone = [max(t, key=t.get) for t in lines]
    assert [e.label for e, _, _ in fused] == text_alone
    assert all("face" in used for _, _, used in fused)  # read and reported, just worth nothing here


def test_a_face_that_departs_from_its_own_baseline_still_counts() -> None:
    from moodlens.fusion import Trust, fuse_file

    torn = {"anger": 0.3, "sadness": 0.32, "neutral": 0.2, "disgust": 0.18}
    calm, furious = {"neutral": 0.9, "sadness": 0.1}, {"anger": 0.9, "neutral": 0.1}
    faces = [calm] * 5 + [furious]
    per_modality = [{"text": result(torn, "negative"),
                     "face": with_detail(result(f, "neutral"), talking_track="F1")} for f in faces]
    trust = Trust(face_change=0.2, text_neutral=1.0)
    fused = fuse_file(per_modality, FusionWeights(text=1.0, face=0.6), BASELINES, trust)
    assert fused[-1][0].label == "anger"
    assert fused[0][0].label != "anger"


def test_a_voice_unlike_any_it_was_trained_on_counts_less() -> None:
    from moodlens.fusion import Trust, fuse_file

    text = result({"disgust": 0.4, "anger": 0.25, "sadness": 0.2, "neutral": 0.15}, "negative")
    voice = result({"sadness": 0.8, "disgust": 0.05, "anger": 0.05, "neutral": 0.1}, "negative")
    trust = Trust(face_change=0.2, text_neutral=1.0, voice_typical=2.0, voice_halving=1.0)
    assert trust.voice(1.5) == 1.0 and trust.voice(3.0) == pytest.approx(0.5) and trust.voice(None) == 1.0
    weights = FusionWeights(text=1.0, voice=1.0)

    def fused_with(atypicality: float) -> Prediction:
        per = [{"text": text, "voice": with_detail(voice, atypicality=atypicality)}]
        return fuse_file(per, weights, {}, trust)[0][0]

    assert fused_with(1.0).label == "sadness"  # a typical voice, fully trusted, can outweigh the words
    assert fused_with(12.0).label == "disgust"  # a synthetic one cannot
    alone, _, _ = fuse({"text": text}, FusionWeights(text=1.0))
    assert fused_with(40.0).probabilities == pytest.approx(alone.probabilities, abs=1e-3)


def test_a_voice_whose_pitch_wobbles_as_a_persons_counts_however_atypical() -> None:
    """TV audio is further from the head's studio voices than a synthesiser is; what tells them
    apart is the pitch's wobble, the file's median of its utterances'."""
    from moodlens.fusion import Trust, file_jitter, fuse_file

    trust = Trust(face_change=0.2, text_neutral=1.0, voice_typical=2.0, voice_halving=1.0, voice_human=0.1,
                  voice_human_ramp=0.02)
    assert trust.voice(9.0, 0.15) == 1.0 and trust.voice(9.0, 0.1) == 1.0
    assert trust.voice(9.0, 0.09) == pytest.approx(0.5)
    assert trust.voice(9.0, 0.05) == trust.voice(9.0, None) == trust.voice(9.0) == pytest.approx(0.5 ** 7)
    assert trust.voice(1.0, 0.0) == 1.0  # a typical voice is trusted whatever its pitch
    text = result({"disgust": 0.4, "anger": 0.25, "sadness": 0.2, "neutral": 0.15}, "negative")
    voice = result({"sadness": 0.8, "disgust": 0.05, "anger": 0.05, "neutral": 0.1}, "negative")
    weights = FusionWeights(text=1.0, voice=1.0)

    def fused(*jitters: float | None) -> list[str]:
        per = [{"text": text, "voice": with_detail(voice, atypicality=9.0, pitch_jitter=j)} for j in jitters]
        return [emotion.label for emotion, _, _ in fuse_file(per, weights, {}, trust)]

    assert fused(0.15, 0.2, 0.12) == ["sadness"] * 3  # people: the voice can outweigh the words
    assert fused(0.04, 0.05, 0.06) == ["disgust"] * 3  # a formant synthesiser: it cannot
    # one utterance that wobbles does not make a synthetic file's voice human: the file's median rules
    assert fused(0.04, 0.3, 0.05) == ["disgust"] * 3
    assert file_jitter([{"voice": with_detail(voice, pitch_jitter=j)} for j in (0.3, None, 0.1, 0.2)]) == 0.2
    assert file_jitter([{"text": text}]) is None
    # part of a file (a bench's single turn, a live stream's newest) is judged by the whole file's
    one = [{"text": text, "voice": with_detail(voice, atypicality=9.0, pitch_jitter=0.3)}]
    assert fuse_file(one, weights, {}, trust, jitter=0.04)[0][0].label == "disgust"


def test_agreement_says_what_each_expert_read() -> None:
    from moodlens.fusion import agreement

    both = agreement({"text": result("anger", "negative"), "face": result("joy", "positive")})
    assert both == {"agree": False, "emotions": {"text": "anger", "face": "joy"},
                    "summary": "text says anger, face says joy"}
    assert agreement({"text": result("joy", "positive"), "voice": result("joy", "positive")})["agree"] is True
    assert agreement({"text": result("joy", "positive")}) is None
    unseen = result("anger", "negative", coverage=0.0)
    assert agreement({"text": result("joy", "positive"), "face": unseen}) is None


def test_neutral_words_let_a_trusted_voice_lead_and_emotional_words_keep_the_text() -> None:
    """'Kids are talking by the door', said in anger: the words say nothing of the speaker."""
    from moodlens.fusion import Trust, fuse_file

    trust = Trust(face_change=0.2, text_neutral=0.0, voice_typical=5.0, voice_halving=0.5)
    assert trust.text(1.0) == 0.0 and trust.text(0.0) == 1.0 and trust.text(0.5) == 0.5
    angry_voice = with_detail(result({"anger": 0.8, "neutral": 0.1, "sadness": 0.1}, "negative"), atypicality=4.0)
    weights = FusionWeights(text=1.0, voice=0.9)
    neutral_words = result({"neutral": 0.85, "joy": 0.05, "anger": 0.05, "sadness": 0.05}, "neutral")
    assert fuse_file([{"text": neutral_words, "voice": angry_voice}], weights, {}, trust)[0][0].label == "anger"
    sad_words = result({"sadness": 0.85, "neutral": 0.05, "anger": 0.05, "fear": 0.05}, "negative")
    synthetic = with_detail(angry_voice, atypicality=9.0)  # far from any voice it was trained on
    assert fuse_file([{"text": sad_words, "voice": synthetic}], weights, {}, trust)[0][0].label == "sadness"
