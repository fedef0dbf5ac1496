from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moodlens.errors import TranscriptError
from moodlens.utterances import (
    TranscribeOptions,
    Utterance,
    cpu_fallback_note,
    cuda_unusable,
    fixed_windows,
    load_asr_model,
    parse_timestamp,
    quietest_point,
    read_transcript,
    split_sentences,
    transcribe,
)
from tests.conftest import DEMO


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


def test_fixed_windows_cover_the_duration() -> None:
    windows = fixed_windows(12.0, 5.0)
    assert [(w.start, w.end) for w in windows] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]
    assert all(w.source == "window" and w.text == "" for w in windows)


class _Word:
    def __init__(self, start: float, end: float, word: str) -> None:
        self.start, self.end, self.word = start, end, word


class _Segment:
    def __init__(self, words: list[_Word]) -> None:
        self.words = words
        self.start, self.end = words[0].start, words[-1].end
        self.text = "".join(w.word for w in words)


def test_split_sentences_cuts_at_sentence_ends() -> None:
    segment = _Segment([_Word(0, 0.5, " Hi"), _Word(0.5, 1.0, " there."), _Word(1.5, 2.0, " Wow!"),
                        _Word(2.1, 2.4, " okay")])
    assert split_sentences(segment) == [(0, 1.0, "Hi there."), (1.5, 2.0, "Wow!"),
                                        (2.1, 2.4, "okay")]


def test_transcribe_the_demo_offline() -> None:
    utterances = list(transcribe(DEMO))
    text = " ".join(u.text.lower() for u in utterances)
    for word in ("welcome", "happy", "angry", "friends"):
        assert word in text
    assert len(utterances) >= 5
    assert all(0 <= u.start < u.end <= 22.5 for u in utterances)
    assert [u.start for u in utterances] == sorted(u.start for u in utterances)


def test_quietest_point_lands_in_the_silence() -> None:
    rate = 16_000
    loud = np.sin(np.arange(rate * 3) * 0.3).astype(np.float32)
    samples = np.concatenate([loud, np.zeros(rate // 2, np.float32), loud])  # silence at 3.0-3.5 s
    cut = quietest_point(samples, search=5 * rate)
    assert 3.0 * rate <= cut <= 3.5 * rate
    assert quietest_point(samples[:1000], search=5 * rate) == 1000  # too short to cut


def test_chunked_transcription_keeps_the_words() -> None:
    """Eight-second chunks force three cuts in the demo; each lands in a pause, not a word."""
    chunked = list(transcribe(DEMO, TranscribeOptions(chunk_seconds=8.0)))
    text = " ".join(u.text.lower() for u in chunked)
    for word in ("welcome", "happy", "angry", "disgusting", "friend", "expect"):
        assert word in text
    assert [u.start for u in chunked] == sorted(u.start for u in chunked)
    assert chunked[-1].end <= 22.5


def test_a_meld_csv_transcript_is_normalised_as_training_text_is(tmp_path: Path) -> None:
    """cp1252 damage repaired and typographic quotes folded, exactly as data/meld.py reads MELD."""
    from moodlens.data.meld import read_meld_csv

    path = tmp_path / "clip.csv"
    line = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,StartTime,EndTime\n"
    path.write_text(line + '1,"I\x92m  here\x85 “yes”",Joey,joy,positive,1,1,"0:00:01,000","0:00:02,000"\n',
                    encoding="utf-8")
    [utterance] = read_transcript(path)
    assert utterance.text == 'I\'m here... "yes"' == read_meld_csv(path)[0].text


def test_whisper_falls_back_to_the_cpu_where_ctranslate2_has_no_cuda() -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count():
        pytest.skip("CTranslate2 sees a CUDA device here; the next test fakes the failure instead")
    cuda_unusable.cache_clear()
    assert cuda_unusable("tiny.en") == "CTranslate2 sees no CUDA device"
    assert load_asr_model(TranscribeOptions(device="cuda")) is load_asr_model(TranscribeOptions())
    assert cpu_fallback_note("tiny.en", "cuda", "ASR") == (
        "ASR ran on the CPU, not the GPU: CTranslate2 sees no CUDA device")
    assert cpu_fallback_note("tiny.en", "cpu", "ASR") is None


def test_a_cuda_library_missing_at_the_first_product_is_found_at_load_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """CTranslate2's wheels load cuBLAS lazily: the GPU must be tried once before a file relies on it."""
    import ctranslate2

    from moodlens import utterances

    class Encoder:
        @staticmethod
        def encode(features: object) -> None:
            raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")

    class NoCublas:  # what a CUDA 12 build of CTranslate2 does on a CUDA 13 machine
        def __init__(self) -> None:
            self.feat_kwargs = {"feature_size": 80}
            self.model = Encoder()

    real = utterances._whisper
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    monkeypatch.setattr(utterances, "_whisper", lambda model, device, compute: NoCublas() if device == "cuda"
                        else real(model, device, compute))
    cuda_unusable.cache_clear()
    try:
        why = cuda_unusable("tiny.en")
        assert why == "CTranslate2 could not use CUDA (Library libcublas.so.12 is not found or cannot be loaded)"
        assert load_asr_model(TranscribeOptions(device="cuda")) is real("tiny.en", "cpu", "int8")
    finally:
        cuda_unusable.cache_clear()
