"""The streaming speech gate: spans of real speech, the same however the audio is cut into pieces."""

from __future__ import annotations

import itertools

import numpy as np

from moodlens.media import SAMPLE_RATE, read_audio
from moodlens.vad import FRAME, MIN_PAUSE_SECONDS, SpeechGate, SpeechSpan
from tests.conftest import DEMO


def spans_of(audio: np.ndarray, piece: int, **options: float) -> list[SpeechSpan]:
    gate = SpeechGate(**options)
    found = []
    for start in range(0, audio.size, piece):
        found.extend(gate.push(audio[start:start + piece]))
    return found + gate.flush()


def test_the_demo_is_cut_at_its_pauses_and_the_cut_does_not_depend_on_chunking() -> None:
    audio = read_audio(DEMO)
    spans = spans_of(audio, 1600)
    final = [s for s in spans if s.final]
    assert len(final) >= 4  # the demo is one person saying several separate lines
    assert all(0 <= s.start < s.end <= audio.size for s in final)
    assert all(a.end <= b.start for a, b in itertools.pairwise(final))  # in order, apart
    assert all(s.start % FRAME == 0 and s.end % FRAME == 0 for s in final)
    speech = sum(s.end - s.start for s in final) / SAMPLE_RATE
    assert 0.3 * audio.size / SAMPLE_RATE < speech < audio.size / SAMPLE_RATE
    assert [(s.start, s.end) for s in spans_of(audio, 7777) if s.final] == [(s.start, s.end) for s in final]


def test_an_early_offer_comes_before_its_span_closes_and_matches_it_when_speech_does_not_resume() -> None:
    spans = spans_of(read_audio(DEMO), 1600)
    for early, after in itertools.pairwise(spans):
        if not early.final:
            assert after.start == early.start  # the same span: closed as offered, or grown
            assert after.end >= early.end
    assert sum(not s.final for s in spans) >= sum(s.final for s in spans) - 1  # flush may close one unoffered


def test_silence_and_noise_give_no_spans_and_a_long_monologue_is_cut() -> None:
    rng = np.random.default_rng(0)
    assert spans_of(np.zeros(SAMPLE_RATE * 5, np.float32), 1600) == []
    assert spans_of((0.01 * rng.standard_normal(SAMPLE_RATE * 5)).astype(np.float32), 1600) == []
    audio = read_audio(DEMO)
    cut = [s for s in spans_of(audio, 1600, max_speech=1.0, early_silence=0) if s.final]
    assert cut and all(s.seconds <= 1.0 + FRAME / SAMPLE_RATE for s in cut)


def test_a_span_says_where_its_speech_paused_briefly() -> None:
    """Two of the demo's lines 0.15 s apart, under the 0.4 s pause that closes a span: one span,
    with a pause where they meet (where a second voice could take over)."""
    audio = read_audio(DEMO)
    first, second = [s for s in spans_of(audio, 1600) if s.final][:2]
    silence = np.zeros(SAMPLE_RATE, np.float32)
    gap = np.zeros(int(0.15 * SAMPLE_RATE), np.float32)
    joined = np.concatenate([silence, audio[first.start:first.end], gap, audio[second.start:second.end], silence])
    (span,) = [s for s in spans_of(joined, 1600) if s.final]
    meet = silence.size + first.end - first.start
    assert any(a - 2 * FRAME <= meet and meet + gap.size <= b + 2 * FRAME for a, b in span.pauses), span
    assert all(span.start < a < b < span.end and b - a >= MIN_PAUSE_SECONDS * SAMPLE_RATE - FRAME
               for a, b in span.pauses)
    early = [s for s in spans_of(joined, 1600) if not s.final]
    assert all(s.pauses == span.pauses for s in early if s.same(span))
