"""The voice head and its encoder: the shipped file, per-clip encoding, pooling, centring, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moodlens.errors import ModelNotFoundError
from moodlens.labels import EMOTIONS
from moodlens.media import SAMPLE_RATE, read_audio
from moodlens.models.voice import (
    MAX_CLIP_SECONDS,
    VoiceHead,
    VoiceHeadWeights,
    center,
    encoder_for,
    load_voice_head,
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


def test_each_clip_is_encoded_alone_at_its_own_length() -> None:
    """A clip's features must not depend on its neighbours: packing RAVDESS's emotion-sorted
    files into shared 30 s windows let each clip's states borrow its window-mates' emotion
    (held-out accuracy 0.93 sorted against 0.68 shuffled, with the same head)."""
    encoder = encoder_for(load_voice_head())
    rng = np.random.default_rng(0)
    a, b = (rng.normal(scale=0.1, size=int(s * SAMPLE_RATE)).astype(np.float32) for s in (1.3, 4.0))
    alone = dict(encoder.pooled([("a", a)]))["a"]
    together = dict(encoder.pooled([("b", b), ("a", a), ("b2", b)]))
    assert np.array_equal(alone, together["a"])
    assert encoder.encode(a).shape == (65, 384)  # 1.3 s: one state per 20 ms, not Whisper's 1500
    long = dict(encoder.pooled([("x", np.tile(a, 12))]))["x"]  # 15.6 s, read from its first 12 s
    assert long.shape == (768,) and np.isfinite(long).all()
    assert MAX_CLIP_SECONDS == 12.0


def test_a_head_for_packed_windows_is_refused(tmp_path: Path) -> None:
    """Heads written before per-clip encoding read other features: refused, with what to do."""
    import json

    from safetensors.numpy import load_file, save_file

    shipped = VoiceHeadWeights.RAVDESS_WHISPER_TINY_EN.path
    from safetensors import safe_open

    with safe_open(str(shipped), "np") as handle:
        metadata = handle.metadata()
    config = json.loads(metadata["config"])
    del config["min_window_seconds"]
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(shipped)), str(old), {**metadata, "config": json.dumps(config)})
    with pytest.raises(ModelNotFoundError, match=r"30 s packed windows.*retrain it with `moodlens train-voice`"):
        VoiceHead.load(old)


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
