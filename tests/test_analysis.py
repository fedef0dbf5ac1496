from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest

from moodlens.analysis import (
    Analysis,
    Damage,
    FusionSettings,
    LiveSettings,
    MediaRecord,
    ModalityInfo,
    ModalityResult,
    Prediction,
    Settings,
    SpeakerSettings,
    TurnSettings,
    UtteranceResult,
    validate,
)
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.summary import summarize, summarize_speakers


def sample_analysis() -> Analysis:
    joy = Prediction.from_probabilities(EMOTIONS, [0.05, 0.0, 0.05, 0.7, 0.2, 0.0, 0.0])
    positive = Prediction.from_probabilities(SENTIMENTS, [0.1, 0.1, 0.8])
    face = ModalityResult(joy, positive, 0.5, {"frames": 4, "frames_with_face": 2})
    utterances = [
        UtteranceResult(0, 1.0, 2.5, "Oh it's so much more fun with you.", "Rachel", "transcript",
                        joy, positive, ["text", "face"], {"text": face, "face": face}, {"by": "transcript"}),
        UtteranceResult(1, 3.0, 4.0, "", None, "window", None, None, [], {}),
        UtteranceResult(2, 4.0, 4.2, "Yes.", "S1", "asr", joy, positive, ["text"], {"text": face},
                        {"by": "voice+face track", "face_track": "F2"}),
        UtteranceResult(3, 4.3, 4.5, "Oh.", "unknown", "asr", joy, positive, ["text"], {"text": face},
                        {"reason": "too short to tell the voice (0.20 s < 0.5 s), and no talking face"}),
    ]
    return Analysis(
        media=MediaRecord(path="/videos/clip.mp4", container="mp4", duration=4.2, size_bytes=10,
                          has_audio=True, has_video=True),
        settings=Settings(fps=2.0),
        modalities={"text": ModalityInfo(True, "m", "MELD"), "face": ModalityInfo(True, "f", "FER"),
                    "voice": ModalityInfo(False, None, None, "no model")},
        utterances=utterances,
        summary=summarize(utterances),
        speakers=summarize_speakers(utterances, ["Rachel"]),
        notes=[],
        moodlens_version="0.1.0",
        created_at="2026-11-22T00:00:00+00:00",
    )


def test_valid_and_round_trips() -> None:
    data = sample_analysis().to_dict()
    validate(data)
    assert Analysis.from_dict(data) == sample_analysis()
    assert data["utterances"][0]["emotion"]["probabilities"]["joy"] == pytest.approx(0.7)


def test_speakers_sum_up_who_said_what() -> None:
    rachel, s1 = sample_analysis().speakers  # "unknown" and unattributed lines belong to no speaker
    assert (rachel.id, rachel.name, rachel.utterance_count, rachel.talk_time) == ("Rachel", "Rachel", 1, 1.5)
    assert (s1.id, s1.name, s1.face_tracks, s1.dominant_emotion) == ("S1", None, ["F2"], "joy")


def test_a_schema_1_1_document_still_loads() -> None:
    data = sample_analysis().to_dict()
    data.pop("speakers")
    for u in data["utterances"]:
        u.pop("speaker_detail")
    data["schema_version"] = "1.1"
    validate(data)
    old = Analysis.from_dict(data)
    assert old.speakers == [] and old.utterances[0].speaker_detail == {}


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


def test_a_newer_major_schema_is_refused_and_the_version_is_the_package_s() -> None:
    from importlib.metadata import version

    import moodlens

    data = sample_analysis().to_dict()
    newer = {**data, "schema_version": "2.0"}
    with pytest.raises(ValueError, match=r"schema 2\.0, newer than the 1\.4"):
        Analysis.from_dict(newer)
    with pytest.raises(ValueError, match="not an Analysis document"):
        Analysis.from_dict({**data, "schema_version": "x"})
    assert Analysis.from_dict({**data, "schema_version": "1.9"}).schema_version == "1.9"  # a newer minor only adds
    assert moodlens.__version__ == version("moodlens")


def test_media_and_settings_are_typed_records_that_round_trip() -> None:
    """Every field of media and settings, each nested record, through JSON and back; a record that
    is absent stays absent in the JSON, and so does an absent value inside one."""
    full = dataclasses.replace(
        sample_analysis(),
        media=MediaRecord("talk.mkv", "matroska,webm", 12.5, 2048, True, False, audio_codec="opus",
                          audio_sample_rate=48000, audio_channels=2, damage=Damage(1, 0.02, 0, 0)),
        settings=Settings(asr_model="tiny.en", fps=1.0, device="cpu",
                          fusion=FusionSettings("decision-level", weights={"text": 1.0}, baselines=["face"]),
                          speakers=SpeakerSettings("voice (CAM++)", voice_model="campplus"),
                          turns=TurnSettings(count=3, segments=5, max_gap=0.2), modalities=["text", "voice"],
                          language="en", live=LiveSettings("standard input", "2026-12-06T00:00:00+00:00",
                                                           "end of stream", True)))
    data = json.loads(full.to_json())
    validate(data)
    assert Analysis.from_dict(data) == full
    assert data["settings"]["speakers"] == {"method": "voice (CAM++)", "voice_model": "campplus"}
    assert data["settings"]["asr_model"] == "tiny.en" and data["settings"]["transcript"] is None
    assert data["media"]["damage"] == {"audio_packets": 1, "audio_seconds": 0.02, "video_packets": 0,
                                       "demux_errors": 0}
    plain = sample_analysis().to_dict()
    assert "live" not in plain["settings"] and "turns" not in plain["settings"] and "damage" not in plain["media"]


def test_an_unknown_key_from_a_newer_minor_schema_is_ignored() -> None:
    data = sample_analysis().to_dict()
    data["schema_version"] = "1.9"
    data["media"]["hdr"] = True
    data["settings"]["turns"] = {"count": 1, "segments": 1, "max_gap": 0.2, "merged_by": "speaker"}
    loaded = Analysis.from_dict(data)
    assert loaded.settings.turns == TurnSettings(1, 1, 0.2) and loaded.media.path == "/videos/clip.mp4"
