"""Voice expert: Whisper encoder states, mean+std pooled per utterance, and a linear head.

No speech-emotion model ships in any package, so the head is trained here (`moodlens
train-voice`). The encoder is the Whisper tiny.en that ASR already loads, so the voice expert
costs no extra download.

Each utterance is encoded on its own, at its own length plus GAP_SECONDS of silence, not padded
to Whisper's 30 s (CTranslate2 takes shorter inputs): a 2 s clip costs 1/20 of a 30 s window.
Alone, because packing clips into shared windows let each clip's states borrow its neighbours'
emotion. Training encodes its clips the same way, and the head records its window, so it sees
at inference what it saw in training. (ASR reads part of the padding too, for its decoder: see
utterances.shorten_windows.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from moodlens.errors import ModelNotFoundError
from moodlens.media import SAMPLE_RATE
from moodlens.models.weights import shipped

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

WINDOW_SECONDS = 30.0  # the most Whisper's encoder reads at once
HOP = 160  # samples per mel frame (10 ms)
FRAME_SECONDS = 0.02  # one encoder state per 20 ms
GAP_SECONDS = 0.3  # silence after each clip
# Silence a clip is padded to, at least. Held-out RAVDESS actors 17-20 (`moodlens train-voice`),
# each clip alone in a window of at least this many seconds: own length (0) 0.721, 5 s 0.738,
# 10 s 0.742, 30 s 0.758, all within one standard error (0.03) of each other. Padding costs every
# utterance that much encoder time, which on a video of short utterances is more than the old
# packed windows cost, so none is added.
MIN_WINDOW_SECONDS = 0.0
MAX_CLIP_SECONDS = 12.0  # longer utterances are read from their first 12 s
# The head was trained on whole acted-speech files, the quiet before and after each line
# included, and its pooled mean+std carry that framing: cut to the speech alone (ASR's segment
# times) it lost half its accuracy on unseen RAVDESS actors. So an utterance is read with up to
# this much of the audio around it, never into its neighbours (bench/fusion.py, docs/models.md).
CONTEXT_SECONDS = 1.0
MIN_CLIP_SECONDS = 0.3  # shorter than this, the voice expert says "too short" instead of guessing


class VoiceHeadWeights(Enum):
    RAVDESS_WHISPER_TINY_EN = "voice_ravdess_whisper_tiny_en_v1.safetensors"

    @property
    def path(self) -> Path:
        return shipped(self.value)


@dataclass(frozen=True)
class VoiceHeadConfig:
    encoder: str = "tiny.en"  # the faster-whisper model whose encoder states the head reads
    dim: int = 768  # mean + std of the encoder's states
    classes: tuple[str, ...] = ()  # the emotions it knows, in EMOTIONS order; may be a subset
    temperature: float = 1.0  # divides the logits
    # Speaker normalisation: each speaker's (at inference, each file's) mean feature is taken
    # away, shrunk towards the training mean by `shrink` pseudo-utterances, so that a file
    # with few, one-sided utterances is not centred on its own emotion. Without it, a head
    # trained on RAVDESS reads EmoDB as one class (balanced accuracy 0.22 against 0.31).
    shrink: float = 10.0
    # Each clip was encoded alone, padded with silence to at least this many seconds. Heads from
    # before (files without the field) read 30 s packed windows; they are refused, not misread.
    min_window_seconds: float = MIN_WINDOW_SECONDS


@dataclass
class VoiceHead:
    """Centre the pooled features per speaker, standardise them with the training corpus's
    statistics, then softmax regression. Tiny (a few KB): it ships inside moodlens."""

    config: VoiceHeadConfig
    reference: np.ndarray  # the training corpus's mean raw feature, for shrinkage
    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)
    metadata: dict[str, Any] = field(default_factory=dict)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Logits for the rows of ONE speaker (or one file): they are centred together."""
        z = (center(features, self.reference, self.config.shrink) - self.mean) / self.scale
        return z @ self.weight.T + self.bias

    def atypicality(self, features: np.ndarray) -> np.ndarray:
        """Per row, the mean square of its raw (uncentred) feature's distance from the training
        corpus's mean, in the units of the training corpus's speaker-centred spread: higher the
        less the voice is like those the head was trained on (bench/fusion.py prints it per
        regime). Fusion trusts the head less the further a voice is from what it knows
        (fusion.Trust.voice)."""
        return np.mean(np.square((np.asarray(features) - self.reference) / self.scale), axis=-1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(N, len(classes)) probabilities for the rows of one speaker or file."""
        logits = torch.from_numpy(self.logits(features) / self.config.temperature)
        return logits.softmax(-1).numpy()

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        tensors = {"reference": self.reference, "mean": self.mean, "scale": self.scale, "weight": self.weight,
                   "bias": self.bias}
        meta = {"config": json.dumps(asdict(self.config)), **{k: json.dumps(v) for k, v in self.metadata.items()}}
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path), meta)

    @classmethod
    def load(cls, path: str | Path) -> VoiceHead:
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: voice weights not found")
        try:
            with safe_open(str(path), "np") as handle:
                meta = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in ("reference", "mean", "scale", "weight", "bias")}
            raw = json.loads(meta.pop("config"))
            config = VoiceHeadConfig(**{**raw, "classes": tuple(raw["classes"])})
            metadata = {k: json.loads(v) for k, v in meta.items()}
        except (SafetensorError, OSError, KeyError, ValueError, TypeError) as err:
            raise ModelNotFoundError(f"{path}: not a moodlens voice head ({type(err).__name__}: "
                                     f"{str(err).splitlines()[0][:120]})") from None
        if "min_window_seconds" not in raw:
            raise ModelNotFoundError(f"{path}: a voice head for 30 s packed windows (an older moodlens); "
                                     "retrain it with `moodlens train-voice`")
        if tensors["weight"].shape != (len(config.classes), config.dim):
            raise ModelNotFoundError(f"{path}: not a moodlens voice head (weight shape "
                                     f"{tensors['weight'].shape} for {len(config.classes)} classes)")
        return cls(config, tensors["reference"], tensors["mean"], tensors["scale"], tensors["weight"],
                   tensors["bias"], metadata)


def center(features: np.ndarray, reference: np.ndarray, shrink: float) -> np.ndarray:
    """Take away the rows' mean, shrunk towards `reference` by `shrink` pseudo-rows."""
    count = len(features)
    if count == 0:
        return features
    return features - (count * features.mean(0) + shrink * reference) / (count + shrink)


class WhisperStates:
    """Encoder states of a faster-whisper model, pooled per clip."""

    def __init__(self, whisper: WhisperModel, min_window_seconds: float = MIN_WINDOW_SECONDS) -> None:
        self.whisper = whisper
        self.min_window = int(min_window_seconds * SAMPLE_RATE)

    def encode(self, samples: np.ndarray) -> np.ndarray:
        """(frames, d) states, one per 20 ms, for up to 30 s of 16 kHz audio, at its own length."""
        import ctranslate2

        samples = samples[: int(WINDOW_SECONDS * SAMPLE_RATE)]
        # the encoder halves the mel frames (10 ms each): an even count keeps one state per 20 ms
        frames = 2 * max(1, -(-samples.size // (2 * HOP)))
        mel = self.whisper.feature_extractor(samples)[:, :frames]
        mel = np.pad(mel, ((0, 0), (0, frames - mel.shape[1])))
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
        return np.asarray(self.whisper.model.encode(features, to_cpu=True))[0]

    def pooled(self, clips: Iterable[tuple[Any, np.ndarray]]) -> Iterator[tuple[Any, np.ndarray]]:
        """(key, mean ; std of the clip's states) for each clip, lazily. Each clip is cut to
        MAX_CLIP_SECONDS, followed by at least GAP_SECONDS of silence (up to the minimum window),
        and encoded alone."""
        gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
        for key, samples in clips:
            samples = np.asarray(samples, dtype=np.float32)[: int(MAX_CLIP_SECONDS * SAMPLE_RATE)]
            window = np.concatenate([samples, gap])
            states = self.encode(np.pad(window, (0, max(0, self.min_window - window.size))))
            part = states[: max(1, int(samples.size / SAMPLE_RATE / FRAME_SECONDS))]
            yield key, np.concatenate([part.mean(0), part.std(0)]).astype(np.float32)


@lru_cache(maxsize=2)
def load_voice_head(weights: str | None = None) -> VoiceHead:
    return VoiceHead.load(weights or VoiceHeadWeights.RAVDESS_WHISPER_TINY_EN.path)


def encoder_for(head: VoiceHead, device: str = "cpu") -> WhisperStates:
    """The head's own encoder (the ASR model when they are the same, loaded once)."""
    from moodlens.asr import TranscribeOptions, load_asr_model

    whisper = load_asr_model(TranscribeOptions(model=head.config.encoder, device=device))
    return WhisperStates(whisper, head.config.min_window_seconds)


def full_distribution(classes: Sequence[str], probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Spread a distribution over a subset of `labels` onto all of them, as "unknown" rather
    than "zero": each label the expert does not know gets the share a know-nothing expert would
    give it (1/len(labels)), and the known ones share the rest in the expert's proportions."""
    out = np.full(len(labels), 1.0 / len(labels))
    known = [labels.index(c) for c in classes]
    out[known] = np.asarray(probs) * len(known) / len(labels)
    return out
