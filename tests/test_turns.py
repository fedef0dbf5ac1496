"""Turns: fragments of one speaker's turn are judged together; captions keep each fragment."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from moodlens.analysis import Prediction, TurnSettings, UtteranceResult
from moodlens.labels import EMOTIONS
from moodlens.options import AnalyzeOptions
from moodlens.pipeline import analyze
from moodlens.turns import MAX_TURN_SECONDS, group_turns, per_segment
from moodlens.utterances import Utterance
from tests.conftest import DEMO, SHARED, need_shared
from tests.media_factory import voiced_part


def fragments(*spans: tuple[float, float], speakers: tuple[str | None, ...] = ()) -> list[Utterance]:
    return [Utterance(start, end, f"part {k}.", speakers[k] if speakers else None, "asr")
            for k, (start, end) in enumerate(spans)]


def test_fragments_with_short_gaps_form_one_turn() -> None:
    """'Oh God! | Oh, honey... | Oh, that's OK.' as ASR cuts it: one turn, its text whole."""
    segments = fragments((0.0, 0.6), (0.8, 1.5), (1.7, 2.6), (4.0, 5.0))
    turns = group_turns(segments, max_gap=0.35)
    assert [t.members for t in turns] == [(0, 1, 2), (3,)]
    assert turns[0].utterance.text == "part 0. part 1. part 2."
    assert (turns[0].utterance.start, turns[0].utterance.end) == (0.0, 2.6)
    assert turns[1].utterance == segments[3]  # a turn of one is the segment itself


def test_a_longer_pause_or_another_speaker_starts_a_new_turn() -> None:
    segments = fragments((0.0, 1.0), (1.2, 2.0), (2.1, 3.0), speakers=("Ross", "Ross", "Rachel"))
    assert [t.members for t in group_turns(segments, max_gap=0.35)] == [(0, 1), (2,)]
    assert [t.members for t in group_turns(segments, max_gap=0.1)] == [(0,), (1,), (2,)]
    assert [t.members for t in group_turns(segments, max_gap=0.0)] == [(0,), (1,), (2,)]


def test_a_change_of_voice_ends_a_turn_however_short_the_pause() -> None:
    """People answer as quickly as they pause inside a line, so the voice decides where the
    pause cannot; a segment whose voice cannot be told (None) does not split a turn."""
    segments = fragments((0.0, 1.0), (1.1, 2.0), (2.1, 3.0), (3.1, 3.4), (3.5, 4.5))
    assert [t.members for t in group_turns(segments, max_gap=0.35)] == [(0, 1, 2, 3, 4)]
    voices = ("S1", "S1", "S2", None, "S2")
    assert [t.members for t in group_turns(segments, max_gap=0.35, voices=voices)] == [(0, 1), (2, 3, 4)]
    # a voice unknown between two others does not bridge them: a turn holds one voice
    assert [t.members for t in group_turns(segments, max_gap=0.35, voices=("S1", None, "S2", None, "S1"))] == [
        (0, 1), (2, 3), (4,)]
    assert len(group_turns(segments, max_gap=0.0, voices=voices)) == 5


def test_windows_and_transcript_cues_never_join_and_turns_stay_bounded() -> None:
    windows = [Utterance(5.0 * i, 5.0 * (i + 1), "", None, "window") for i in range(3)]
    assert len(group_turns(windows, max_gap=1.0)) == 3
    cues = [Utterance(1.0 * i, 1.0 * i + 0.9, "a cue.", None, "transcript") for i in range(3)]
    assert len(group_turns(cues, max_gap=1.0)) == 3  # the user's own units
    monologue = fragments(*[(1.0 * i, 1.0 * i + 0.9) for i in range(60)])
    turns = group_turns(monologue, max_gap=0.35)
    assert len(turns) > 1
    assert all(t.utterance.duration <= MAX_TURN_SECONDS for t in turns)
    assert [i for t in turns for i in t.members] == list(range(60))  # every segment, once, in order


def test_segments_share_their_turns_judgement_and_keep_their_own_time() -> None:
    segments = fragments((0.0, 0.6), (0.8, 1.5), (3.0, 4.0))
    turns = group_turns(segments, max_gap=0.35)
    judged = [UtteranceResult(t.index, t.utterance.start, t.utterance.end, t.utterance.text, "S1", "asr",
                              Prediction.from_probabilities(EMOTIONS, [1, 0, 0, 0, 0, 0, k]), None, ["text"], {})
              for k, t in enumerate(turns)]
    out = per_segment(turns, segments, judged)
    assert [(u.index, u.start, u.end, u.text, u.turn) for u in out] == [
        (0, 0.0, 0.6, "part 0.", 0), (1, 0.8, 1.5, "part 1.", 0), (2, 3.0, 4.0, "part 2.", 1)]
    assert out[0].emotion == out[1].emotion != out[2].emotion


@pytest.mark.skipif(not DEMO.is_file(), reason="examples/demo.mp4 is missing")
def test_recognised_fragments_are_judged_as_one_turn_and_captions_keep_their_own() -> None:
    """With a pause limit longer than the demo's pauses, its recognised segments join into
    turns: each segment keeps its own time and text, and shares its turn's judgement."""
    options = AnalyzeOptions(modalities=("text",), diarize=False)
    joined = analyze(DEMO, replace(options, turn_gap=1.5))
    alone = analyze(DEMO, replace(options, turn_gap=0.0))
    assert [u.turn for u in alone.utterances] == list(range(len(alone.utterances)))
    turns = joined.settings.turns
    assert turns.segments == len(joined.utterances) and turns.count < turns.segments
    assert turns.max_gap == 1.5
    assert turns.unit == "recognised segments joined across pauses of up to 1.5 s (no voice to tell speakers apart)"
    assert alone.settings.turns.unit == "each recognised segment alone"
    for k in range(turns.count):
        members = [u for u in joined.utterances if u.turn == k]
        assert members, k
        assert all(u.emotion == members[0].emotion and u.per_modality == members[0].per_modality for u in members)
        assert all(a.end <= b.start for a, b in itertools.pairwise(members))  # each keeps its own time


@pytest.mark.skipif(not DEMO.is_file(), reason="examples/demo.mp4 is missing")
def test_a_transcripts_cues_stay_their_own_turns(tmp_path: Path) -> None:
    srt = tmp_path / "cues.srt"
    srt.write_text("1\n00:00:04,000 --> 00:00:05,000\nI am so happy today,\n\n"
                   "2\n00:00:05,100 --> 00:00:06,400\nI love it.\n", encoding="utf-8")
    analysis = analyze(DEMO, AnalyzeOptions(transcript=str(srt), modalities=("text",), diarize=False))
    assert [u.turn for u in analysis.utterances] == [0, 1]
    assert analysis.settings.turns == TurnSettings(
        count=2, segments=2, max_gap=AnalyzeOptions().turn_gap,
        unit="each segment alone (a transcript's cues, or a silent video's windows)")


def test_two_voices_answering_quickly_are_never_one_turn(tmp_path: Path) -> None:
    """Two real actors (RAVDESS 3 and 8) take turns with 0.15 s between lines, under a pause limit
    (0.5 s) that would join everything: every turn still holds one voice. Without the voice cue
    the recognised segments of both actors were judged as one turn."""
    ravdess = need_shared(SHARED / "data" / "speech" / "ravdess")
    one, two = (sorted((ravdess / f"Actor_{a:02d}").glob("*.flac"))[::20][:3] for a in (3, 8))
    gap = np.zeros(int(0.15 * 16000), np.float32)
    audio = np.concatenate([part for a, b in zip(one, two, strict=True) for part in (voiced_part(a), gap,
                                                                                     voiced_part(b), gap)])
    wavfile.write(tmp_path / "quick.wav", 16000, (audio * 32767).astype(np.int16))
    analysis = analyze(tmp_path / "quick.wav", AnalyzeOptions(modalities=("text",), turn_gap=0.5))
    if len(analysis.utterances) > 1:  # Whisper sometimes hears the whole as one repeated segment
        assert analysis.settings.turns.unit == ("recognised segments joined across pauses of up to 0.5 s, "
                                                "within one voice (CAM++)")
    for turn in {u.turn for u in analysis.utterances}:
        voices = {u.speaker for u in analysis.utterances if u.turn == turn and u.speaker_detail.get("by") == "voice"}
        assert len(voices) <= 1, (turn, [(u.start, u.end, u.speaker, u.turn) for u in analysis.utterances])
