from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moodlens.media import SAMPLE_RATE, read_audio
from moodlens.models.speaker import EMBEDDING_DIM, FRAME_LENGTH, FRAME_SHIFT, MEL_BINS, _mel, kaldi_fbank
from tests.conftest import SHARED, need_shared

RAVDESS = SHARED / "data" / "speech" / "ravdess"


def encoder() -> object:
    from moodlens.errors import ModelNotFoundError
    from moodlens.models.speaker import load_speaker_encoder

    try:
        return load_speaker_encoder()
    except ModelNotFoundError as err:
        pytest.skip(f"CAM++ weights unavailable: {err}")


def test_fbank_has_kaldis_frames_and_is_mean_normalised() -> None:
    audio = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    features = kaldi_fbank(audio)
    assert features.shape == (1 + (SAMPLE_RATE - FRAME_LENGTH) // FRAME_SHIFT, MEL_BINS)
    assert np.abs(features.mean(axis=0)).max() < 1e-4
    assert kaldi_fbank(audio[:100]).shape == (1, MEL_BINS)  # shorter than a frame: padded to one


def test_fbank_puts_a_tone_in_its_mel_band() -> None:
    seconds = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    features = kaldi_fbank((0.3 * np.sin(2 * np.pi * 1000 * seconds)).astype(np.float32), normalise=False)
    low, high = _mel(20.0), _mel(SAMPLE_RATE / 2)
    expected = (_mel(1000.0) - low) / ((high - low) / (MEL_BINS + 1)) - 1  # the band centred on 1 kHz
    assert abs(int(np.argmax(features.mean(axis=0))) - expected) <= 1


def test_embeddings_are_unit_vectors() -> None:
    found = encoder().embed([np.random.default_rng(1).normal(0, 0.1, 2 * SAMPLE_RATE).astype(np.float32)])
    assert found.shape == (1, EMBEDDING_DIM)
    assert np.linalg.norm(found[0]) == pytest.approx(1.0, abs=1e-5)
    assert encoder().embed([]).shape == (0, EMBEDDING_DIM)


def test_same_actor_sounds_closer_than_another_actor() -> None:
    """RAVDESS: two sentences of one actor are nearer each other than to another actor's (the
    real model on real speech; a broken fbank or a wrong weight mapping fails this)."""
    need_shared(RAVDESS)
    clips: dict[int, list[Path]] = {a: sorted((RAVDESS / f"Actor_{a:02d}").glob("*.flac"))[::15][:3]
                                    for a in (1, 4, 9, 14)}
    vectors = {a: encoder().embed([read_audio(p) for p in paths]) for a, paths in clips.items()}
    same = [float(v[i] @ v[j]) for v in vectors.values() for i in range(3) for j in range(i + 1, 3)]
    other = [float(vectors[a][i] @ vectors[b][j]) for a in vectors for b in vectors if a < b
             for i in range(3) for j in range(3)]
    assert np.mean(same) > np.mean(other) + 0.2
    assert np.percentile(same, 25) > np.percentile(other, 75)
