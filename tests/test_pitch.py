from __future__ import annotations

import numpy as np
import pytest

from moodlens.pitch import SAMPLE_RATE, pitch_jitter, track_pitch
from tests.conftest import SHARED, need_shared


def pulses(hz_per_period: list[float] | np.ndarray) -> np.ndarray:
    """A voiced-like signal: one damped 700 Hz resonance per glottal period, at the given pitches."""
    out: list[np.ndarray] = []
    for hz in hz_per_period:
        t = np.arange(round(SAMPLE_RATE / hz)) / SAMPLE_RATE
        out.append(np.exp(-t * 400) * np.sin(2 * np.pi * 700 * t))
    return (0.3 * np.concatenate(out)).astype(np.float32)


def glide(start: float, end: float, seconds: float) -> np.ndarray:
    periods = int(seconds * (start + end) / 2)
    return np.geomspace(start, end, periods)


def test_pitch_is_tracked_and_silence_is_unvoiced() -> None:
    hz, level = track_pitch(np.concatenate([pulses(np.full(200, 200.0)), np.zeros(SAMPLE_RATE // 2, np.float32)]))
    assert hz.shape == level.shape
    voiced = hz[~np.isnan(hz)]
    assert voiced.size > 50 and np.median(voiced) == pytest.approx(200.0, rel=0.02)
    assert np.isnan(hz[-20:]).all()  # the silence after it


def test_a_smooth_glide_wobbles_less_than_a_jittered_one() -> None:
    rng = np.random.default_rng(0)
    smooth = glide(120, 180, 2.0)
    jittered = smooth * np.exp(rng.normal(0, 0.01, smooth.size))  # 1 % period jitter, as people have
    steady, human = pitch_jitter(pulses(smooth)), pitch_jitter(pulses(jittered))
    assert steady is not None and human is not None
    assert steady < 0.05 < human


def test_too_little_voiced_speech_tells_nothing() -> None:
    assert pitch_jitter(np.zeros(SAMPLE_RATE, np.float32)) is None
    assert pitch_jitter(np.zeros(10, np.float32)) is None
    assert pitch_jitter(pulses(np.full(10, 150.0))) is None  # 70 ms
    noise = np.random.default_rng(1).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    assert pitch_jitter(noise) is None  # nothing voiced


def test_a_real_voice_wobbles_more_than_a_formant_glide() -> None:
    from moodlens.media import read_audio

    folder = need_shared(SHARED / "data" / "speech" / "ravdess" / "Actor_17")
    real = [pitch_jitter(read_audio(p)) for p in sorted(folder.glob("*.flac"))[:12]]
    assert all(j is not None for j in real)
    synthetic = pitch_jitter(pulses(glide(110, 160, 1.5)))
    assert synthetic is not None and np.median(real) > 2 * synthetic
