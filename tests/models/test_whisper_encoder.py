from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moodlens.asr import TranscribeOptions, _transcribe_piece, _whisper, load_asr_model
from moodlens.media import read_audio
from moodlens.models.weights import resolve_asr_model
from moodlens.models.whisper_encoder import WhisperEncoder, read_ctranslate2, torch_encoder, use_torch_encoder
from tests.conftest import DEMO

FOLDER = resolve_asr_model("tiny.en")


@pytest.fixture(scope="module")
def demo_mel() -> np.ndarray:
    from faster_whisper import WhisperModel

    samples = read_audio(DEMO)[: 30 * 16000]
    extractor = WhisperModel(FOLDER, device="cpu", compute_type="int8").feature_extractor
    return np.ascontiguousarray(extractor(np.pad(samples, (0, 30 * 16000 - samples.size)))[:, :3000])


def test_reads_the_encoder_of_the_packaged_model() -> None:
    weights = read_ctranslate2(f"{FOLDER}/model.bin", "encoder/")
    assert weights["conv1/weight"].shape == (384, 80, 3)
    assert weights["position_encodings/encodings"].shape == (1500, 384)
    assert weights["layer_3/self_attention/linear_0/weight"].shape == (1152, 384)
    assert int(weights["num_heads"]) == 6
    assert not any(name.startswith("decoder/") for name in weights)


def test_float32_port_equals_ctranslate2(demo_mel: np.ndarray) -> None:
    """The same encoder as CTranslate2's own, in float32, on real speech."""
    import ctranslate2
    from faster_whisper import WhisperModel

    theirs = WhisperModel(FOLDER, device="cpu", compute_type="float32").model.encode(
        ctranslate2.StorageView.from_array(demo_mel[None]))
    with torch.inference_mode():
        ours = WhisperEncoder.from_ctranslate2(FOLDER)(torch.from_numpy(demo_mel[None])).numpy()
    assert ours.shape == (1, 1500, 384)
    assert np.abs(ours - np.asarray(theirs)).max() < 1e-3


def test_faster_whisper_decodes_from_the_torch_encoder(demo_mel: np.ndarray) -> None:
    import ctranslate2
    from faster_whisper import WhisperModel

    whisper = WhisperModel(FOLDER, device="cpu", compute_type="int8")
    use_torch_encoder(whisper, torch_encoder(FOLDER))
    calls = []
    encode = whisper.encode
    whisper.encode = lambda features: calls.append(features.shape) or encode(features)
    with torch.inference_mode():
        reference = WhisperEncoder.from_ctranslate2(FOLDER)(torch.from_numpy(demo_mel[None])).numpy()

    def cosines(states: object) -> np.ndarray:
        states = np.asarray(states)
        return (states * reference).sum(-1) / np.linalg.norm(states, axis=-1) / np.linalg.norm(reference, axis=-1)

    ours = cosines(encode(demo_mel))
    int8 = cosines(whisper.model.encode(ctranslate2.StorageView.from_array(demo_mel[None])))
    # bf16 is nearer float32 than CTranslate2's int8, which ASR used before, on this real speech
    assert ours.mean() > 0.999 and ours.mean() >= int8.mean()
    assert np.quantile(ours, 0.01) >= np.quantile(int8, 0.01)

    utterances = list(_transcribe_piece(whisper, read_audio(DEMO), 0.0, TranscribeOptions()))
    assert calls, "faster-whisper did not encode through torch"
    assert sum(len(u.text.split()) for u in utterances) >= 10
    assert all(0 <= u.start < u.end for u in utterances)


@pytest.mark.parametrize("bf16", ["0", "1"])
def test_asr_encodes_in_torch_only_where_the_cpu_has_bf16(monkeypatch: pytest.MonkeyPatch, bf16: str) -> None:
    from moodlens.runtime import fast_bf16

    monkeypatch.setenv("MOODLENS_BF16", bf16)
    monkeypatch.setenv("MOODLENS_THREADS", "2")
    fast_bf16.cache_clear()
    _whisper.cache_clear()
    threads = torch.get_num_threads()
    try:
        whisper = load_asr_model(TranscribeOptions())
        assert hasattr(whisper, "torch_encoder") == (bf16 == "1")
        if bf16 == "1":
            # CTranslate2, on one thread there, sets the loading thread's OpenMP count to 1,
            # which torch shares; the torch encoder and every model after it need theirs back
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
        fast_bf16.cache_clear()
        _whisper.cache_clear()


def test_a_quantized_or_unreadable_model_stays_in_ctranslate2(tmp_path: Path) -> None:
    import struct

    def text(value: str) -> bytes:
        return struct.pack("H", len(value) + 1) + value.encode() + b"\0"

    scale = np.ones(384, np.float32).tobytes()  # what an int8 conversion stores beside each weight
    (tmp_path / "model.bin").write_bytes(
        struct.pack("I", 6) + text("WhisperSpec") + struct.pack("I", 3) + struct.pack("I", 1)
        + text("encoder/layer_0/ffn/linear_0/weight_scale") + struct.pack("B", 1) + struct.pack("I", 384)
        + struct.pack("B", 0) + struct.pack("I", len(scale)) + scale + struct.pack("I", 0))
    assert read_ctranslate2(tmp_path / "model.bin", "encoder/")["layer_0/ffn/linear_0/weight_scale"].shape == (384,)
    assert torch_encoder(tmp_path) is None
    assert torch_encoder(tmp_path / "absent") is None
