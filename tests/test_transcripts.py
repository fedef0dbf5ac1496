"""Transcript files (moodlens.transcripts): SRT, WebVTT and MELD CSVs read as utterances, and bad ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from moodlens.errors import TranscriptError
from moodlens.transcripts import parse_timestamp, read_transcript
from moodlens.utterances import Utterance


def test_parse_timestamp_formats() -> None:
    assert parse_timestamp("01:02:03,456") == pytest.approx(3723.456)
    assert parse_timestamp("02:03.5") == pytest.approx(123.5)
    assert parse_timestamp("0:09:57,431") == pytest.approx(597.431)
    with pytest.raises(ValueError):
        parse_timestamp("soon")


def test_read_srt(tmp_path: Path) -> None:
    path = tmp_path / "a.srt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,500\nHello <i>there</i>\n\n"
                    "2\n00:00:03,000 --> 00:00:04,000\nSecond line\nwraps\n", encoding="utf-8")
    found = read_transcript(path)
    assert found == [Utterance(1.0, 2.5, "Hello there", None, "transcript"),
                     Utterance(3.0, 4.0, "Second line wraps", None, "transcript")]


def test_read_vtt_with_speaker(tmp_path: Path) -> None:
    path = tmp_path / "a.vtt"
    path.write_text("WEBVTT\n\n00:01.000 --> 00:02.000 align:start\n<v Monica>I can!\n",
                    encoding="utf-8")
    assert read_transcript(path) == [Utterance(1.0, 2.0, "I can!", "Monica", "transcript")]


def test_read_meld_csv_rebases_episode_times(tmp_path: Path) -> None:
    path = tmp_path / "clip.csv"
    path.write_text('Utterance,Speaker,StartTime,EndTime\n"Yeah, I lost it.",Ross,'
                    '"00:21:25,325","00:21:26,826"\n', encoding="utf-8")
    [utterance] = read_transcript(path, duration=2.31)
    assert utterance.start == 0.0 and utterance.end == pytest.approx(1.501)
    assert utterance.speaker == "Ross" and utterance.text == "Yeah, I lost it."


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("a.txt", "hello", "must be .srt, .vtt or .csv"),
        ("a.srt", "no cues at all", "no timed lines"),
        ("a.csv", "text,when\nhi,now\n", "needs the columns"),
        ("a.srt", "1\n00:00:xx,000 --> 00:00:02,000\nhi\n", "bad cue time"),
    ],
)
def test_bad_transcripts(tmp_path: Path, name: str, content: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TranscriptError, match=reason):
        read_transcript(path)


def test_missing_transcript(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="not found"):
        read_transcript(tmp_path / "none.srt")


def test_a_meld_csv_transcript_is_normalised_as_training_text_is(tmp_path: Path) -> None:
    """cp1252 damage repaired and typographic quotes folded, exactly as data/meld.py reads MELD."""
    from moodlens.data.meld import read_meld_csv

    path = tmp_path / "clip.csv"
    line = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,StartTime,EndTime\n"
    path.write_text(line + '1,"I\x92m  here\x85 “yes”",Joey,joy,positive,1,1,"0:00:01,000","0:00:02,000"\n',
                    encoding="utf-8")
    [utterance] = read_transcript(path)
    assert utterance.text == 'I\'m here... "yes"' == read_meld_csv(path)[0].text
