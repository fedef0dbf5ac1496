"""The voice head and its encoder: the shipped file, packing, pooling, centring, bad files."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from moodlens.errors import ModelNotFoundError
from moodlens.labels import EMOTIONS
from moodlens.media import SAMPLE_RATE, read_audio
from moodlens.models.voice import (
    GAP_SECONDS,
    MAX_CLIP_SECONDS,
    VoiceHead,
    VoiceHeadWeights,
    center,
    encoder_for,
    load_voice_head,
    pack_windows,
)
from tests.conftest import SHARED

SAMPLE = SHARED / "data" / "ravdess_sample"  # non-commercial: read in tests only, never shipped
RAVDESS = {"01": "neutral", "02": "neutral", "03": "joy", "04": "sadness", "05": "anger", "06": "fear",
           "07": "disgust", "08": "surprise"}


def test_the_shipped_head_says_what_it_is_and_how_good() -> None:
    head = load_voice_head()
    assert head.config.classes == EMOTIONS and head.config.encoder == "tiny.en"
    assert "CC BY-NC-SA 4.0" in head.metadata["trained_on"] and "non-commercial" in head.metadata["trained_on"]
    evaluation = head.metadata["evaluation"]
    assert evaluation["heldout_speakers"] == ["actor17", "actor18", "actor19", "actor20"]
    assert evaluation["heldout_accuracy"] >= 0.45 and evaluation["chance"] == pytest.approx(1 / 7, abs=1e-3)
    assert VoiceHeadWeights.RAVDESS_WHISPER_TINY_EN.path.stat().st_size < 100_000


def test_packing_keeps_clips_apart_and_windows_under_30_s() -> None:
    clips = [(i, np.ones(int(seconds * SAMPLE_RATE), np.float32)) for i, seconds in
             enumerate([4.0, 20.0, 5.0, 14.0, 0.5])]
    windows = list(pack_windows(clips))
    keys = [key for _, spans in windows for key, _, _ in spans]
    assert keys == [0, 1, 2, 3, 4]
    for window, spans in windows:
        assert window.size <= 30 * SAMPLE_RATE + GAP_SECONDS * SAMPLE_RATE
        for (_, _, end), (_, start, _) in itertools.pairwise(spans):
            assert start == pytest.approx(end + GAP_SECONDS)
    long = list(pack_windows([("x", np.ones(40 * SAMPLE_RATE, np.float32))]))
    assert long[0][1][0][2] == pytest.approx(MAX_CLIP_SECONDS)


def test_centring_shrinks_towards_the_training_mean() -> None:
    reference = np.zeros(3)
    one = np.array([[10.0, 0.0, -10.0]])
    assert center(one, reference, shrink=10.0) == pytest.approx(one * 10 / 11)  # one row: mostly kept
    many = np.tile(one, (1000, 1))
    assert np.abs(center(many, reference, shrink=10.0)).max() < 0.2  # a file of one tone: centred away


def test_pooled_states_of_real_speech(tmp_path: Path) -> None:
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} is absent")
    encoder = encoder_for(load_voice_head())
    files = sorted(SAMPLE.glob("*.wav"))
    pooled = list(encoder.pooled((f.name, read_audio(f)) for f in files))
    assert [k for k, _ in pooled] == [f.name for f in files]
    assert all(v.shape == (768,) and np.isfinite(v).all() for _, v in pooled)


def test_ravdess_sample_regression() -> None:
    """Actors 1 and 2 were in training, so this guards against breakage; it is not a held-out
    score (that is actors 17-20 in the file's metadata, and 21-24 for independent checks)."""
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} is absent")
    head = load_voice_head()
    encoder = encoder_for(head)
    files = sorted(SAMPLE.glob("*.wav"))
    for actor in ("01", "02"):
        mine = [f for f in files if f.stem.endswith(f"-{actor}")]
        features = np.stack([v for _, v in encoder.pooled((f, read_audio(f)) for f in mine)])
        predicted = [EMOTIONS[i] for i in head.predict(features).argmax(1)]
        truth = [RAVDESS[f.stem.split("-")[2]] for f in mine]
        assert sum(p == t for p, t in zip(predicted, truth, strict=True)) >= len(mine) // 2, (predicted, truth)


@pytest.mark.parametrize("content", [b"", b"not safetensors at all", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_a_corrupt_voice_file_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "voice.safetensors"
    bad.write_bytes(content)
    with pytest.raises(ModelNotFoundError, match="not a moodlens voice head") as caught:
        VoiceHead.load(bad)
    assert "\n" not in str(caught.value)
