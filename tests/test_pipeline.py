from __future__ import annotations

import re
from pathlib import Path

import pytest

from moodlens.analysis import validate
from moodlens.pipeline import STAGES, AnalyzeOptions, analyze
from tests.conftest import DEMO


def test_demo_video_end_to_end() -> None:
    stages: list[tuple[str, float]] = []
    analysis = analyze(DEMO, progress=lambda stage, done: stages.append((stage, done)))
    validate(analysis.to_dict())
    assert analysis.media.duration == pytest.approx(21.9, abs=0.5)
    assert len(analysis.utterances) >= 5
    weights = analysis.settings.fusion.weights
    for u in analysis.utterances:
        assert set(u.per_modality) == {"text", "face", "voice"}  # the face is visible throughout
        assert u.modalities_used == [m for m in ("text", "face", "voice") if weights[m] > 0]
        assert sum(u.emotion.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(analysis.modalities[m].available for m in ("text", "face", "voice"))
    assert "CC BY-NC-SA 4.0" in analysis.modalities["voice"].trained_on
    assert {s for s, _ in stages} == set(STAGES) == {"probe", "utterances", "voices", "text", "face", "voice", "fusion",
                                                     "speakers"}
    assert len(analysis.speakers) == 1  # one (synthetic) voice, one face: never split
    assert all(u.speaker == "S1" and u.speaker_detail["by"] == "voice+face track" for u in analysis.utterances)
    happy = next(u for u in analysis.utterances if "happy" in u.text.lower())
    assert happy.emotion.label == "joy" and happy.sentiment.label == "positive"


def test_numpy_blas_runs_on_one_thread_during_analysis_only(media_dir: Path) -> None:
    """Its busy-waiting threads would take a core from the models (see analyze)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:  # numpy's own; other wheels bring single-threaded builds
        return {lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas" and "numpy" in lib["filepath"]}

    seen: list[set[int]] = []
    with threadpool_limits(2, user_api="blas"):
        analyze(media_dir / "tone.wav", progress=lambda stage, done: seen.append(blas_threads()))
        after = blas_threads()
    assert seen and all(threads == {1} for threads in seen)
    assert after == {2}


def test_video_without_audio_is_face_only(media_dir: Path) -> None:
    analysis = analyze(media_dir / "silent_video.mp4")
    assert [(u.start, u.end) for u in analysis.utterances] == [(0.0, 5.0), (5.0, 6.0)]
    assert all(u.source == "window" and u.modalities_used == ["face"] for u in analysis.utterances)
    assert any("no audio stream" in n for n in analysis.notes)
    assert analysis.modalities["face"].available
    assert analysis.modalities["text"].reason == "no audio stream and no transcript"
    validate(analysis.to_dict())


def test_no_speech_gives_zero_utterances_and_a_note(media_dir: Path) -> None:
    analysis = analyze(media_dir / "tone.wav")
    assert analysis.utterances == []
    assert analysis.summary.dominant_emotion is None
    assert any("no speech" in n for n in analysis.notes)
    assert analysis.modalities["face"].reason == "no video stream"
    assert analysis.modalities["text"].reason == "no speech found"
    validate(analysis.to_dict())


def test_transcript_replaces_asr_and_no_face_drops_the_face(tmp_path: Path, media_dir: Path) -> None:
    srt = tmp_path / "lines.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nI hate this so much!\n\n"
                   "2\n00:00:01,000 --> 00:00:02,000\nThis is wonderful, thank you!\n",
                   encoding="utf-8")
    analysis = analyze(media_dir / "no_face.mp4", AnalyzeOptions(transcript=str(srt)))
    assert [u.text for u in analysis.utterances] == ["I hate this so much!",
                                                     "This is wonderful, thank you!"]
    for u in analysis.utterances:  # the tone under it is audio, so the voice expert reads it too
        assert "face" not in u.modalities_used and u.modalities_used[0] == "text"
        assert u.per_modality["face"].emotion is None and "no clear face" in u.per_modality["face"].detail["skipped"]
    assert analysis.modalities["face"].reason == "no face found in the sampled frames"
    assert analysis.utterances[0].sentiment.label == "negative"
    assert analysis.utterances[1].sentiment.label == "positive"
    assert analysis.settings.asr_model is None


def test_python_api() -> None:
    import moodlens

    analysis = moodlens.analyze(DEMO, fps=1.0)
    assert isinstance(analysis, moodlens.Analysis)
    assert analysis.settings.fps == 1.0


def test_modalities_turned_off_are_not_run_and_say_so(tmp_path: Path) -> None:
    srt = tmp_path / "lines.srt"
    srt.write_text("1\n00:00:04,000 --> 00:00:06,400\nI am so happy today, I love it.\n", encoding="utf-8")
    analysis = analyze(DEMO, AnalyzeOptions(transcript=str(srt), modalities=("text", "voice")))
    face = analysis.modalities["face"]
    assert not face.available and face.model is None and face.reason == "turned off (modalities: text,voice)"
    assert analysis.modalities["text"].available and analysis.modalities["voice"].available
    (line,) = analysis.utterances
    assert "face" not in line.per_modality and line.modalities_used == ["text", "voice"]
    assert line.speaker == "S1" and not line.speaker_detail.get("face_track")  # voice alone names it
    assert analysis.settings.modalities == ["text", "voice"]
    validate(analysis.to_dict())
    only_face = analyze(DEMO, AnalyzeOptions(transcript=str(srt), modalities="face"))  # as the CLI spells it
    assert only_face.utterances[0].modalities_used == ["face"]
    assert only_face.utterances[0].text == "I am so happy today, I love it."  # utterances still come first


@pytest.mark.parametrize(("options", "message"), [
    ({"modalities": ("text", "text")}, "modalities must be distinct names"),
    ({"modalities": ()}, "got none"),
    ({"device": "tpu"}, "device must be cpu or cuda, got 'tpu'"),
    ({"fps": 0}, "fps must be in (0, 60]"),
    ({"voice_weights": "/nope.safetensors"}, "/nope.safetensors: voice model file not found"),
])
def test_the_library_checks_its_options_too(options: dict, message: str) -> None:
    import moodlens

    with pytest.raises(ValueError, match=re.escape(message)):
        moodlens.analyze(DEMO, **options)


def test_cuda_is_refused_where_the_models_would_run_not_where_options_are_made() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present; this checks the refusal when there is none")
    options = AnalyzeOptions(device="cuda")  # a Ray driver makes these for GPU workers
    with pytest.raises(ValueError, match="device cuda asked for, but no CUDA GPU is available"):
        analyze(DEMO, options)


def test_damage_and_notes_are_the_files_not_one_per_pass(tmp_path: Path) -> None:
    """Speech recognition, the voice expert and the speakers each decode the audio: a bad packet
    is one bad packet, and a cut file is noted once."""
    from moodlens.media import DecodeDamage
    from tests.media_factory import truncate, write_media
    from tests.test_media import audio_seconds, flip_middle

    damaged = flip_middle(DEMO, tmp_path / "damaged.mp4")
    one_pass = DecodeDamage()
    audio_seconds(damaged, [], one_pass)
    analysis = analyze(damaged)
    assert one_pass.audio_packets >= 1 and len(analysis.utterances) >= 2  # several passes read the audio
    assert analysis.to_dict()["media"]["damage"] == one_pass.to_dict()

    cut = truncate(write_media(tmp_path / "whole.mp4", seconds=4.0, faststart=True), tmp_path / "cut.mp4", 0.5)
    notes = analyze(cut).notes
    assert any(n.startswith("incomplete media") for n in notes)
    assert len(notes) == len(set(notes))


def test_a_files_audio_is_decoded_once_for_every_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Speech recognition, the voice expert and the speakers all read the audio; one decodes it."""
    import moodlens.asr
    import moodlens.experts.voice
    import moodlens.media
    import moodlens.speakers

    decoded: list[str] = []
    original = moodlens.media.iter_audio

    def counting(path: object, *args: object, **kwargs: object) -> object:
        decoded.append(str(path))
        return original(path, *args, **kwargs)

    for module in (moodlens.media, moodlens.asr, moodlens.experts.voice, moodlens.speakers):
        monkeypatch.setattr(module, "iter_audio", counting)
    analysis = analyze(DEMO, AnalyzeOptions(fps=1.0))
    assert decoded == [str(DEMO)]
    voiced = [u for u in analysis.utterances if u.per_modality.get("voice") and u.per_modality["voice"].emotion]
    assert voiced and analysis.settings.speakers.method.startswith("voice")
