"""Pitch, and how unsteady it is from one 10 ms frame to the next.

The voice head was trained on people. A formant synthesiser (espeak-ng, most screen readers and
older TTS voiceovers) moves its pitch along smooth glides, where a person's pitch wobbles from
frame to frame. So fusion counts a voice that wobbles as a human one, however unlike the head's
training voices it otherwise sounds (TV audio is: see fusion.Trust.voice).

`pitch_jitter` is that wobble: the median absolute second difference of the pitch, in semitones,
over runs of voiced frames. Per utterance, in the regimes bench/fusion.py analyses (10th / 50th /
90th percentile): RAVDESS actors 17-20 0.095 / 0.165 / 0.258 and the MELD clips
0.096 / 0.108 / 0.145, against espeak-ng 0.037 / 0.059 / 0.086 on the spoken dialogues and
0.063 / 0.074 / 0.092 on the spoken lines. espeak-ng voices with a "flutter" variant (+m1, +croak)
wobble as people do, and a neural TTS voice may too: this tells a formant synthesiser from a
person, not every machine from every person.
"""

from __future__ import annotations

import numpy as np

from moodlens.media import SAMPLE_RATE

FRAME = 640  # 40 ms: two periods of the lowest pitch looked for
HOP = 160  # 10 ms
LOWEST_HZ, HIGHEST_HZ = 60.0, 500.0
VOICED = 0.5  # normalised autocorrelation peak above which a frame is voiced
LOUD_DB = 35.0  # frames quieter than the loudest by more than this are not judged
MIN_RUN = 5  # voiced frames in a row needed for a second difference to mean anything
MIN_DIFFERENCES = 10  # fewer than this and the wobble is not told


def track_pitch(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms frame of 16 kHz audio: the pitch in Hz, NaN where the frame is unvoiced or too
    quiet, and the frame's level in dBFS."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size < FRAME:
        x = np.pad(x, (0, FRAME - x.size))
    count = 1 + (x.size - FRAME) // HOP
    frames = x[np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    level = 20 * np.log10(np.sqrt(np.mean(np.square(frames), axis=1)) + 1e-10)
    spectrum = np.fft.rfft(frames * np.hanning(FRAME), 2 * FRAME, axis=1)
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :FRAME]
    autocorrelation /= np.maximum(autocorrelation[:, :1], 1e-12)
    low, high = int(SAMPLE_RATE / HIGHEST_HZ), int(SAMPLE_RATE / LOWEST_HZ)
    rows = np.arange(count)
    lag = autocorrelation[:, low:high].argmax(axis=1) + low
    peak = autocorrelation[rows, lag]
    # the peak's position between samples (a parabola through it and its neighbours), which a
    # frame-to-frame measure needs: whole-sample lags alone step by up to a third of a semitone
    before, after = autocorrelation[rows, lag - 1], autocorrelation[rows, lag + 1]
    curve = before - 2 * peak + after
    shift = np.where(curve < -1e-9, 0.5 * (before - after) / np.where(curve < -1e-9, curve, -1.0), 0.0)
    hz = SAMPLE_RATE / (lag + np.clip(shift, -1.0, 1.0))
    voiced = (peak > VOICED) & (level > level.max() - LOUD_DB)
    return np.where(voiced, hz, np.nan), level


def pitch_jitter(samples: np.ndarray) -> float | None:
    """The median absolute second difference of the pitch in semitones over runs of voiced
    frames; None where there is too little voiced speech to tell."""
    hz, _ = track_pitch(samples)
    semitones = 12 * np.log2(hz)
    differences: list[np.ndarray] = []
    voiced = ~np.isnan(semitones)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start >= MIN_RUN:
            differences.append(np.abs(np.diff(semitones[start:end], 2)))
    joined = np.concatenate(differences) if differences else np.empty(0)
    return float(np.median(joined)) if joined.size >= MIN_DIFFERENCES else None
