"""The reference multimodal model: text, video and audio encoders, fused at the feature level.

    text  [CLS] of a frozen encoder ─► Linear ─► 128 ┐
    video r3d_18 over 16x112x112    ─► Linear ─► 128 ├─ concat 384 ─► 256 ─► emotion (7), sentiment (3)
    audio Conv1d stack over log-mel ─► Linear ─► 128 ┘
    each 128-d embedding also feeds an auxiliary head: the per-modality breakdown and ablations

A missing modality is masked: its embedding is zeroed before fusion, so it contributes nothing,
and training drops modalities at random so the fused head has learnt to cope with that.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from moodlens.errors import ModelNotFoundError
from moodlens.features import FeatureSpec
from moodlens.labels import EMOTIONS, SENTIMENTS

log = logging.getLogger(__name__)

MODALITIES = ("text", "video", "audio")
# torchvision's Kinetics-400 statistics, which r3d_18's pretrained weights expect
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class MultimodalConfig:
    text_encoder: str = "bert-base-uncased"  # frozen; offline it falls back to the packaged MiniLM
    text_dim: int = 768  # the encoder's hidden size, set from the encoder actually loaded
    text_max_tokens: int = 128
    video_weights: str | None = "KINETICS400_V1"  # torchvision R3D_18_Weights member, or None
    embed_dim: int = 128
    fusion_dim: int = 256
    dropout: float = 0.3
    mel_bands: int = 64
    mel_frames: int = 300
    clip_frames: int = 16
    clip_size: int = 112
    fps: float = 8.0  # frames sampled per second for the video clip
    frame_side: int = 256
    mel_dtype: str = "float16"

    def feature_spec(self) -> FeatureSpec:
        """What this model's inputs are (features.FeatureSpec): the cache and inference both use it."""
        return FeatureSpec(fps=self.fps, frame_side=self.frame_side, clip_frames=self.clip_frames,
                           clip_size=self.clip_size, mel_bands=self.mel_bands, mel_frames=self.mel_frames,
                           mel_dtype=self.mel_dtype, text_encoder=self.text_encoder,
                           text_max_tokens=self.text_max_tokens)


class Output(NamedTuple):
    emotion: torch.Tensor  # fused logits (B, 7)
    sentiment: torch.Tensor  # fused logits (B, 3)
    aux_emotion: dict[str, torch.Tensor]  # per-modality logits, from that modality alone
    aux_sentiment: dict[str, torch.Tensor]


class TextEncoder(nn.Module):
    """Projects the frozen encoder's [CLS] vector; the encoder itself runs outside (FrozenTextBackbone),
    so its features can be computed once into the training cache."""

    def __init__(self, config: MultimodalConfig) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(config.text_dim, config.embed_dim), nn.ReLU(),
                                     nn.Dropout(config.dropout))

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.project(cls)


def r3d_18_backbone(weights: str | None) -> tuple[nn.Module, str]:
    """torchvision's r3d_18, with Kinetics-400 weights when they can be had; else random init."""
    from torchvision.models.video import R3D_18_Weights, r3d_18

    from moodlens.models.weights import offline

    if weights and weights not in R3D_18_Weights.__members__:  # a typo must not mean random init
        raise ValueError(f"unknown video_weights {weights!r}: use one of "
                         f"{', '.join(R3D_18_Weights.__members__)}, or leave it empty for random init")
    if weights and offline():
        log.warning("offline (HF_HUB_OFFLINE or MOODLENS_OFFLINE): r3d_18 starts from random init")
    elif weights:
        try:
            return r3d_18(weights=R3D_18_Weights[weights]), f"r3d_18 from {weights} weights"
        except (OSError, RuntimeError) as err:  # offline: torch.hub can't fetch them; training still works
            log.warning("r3d_18 %s weights unavailable (%s: %s); starting from random init",
                        weights, type(err).__name__, str(err).splitlines()[0][:120])
    return r3d_18(weights=None), "r3d_18 from random init"


class VideoEncoder(nn.Module):
    """r3d_18 over a uint8 clip (B, T, H, W, 3); its fc layer is replaced by Linear to 128."""

    def __init__(self, config: MultimodalConfig, pretrained: bool = False) -> None:
        super().__init__()
        self.backbone, self.source = r3d_18_backbone(config.video_weights if pretrained else None)
        features = self.backbone.fc.in_features
        self.backbone.fc = nn.Sequential(nn.Linear(features, config.embed_dim), nn.ReLU(),
                                         nn.Dropout(config.dropout))
        self.register_buffer("mean", torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1), persistent=False)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        x = clip.permute(0, 4, 1, 2, 3).float() / 255.0  # (B, 3, T, H, W)
        return self.backbone((x - self.mean) / self.std)


class AudioEncoder(nn.Module):
    """Conv1d + BatchNorm blocks over (B, 64 mel bands, ~300 frames), mean-pooled, then Linear to 128."""

    def __init__(self, config: MultimodalConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = [config.mel_bands, 64, 128, 128]
        for i, (a, b) in enumerate(itertools.pairwise(channels)):
            layers += [nn.Conv1d(a, b, kernel_size=3, padding=1), nn.BatchNorm1d(b), nn.ReLU()]
            if i < len(channels) - 2:
                layers.append(nn.MaxPool1d(2))
        self.convs = nn.Sequential(*layers)
        self.project = nn.Sequential(nn.Linear(channels[-1], config.embed_dim), nn.ReLU(),
                                     nn.Dropout(config.dropout))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(mel).mean(-1))


class MultimodalSentimentModel(nn.Module):
    def __init__(self, config: MultimodalConfig, pretrained_video: bool = False) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict({
            "text": TextEncoder(config),
            "video": VideoEncoder(config, pretrained_video),
            "audio": AudioEncoder(config),
        })
        width = config.embed_dim * len(MODALITIES)
        self.fusion = nn.Sequential(nn.Linear(width, config.fusion_dim), nn.BatchNorm1d(config.fusion_dim),
                                    nn.ReLU(), nn.Dropout(config.dropout))
        self.emotion = nn.Linear(config.fusion_dim, len(EMOTIONS))
        self.sentiment = nn.Linear(config.fusion_dim, len(SENTIMENTS))
        self.aux_emotion = nn.ModuleDict({m: nn.Linear(config.embed_dim, len(EMOTIONS)) for m in MODALITIES})
        self.aux_sentiment = nn.ModuleDict({m: nn.Linear(config.embed_dim, len(SENTIMENTS))
                                            for m in MODALITIES})

    def forward(self, text: torch.Tensor, video: torch.Tensor, audio: torch.Tensor,
                mask: torch.Tensor) -> Output:
        """`mask` (B, 3) says which of text, video, audio each row really has.

        A modality absent from the whole batch is not run at all; otherwise masked rows get a
        zero embedding, so nothing of theirs reaches the fused heads.
        """
        inputs = {"text": text, "video": video, "audio": audio}
        embeddings = {m: self.encoders[m](inputs[m]) if mask[:, column].any() else None
                      for column, m in enumerate(MODALITIES)}
        return self.fuse(embeddings, mask)

    def fuse(self, embeddings: dict[str, torch.Tensor | None], mask: torch.Tensor) -> Output:
        """The heads over per-modality embeddings (B, embed_dim), None for a modality no row has.

        Separate from forward so that inference can encode each clip as it streams past and
        keep only its embedding.
        """
        batch = mask.shape[0]
        parts = []
        aux_emotion, aux_sentiment = {}, {}
        for column, modality in enumerate(MODALITIES):
            embedding = embeddings.get(modality)
            if embedding is None:
                embedding = torch.zeros(batch, self.config.embed_dim, device=mask.device)
            else:
                embedding = embedding * mask[:, column].unsqueeze(1).to(embedding.dtype)
            parts.append(embedding)
            aux_emotion[modality] = self.aux_emotion[modality](embedding)
            aux_sentiment[modality] = self.aux_sentiment[modality](embedding)
        fused = self.fusion(torch.cat(parts, dim=1))
        return Output(self.emotion(fused), self.sentiment(fused), aux_emotion, aux_sentiment)


def save_bundle(model: MultimodalSentimentModel, folder: str | Path, metadata: dict[str, object]) -> Path:
    """`config.json` (the architecture plus how it was trained) beside `model.safetensors`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    document = {"kind": "moodlens-multimodal", "config": asdict(model.config),
                "feature_spec": model.config.feature_spec().to_dict(),
                "labels": {"emotion": list(EMOTIONS), "sentiment": list(SENTIMENTS)}, **metadata}
    (folder / "config.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return folder


def load_bundle(folder: str | Path, device: str = "cpu") -> tuple[MultimodalSentimentModel, dict]:
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        document = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"{folder}: not a moodlens multimodal model (no readable config.json)") from err
    if document.get("kind") != "moodlens-multimodal":
        raise ModelNotFoundError(f"{folder}/config.json is not a moodlens multimodal model")
    known = {f.name for f in fields(MultimodalConfig)}
    model = MultimodalSentimentModel(MultimodalConfig(**{k: v for k, v in document["config"].items() if k in known}))
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelNotFoundError(f"{folder}: model.safetensors is missing")
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval(), document


class FrozenTextBackbone:
    """The frozen text encoder, giving [CLS] vectors. bert-base-uncased when it can be loaded,
    else the packaged MiniLM; `name` says which, and a model trained on one must use the same."""

    def __init__(self, name: str, max_tokens: int = 128, device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer

        from moodlens.models.weights import resolve_text_encoder

        folder = name
        try:
            folder = resolve_text_encoder(name)
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModel.from_pretrained(folder, add_pooling_layer=False)
            self.name = name
        except (ModelNotFoundError, OSError) as err:
            # Only a model that is not here (and not downloadable) falls back, and says so; one
            # that is here but broken is an error, not a reason to train on another encoder.
            if Path(folder).is_dir():
                raise ModelNotFoundError(f"text encoder in {folder} cannot be loaded "
                                         f"({str(err).splitlines()[0][:160]})") from None
            fallback = "all-MiniLM-L6-v2"
            if name == fallback:
                raise
            log.warning("text encoder %s unavailable (%s); using the packaged %s", name,
                        str(err).splitlines()[0][:120], fallback)
            folder = resolve_text_encoder(fallback)
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModel.from_pretrained(folder, add_pooling_layer=False)
            self.name = fallback
        self.model = self.model.to(device).eval()
        self.dim = int(self.model.config.hidden_size)
        self.max_tokens = max_tokens
        self.device = device

    @torch.inference_mode()
    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for begin in range(0, len(texts), batch_size):
            tokens = self.tokenizer([t or "" for t in texts[begin : begin + batch_size]], padding=True,
                                    truncation=True, max_length=self.max_tokens, return_tensors="pt")
            hidden = self.model(**tokens.to(self.device)).last_hidden_state
            out[begin : begin + batch_size] = hidden[:, 0].float().cpu().numpy()
        return out
