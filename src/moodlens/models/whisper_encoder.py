"""Whisper's encoder in torch, read from a CTranslate2 model folder, for faster-whisper's ASR.

The encoder pass is the only part of ASR that needs threads. Where the CPU has native bfloat16,
torch runs it (a whole 30 s window in 0.21 s against CTranslate2's 0.29 s in int8 on 2 cores:
bench/asr_encoder.py), so that CTranslate2, which shares torch's libgomp,
can run on one thread and never start the thread team that slows torch's small ops (see
asr._whisper). The decoder, its beam search and word alignment stay in CTranslate2, which
accepts encoder states in place of features. Elsewhere CTranslate2 does it all: float32 torch is
no faster than its int8.
"""

from __future__ import annotations

import logging
import mmap
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    import ctranslate2
    from faster_whisper import WhisperModel

# CTranslate2's DataType enum (include/ctranslate2/types.h), as its spec writer numbers it
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ctranslate2(path: str | Path, prefix: str = "") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 `model.bin` whose names start with `prefix`.

    The format is the one `ctranslate2.specs.ModelSpec._serialize` writes (binary version 6): a
    header, then name, shape, type and raw bytes for each variable.
    """
    with Path(path).open("rb") as handle:  # mapped: only the pages of the variables asked for are read
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    offset = 0

    def take(fmt: str) -> int:
        nonlocal offset
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal offset
        size = take("H")
        value = data[offset:offset + size - 1].decode("utf-8")
        offset += size
        return value

    version = take("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, expected 6")
    text()  # spec name
    take("I")  # spec revision
    variables = {}
    for _ in range(take("I")):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        kind, size = take("B"), take("I")
        if name.startswith(prefix):
            if kind not in _CT2_DTYPES:
                raise ValueError(f"{path}: {name} has CTranslate2 type {kind}, which is not read here")
            variables[name[len(prefix):]] = np.frombuffer(
                data, _CT2_DTYPES[kind], size // np.dtype(_CT2_DTYPES[kind]).itemsize, offset
            ).reshape(shape).copy()
        offset += size
    data.close()
    return variables


class EncoderLayer(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ffn_norm = nn.LayerNorm(width)
        self.ffn_in = nn.Linear(width, 4 * width)
        self.ffn_out = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x))))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder: two convolutions, sinusoidal positions, pre-norm layers."""

    def __init__(self, mels: int, width: int, heads: int, layers: int, positions: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(positions, width))
        self.layers = nn.ModuleList(EncoderLayer(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    @classmethod
    def from_ctranslate2(cls, folder: str | Path) -> WhisperEncoder:
        """Raises ValueError for a model whose weights CTranslate2 stored quantized."""
        weights = read_ctranslate2(Path(folder) / "model.bin", "encoder/")
        if any(name.endswith("weight_scale") for name in weights):
            raise ValueError(f"{folder}: the encoder's weights are stored quantized")
        layers = len({name.split("/")[0] for name in weights if re.match(r"layer_\d+/", name)})
        conv1 = weights["conv1/weight"]
        positions = weights["position_encodings/encodings"]
        encoder = cls(mels=conv1.shape[1], width=conv1.shape[0], heads=int(weights["num_heads"]),
                      layers=layers, positions=positions.shape[0])
        names = {"positions": "position_encodings/encodings", "norm.weight": "layer_norm/gamma",
                 "norm.bias": "layer_norm/beta"}
        for conv in ("conv1", "conv2"):
            names |= {f"{conv}.{p}": f"{conv}/{p}" for p in ("weight", "bias")}
        ours = {"attention_norm": "self_attention/layer_norm", "qkv": "self_attention/linear_0",
                "out": "self_attention/linear_1", "ffn_norm": "ffn/layer_norm",
                "ffn_in": "ffn/linear_0", "ffn_out": "ffn/linear_1"}
        for i in range(layers):
            for module, theirs in ours.items():
                norm = module.endswith("norm")
                names[f"layers.{i}.{module}.weight"] = f"layer_{i}/{theirs}/{'gamma' if norm else 'weight'}"
                names[f"layers.{i}.{module}.bias"] = f"layer_{i}/{theirs}/{'beta' if norm else 'bias'}"
        state = {ours_: torch.from_numpy(weights[theirs].astype(np.float32)) for ours_, theirs in names.items()}
        encoder.load_state_dict(state)
        return encoder.eval()


def torch_encoder(folder: str | Path, dtype: torch.dtype = torch.bfloat16) -> WhisperEncoder | None:
    """The encoder of the CTranslate2 Whisper in `folder`, in torch; None where it cannot be read
    (quantized or unfamiliar weights), so CTranslate2 keeps encoding."""
    try:
        return WhisperEncoder.from_ctranslate2(folder).to(dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        logging.getLogger(__name__).info("Whisper encodes in CTranslate2: %s", err)
        return None


def use_torch_encoder(whisper: WhisperModel, encoder: WhisperEncoder) -> None:
    """Make `whisper` (a CPU faster-whisper model) encode with `encoder`."""
    import ctranslate2

    dtype = encoder.conv1.weight.dtype

    def encode(features: np.ndarray) -> ctranslate2.StorageView:
        mel = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(dtype)
        with torch.inference_mode():
            states = encoder(mel[None] if mel.ndim == 2 else mel).float().numpy()
        return ctranslate2.StorageView.from_array(states)

    # faster-whisper encodes every window through this one method; CTranslate2's generate and
    # align take the states in place of features
    whisper.encode = encode  # type: ignore[method-assign]
    whisper.torch_encoder = encoder  # type: ignore[attr-defined]
