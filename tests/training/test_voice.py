"""`moodlens train-voice`: labels from file names, speaker-independent selection, a head that
`analyze --voice-weights` then uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moodlens.cli import app
from moodlens.models.voice import VoiceHead
from moodlens.training.voice import VoiceDataError, default_heldout, find_clips
from tests.conftest import SHARED
from tests.media_factory import write_media

SPEECH = SHARED / "data" / "speech" / "ravdess"


@pytest.mark.parametrize(("layout", "name", "emotion", "speaker"), [
    ("ravdess", "03-01-02-01-01-01-07.wav", "neutral", "actor07"),  # calm is read as neutral
    ("ravdess", "03-01-08-02-02-01-12.flac", "surprise", "actor12"),
    ("emodb", "03a01Wa.wav", "anger", "speaker03"),
    ("crema-d", "1001_DFA_HAP_XX.wav", "joy", "1001"),
    ("tess", "OAF_back_ps.wav", "surprise", "OAF"),
    ("emofilm", "f_rab019bes.wav", "anger", "f-es"),  # film clips name no actor: gender and language group them
])
def test_labels_come_from_file_names(tmp_path: Path, layout: str, name: str, emotion: str, speaker: str) -> None:
    (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not audio")
    clips = find_clips(tmp_path, layout)
    assert [(c.emotion, c.speaker) for c in clips] == [(emotion, speaker)]


def test_unlabelled_data_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "03a01La.wav").write_bytes(b"x")  # EmoDB boredom has no MELD class: dropped
    with pytest.raises(VoiceDataError, match="no labelled clips"):
        find_clips(tmp_path, "emodb")
    with pytest.raises(VoiceDataError, match="unknown layout"):
        find_clips(tmp_path, "nope")


def test_csv_layout(tmp_path: Path) -> None:
    write_media(tmp_path / "a.wav", seconds=1.0, video_codec=None, audio_codec="pcm_s16le")
    (tmp_path / "labels.csv").write_text("path,emotion,speaker\na.wav,Joy,ann\nb.wav,boredom,bob\n")
    clips = find_clips(tmp_path / "labels.csv", "csv")
    assert [(c.path.name, c.emotion, c.speaker) for c in clips] == [("a.wav", "joy", "ann")]


def test_train_voice_selects_on_held_out_speakers_and_analyze_uses_it(tmp_path: Path) -> None:
    if not SPEECH.exists():
        pytest.skip(f"{SPEECH} is absent: this test trains on real RAVDESS speech")
    data = tmp_path / "four-actors"
    for actor in ("Actor_01", "Actor_02", "Actor_03", "Actor_04"):
        (data / actor).mkdir(parents=True)
        for clip in sorted((SPEECH / actor).glob("*.flac"))[:30]:
            (data / actor / clip.name).symlink_to(clip)  # read from ../shared, never copied
    assert default_heldout(find_clips(data, "ravdess")) == ["actor04"]
    out = tmp_path / "voice.safetensors"
    result = CliRunner().invoke(app, ["train-voice", "--data", str(data), "--layout", "ravdess", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "held-out speakers actor04: accuracy" in result.output
    head = VoiceHead.load(out)
    evaluation = head.metadata["evaluation"]
    assert evaluation["clips"] == 120 and evaluation["heldout_speakers"] == ["actor04"]
    assert sum(map(sum, evaluation["heldout_confusion"])) == 30  # scored on actor 4 only
    media = write_media(tmp_path / "tone.wav", seconds=2.0, video_codec=None, audio_codec="pcm_s16le")
    (tmp_path / "line.srt").write_text("1\n00:00:00,000 --> 00:00:02,000\nHello there.\n", encoding="utf-8")
    analyzed = CliRunner().invoke(app, ["analyze", str(media), "--transcript", str(tmp_path / "line.srt"),
                                        "--voice-weights", str(out), "--out", str(tmp_path / "out"),
                                        "--format", "json"])
    assert analyzed.exit_code == 0, analyzed.output
    document = json.loads((tmp_path / "out" / "tone.analysis.json").read_text(encoding="utf-8"))
    assert "ravdess speech in four-actors (120 clips, 4 speakers)" in document["modalities"]["voice"]["trained_on"]
    assert document["utterances"][0]["per_modality"]["voice"]["emotion"] is not None


def test_train_voice_reads_and_writes_s3(tmp_path: Path, bucket: str) -> None:
    """Labelled speech under an S3 prefix in, the head to an S3 object out."""
    if not SPEECH.exists():
        pytest.skip(f"{SPEECH} is absent: this test trains on real RAVDESS speech")
    from moodlens.storage import s3_client, split_s3

    name = split_s3(bucket)[0]
    for actor in ("Actor_01", "Actor_02", "Actor_03"):
        for clip in sorted((SPEECH / actor).glob("*.flac"))[:20]:
            s3_client().upload_file(str(clip), name, f"corpora/ravdess/{actor}/{clip.name}")
    result = CliRunner().invoke(app, ["train-voice", "--data", f"{bucket}/corpora/ravdess/", "--layout", "ravdess",
                                      "--out", f"{bucket}/heads/voice.safetensors"])
    assert result.exit_code == 0, result.output
    assert f"wrote {bucket}/heads/voice.safetensors" in result.output
    s3_client().download_file(name, "heads/voice.safetensors", str(tmp_path / "voice.safetensors"))
    head = VoiceHead.load(tmp_path / "voice.safetensors")
    assert head.metadata["evaluation"]["data"] == f"{bucket}/corpora/ravdess/"
    assert head.metadata["trained_on"] == "ravdess speech in ravdess (60 clips, 3 speakers)"
    missing = CliRunner().invoke(app, ["train-voice", "--data", f"{bucket}/nothing/", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "nothing under this S3 prefix" in missing.output


def test_the_window_a_head_was_trained_with_is_the_window_it_reads(tmp_path: Path) -> None:
    """`--min-window-seconds` pads each clip in training; the head records it, and encoder_for
    pads the same way at analysis, so features never differ between the two."""
    if not SPEECH.exists():
        pytest.skip(f"{SPEECH} is absent: this test trains on real RAVDESS speech")
    from moodlens.models.voice import encoder_for

    data = tmp_path / "two-actors"
    for actor in ("Actor_01", "Actor_02"):
        (data / actor).mkdir(parents=True)
        for clip in sorted((SPEECH / actor).glob("*.flac"))[:16]:
            (data / actor / clip.name).symlink_to(clip)
    out = tmp_path / "voice.safetensors"
    result = CliRunner().invoke(app, ["train-voice", "--data", str(data), "--layout", "ravdess", "--out", str(out),
                                      "--min-window-seconds", "5"])
    assert result.exit_code == 0, result.output
    head = VoiceHead.load(out)
    assert head.config.min_window_seconds == 5.0
    assert encoder_for(head).min_window == 5 * 16000
