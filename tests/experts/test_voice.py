"""The voice expert in the pipeline: every utterance with audio gets a voice view, or a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from moodlens.analysis import validate
from moodlens.cli import app
from moodlens.pipeline import AnalyzeOptions, analyze
from tests.media_factory import RATE, tone, write_media

SRT = ("1\n00:00:00,000 --> 00:00:01,500\nI am so angry with you!\n\n"
       "2\n00:00:01,600 --> 00:00:01,800\nNo.\n\n"
       "3\n00:00:02,000 --> 00:00:03,500\nAnd then it went quiet.\n")


def test_voice_reads_each_utterance_or_says_why_not(tmp_path: Path) -> None:
    audio = np.concatenate([tone(1.9, 180.0), np.zeros(int(1.6 * RATE), np.float32)])  # sound, then silence
    media = write_media(tmp_path / "talk.wav", seconds=3.5, video_codec=None, audio_codec="pcm_s16le", audio=audio)
    (tmp_path / "lines.srt").write_text(SRT, encoding="utf-8")
    analysis = analyze(media, AnalyzeOptions(transcript=str(tmp_path / "lines.srt")))
    validate(analysis.to_dict())
    first, short, quiet = (u.per_modality["voice"] for u in analysis.utterances)
    assert first.emotion is not None and first.coverage == 1.0
    assert sum(first.emotion.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    # read with the audio around it, as the head was trained: here up to the next line, never into it
    assert first.detail["seconds_read"] == pytest.approx(1.6, abs=0.01)
    assert 0 <= first.detail["pitch_jitter"] < 0.02  # a steady tone's pitch does not wobble as a person's
    assert short.emotion is None and short.detail["skipped"].startswith("too short (0.20 s")
    assert quiet.emotion is None and quiet.detail["skipped"].startswith("silent")
    assert "voice" in analysis.utterances[0].modalities_used
    assert "voice" not in analysis.utterances[1].modalities_used
    assert analysis.modalities["voice"].available  # an audio-only file works
    assert analysis.modalities["face"].reason == "no video stream"


def test_no_audio_means_no_voice(media_dir: Path) -> None:
    analysis = analyze(media_dir / "silent_video.mp4")
    assert analysis.modalities["voice"].reason == "no audio stream"
    assert all("voice" not in u.per_modality for u in analysis.utterances)


def test_a_corrupt_voice_weights_file_is_one_line(tmp_path: Path, media_dir: Path) -> None:
    bad = tmp_path / "voice.safetensors"
    bad.write_bytes(b"garbage" * 10)
    result = CliRunner().invoke(app, ["analyze", str(media_dir / "tone.wav"), "--voice-weights", str(bad),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a moodlens voice head" in lines[0], result.output
    assert not (tmp_path / "out").exists()
