"""Speech recognition (moodlens.asr): real Whisper on real speech; properties, never exact transcripts."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from moodlens.asr import (
    TranscribeOptions,
    cpu_fallback_note,
    cuda_unusable,
    falls_back,
    load_asr_model,
    quietest_point,
    snap_to_speech,
    split_sentences,
    transcribe,
)
from moodlens.utterances import Utterance
from tests.conftest import DEMO, SHARED, need_shared
from tests.media_factory import voiced_part


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


def _said(*times: tuple[float, float]) -> list[Utterance]:
    return [Utterance(start, end, f"line {i}") for i, (start, end) in enumerate(times)]


def test_boundaries_move_to_the_nearest_pause_in_order() -> None:
    speech = [(0.5, 1.0), (1.8, 3.0), (3.4, 5.0), (6.0, 7.0)]
    # Whisper's times drifted late: the first line "ends" in the second, the third starts in a pause
    snapped = snap_to_speech(_said((1.2, 1.9), (1.9, 3.5), (3.6, 5.4), (6.3, 7.4)), speech)
    # the first start and the last end stay Whisper's, but a line left with no speech takes its own
    assert [(u.start, u.end) for u in snapped] == [(0.5, 1.0), (1.8, 3.0), (3.4, 5.0), (6.0, 7.4)]
    assert [u.text for u in snapped] == ["line 0", "line 1", "line 2", "line 3"]


def test_a_boundary_with_no_pause_near_it_stays_where_whisper_put_it() -> None:
    speech = [(0.0, 4.0), (6.0, 7.0)]  # one long stretch of speech: two sentences with no pause
    snapped = snap_to_speech(_said((0.1, 2.0), (2.0, 3.9), (6.1, 7.2)), speech)
    assert [(u.start, u.end) for u in snapped] == [(0.1, 2.0), (2.0, 4.0), (6.0, 7.2)]
    assert snap_to_speech(_said((20.0, 21.0)), speech) == _said((20.0, 21.0))
    assert snap_to_speech(_said((1.0, 2.0)), []) == _said((1.0, 2.0))


def test_two_boundaries_never_share_a_pause_and_times_never_overlap() -> None:
    speech = [(0.0, 1.0), (1.5, 2.5)]  # one pause for two boundaries
    snapped = snap_to_speech(_said((0.0, 1.1), (1.2, 1.4), (1.45, 2.5)), speech)
    assert all(a.end <= b.start for a, b in itertools.pairwise(snapped))
    assert all(u.start <= u.end for u in snapped)
    assert sum(1.0 <= u.end <= 1.5 and u.end != 2.5 for u in snapped[:-1]) >= 1  # one went to the pause


def test_a_line_that_repeats_the_line_beside_it_is_doubted() -> None:
    from moodlens.asr import _repeats

    heard = [(u, -0.2) for u in [Utterance(0, 1, "Hello there."), Utterance(1, 2, "I'm in the morning."),
                                 Utterance(2, 3, "I'm in the morning!"), Utterance(3, 4, "Bye."),
                                 Utterance(4, 5, "...")]]
    assert [_repeats(heard, k) for k in range(len(heard))] == [False, True, True, False, False]


def test_a_lines_own_audio_reaches_its_pads_but_not_the_lines_beside_it() -> None:
    from moodlens.asr import LINE_PAD_SECONDS, _own_reach

    heard = [(u, -0.2) for u in _said((10.0, 11.0), (11.1, 12.0), (13.0, 14.0))]
    offset = 10.0  # the chunk's first sample is at 10 s of media time
    assert _own_reach(heard, 0, offset) == (0, int((11.1 - offset) * 16_000))
    assert _own_reach(heard, 2, offset) == (int((13.0 - LINE_PAD_SECONDS - offset) * 16_000),
                                            int((14.0 + LINE_PAD_SECONDS - offset) * 16_000))
    assert _own_reach(heard, 1, offset, 2) == (int((11.0 - offset) * 16_000),
                                               int((14.0 + LINE_PAD_SECONDS - offset) * 16_000))


def test_speech_that_no_line_covers_becomes_an_empty_line_to_be_told_again() -> None:
    from moodlens.asr import LanguageReader, TranscribeOptions

    reader = LanguageReader(TranscribeOptions(), [])
    heard = [(Utterance(1.0, 2.0, "Hello.", language="en"), -0.2)]
    regions = [(0.1, 0.5), (1.2, 1.8), (3.0, 3.6), (3.9, 4.5)]  # too short, heard, two joined across 0.3 s
    found = reader._with_unheard(heard, reader.language(np.zeros(0, np.float32)), regions)
    assert [(u.start, u.end, u.text) for u, _ in found] == [(1.0, 2.0, "Hello."), (3.0, 4.5, "")]
    assert found[1][1] == float("-inf") and found[1][0].language == "en"


def test_recognised_lines_begin_and_end_on_speech_not_in_the_pauses(tmp_path: Path) -> None:
    """Two real actors (RAVDESS 3 and 8) take turns with 0.5 s pauses: every recognised segment
    starts and ends on a line's speech, never in a pause, where Whisper's own times put 0.188 of
    the segments' edges on the spoken dev dialogues (bench/asr_settings.py)."""
    ravdess = need_shared(SHARED / "data" / "speech" / "ravdess")
    one, two = (sorted((ravdess / f"Actor_{a:02d}").glob("*.flac"))[3::17][:3] for a in (3, 8))
    gap = np.zeros(8000, np.float32)
    parts = [voiced_part(path) for pair in zip(one, two, strict=True) for path in pair]
    lines, at = [], 0.5
    for part in parts:
        lines.append((at, at + part.size / 16000))
        at = lines[-1][1] + gap.size / 16000
    audio = np.concatenate([np.zeros(8000, np.float32), *(x for part in parts for x in (part, gap))])
    wavfile.write(tmp_path / "dialogue.wav", 16000, (audio * 32767).astype(np.int16))
    found = list(transcribe(tmp_path / "dialogue.wav"))
    assert found
    pauses = [(a_end, b_start) for (_, a_end), (b_start, _) in itertools.pairwise(lines)]
    for utterance in found:
        for edge in (utterance.start, utterance.end):
            assert not any(left + 0.1 < edge < right - 0.1 for left, right in pauses), (edge, utterance, lines)
    assert sum(any(min(u.end, end) > max(u.start, start) for u in found) for start, end in lines) >= len(lines) - 1


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

    from moodlens import asr

    class Encoder:
        @staticmethod
        def encode(features: object) -> None:
            raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")

    class NoCublas:  # what a CUDA 12 build of CTranslate2 does on a CUDA 13 machine
        def __init__(self) -> None:
            self.feat_kwargs = {"feature_size": 80}
            self.model = Encoder()

    real = asr._whisper
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    monkeypatch.setattr(asr, "_whisper", lambda model, device, *rest: NoCublas() if device == "cuda"
                        else real(model, device, *rest))
    cuda_unusable.cache_clear()
    try:
        why = cuda_unusable("tiny.en")
        assert why == "CTranslate2 could not use CUDA (Library libcublas.so.12 is not found or cannot be loaded)"
        assert load_asr_model(TranscribeOptions(device="cuda")) is load_asr_model(TranscribeOptions())
    finally:
        cuda_unusable.cache_clear()



def test_asr_encodes_a_short_clip_with_ten_seconds_of_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the encoder really receives in analyze's Whisper, that the decoder still stops, and
    that a window whose decoding falls back to sampling is read again whole."""
    from moodlens.asr import _transcribe_piece, _whisper
    from moodlens.media import read_audio
    from moodlens.runtime import fast_bf16

    sample = need_shared(SHARED / "data" / "meld" / "samples" / "dia0_utt0.wav")
    monkeypatch.setenv("MOODLENS_BF16", "1")  # the torch encoder, whose input a hook can see
    fast_bf16.cache_clear()
    _whisper.cache_clear()
    try:
        whisper = load_asr_model(TranscribeOptions())
        frames: list[int] = []
        hook = whisper.torch_encoder.register_forward_pre_hook(lambda _, args: frames.append(args[0].shape[-1]))
        audio = read_audio(sample)
        utterances = list(_transcribe_piece(whisper, audio, 0.0, TranscribeOptions()))
        read = list(frames)
        frames.clear()
        # a log-probability no decoding reaches: every temperature falls back, as a looping decoder would
        segments, _ = whisper.transcribe(audio, language="en", vad_filter=True, log_prob_threshold=0.0)
        list(segments)
        hook.remove()
    finally:
        fast_bf16.cache_clear()
        _whisper.cache_clear()
    speech = audio.size // 160 + 1  # mel frames; Silero VAD may drop some silence at either end
    assert read and all(1000 < n <= speech + 1002 < 3000 for n in read), (speech, read)
    heard = " ".join(u.text for u in utterances).split()
    assert 3 <= len(heard) <= 40, heard  # it spoke, and did not loop
    assert all(0 <= u.start < u.end <= audio.size / 16000 + 0.5 for u in utterances)
    assert frames == [read[0], 3000]


@pytest.mark.parametrize(("logprob", "ratio", "no_speech", "expected"), [
    (-0.3, 1.5, 0.1, False),  # sure and varied: kept
    (-0.3, 3.1, 0.1, True),  # a loop
    (-1.4, 1.5, 0.1, True),  # unsure
    (-1.4, 1.5, 0.9, False),  # unsure because silent: faster-whisper skips it instead
    (-1.4, 3.1, 0.9, False),
])
def test_falls_back_as_faster_whisper_decides(logprob: float, ratio: float, no_speech: float, expected: bool) -> None:
    from types import SimpleNamespace

    options = SimpleNamespace(compression_ratio_threshold=2.4, log_prob_threshold=-1.0, no_speech_threshold=0.6)
    decoded = (SimpleNamespace(no_speech_prob=no_speech), logprob, 0.0, ratio)
    assert falls_back(decoded, options) is expected  # type: ignore[arg-type]
