"""Text experts, each giving emotion and sentiment probabilities for an utterance in context.

- LoraTextModel (the default): MPNet fine-tuned on MELD through LoRA adapters, reading the
  previous turns as segment A and the utterance as segment B, pooled over the utterance.
- FrozenTextModel: a frozen MiniLM and small MLP heads (the first model; `moodlens train-text`).
- OnnxTextModel: a LoRA model exported to ONNX, float32 or int8 (`moodlens export text`).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.mpnet import MPNetModel, PairTokenizer, is_mpnet
from moodlens.models.weights import onnx_session, read_export_manifest, resolve_text_encoder, shipped
from moodlens.options import EXPORT_MANIFEST
from moodlens.runtime import fast_bf16, use_torch_threads


@dataclass(frozen=True)
class TextInputConfig:
    """What a text model reads: which encoder, how many previous turns as context, how many tokens."""

    encoder: str = "all-MiniLM-L6-v2"
    context_turns: int = 2
    max_tokens: int = 128


@dataclass(frozen=True)
class TextHeadConfig(TextInputConfig):
    """Heads over a frozen sentence encoder."""

    embedding_dim: int = 384
    hidden: int = 256
    dropout: float = 0.3


class TextHeadWeights(Enum):
    """Text models shipped with moodlens. The value is the file under moodlens/weights/."""

    MELD_MINILM_V1 = "text_meld_minilm_v1.safetensors"
    MELD_MINILM_LORA_V1 = "text_meld_minilm_lora_v1.safetensors"
    MELD_MPNET_LORA_V1 = "text_meld_mpnet_lora_v1.safetensors"
    # v1's adapters, heads refitted on MELD as written, ASR-shaped and as the shipped ASR recognised
    # it when spoken by espeak-ng (`moodlens refit-text --recognised`)
    MELD_MPNET_LORA_ASR_V3 = "text_meld_mpnet_lora_asr_v3.safetensors"

    @property
    def path(self) -> Path:
        return shipped(self.value)


# best on speech: MELD dev read back by ASR, and spoken dialogues (docs/models.md, docs/turns.md)
DEFAULT_TEXT_WEIGHTS = TextHeadWeights.MELD_MPNET_LORA_ASR_V3


class SentenceEncoder:
    """Mean-pooled, L2-normalised embeddings of single texts or (context, target) pairs."""

    def __init__(self, name: str, device: str = "cpu", max_tokens: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        folder = resolve_text_encoder(name)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).to(device).eval()
        self.device = device
        self.max_tokens = max_tokens

    @torch.inference_mode()
    def embed(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """Embed `texts`; with `pairs`, embed each (pairs[i], texts[i]) as one sequence pair."""
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError("texts and pairs differ in length")
        # Sorting by length keeps padding, and so CPU time, low.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + len(pairs[i] if pairs else ""))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for begin in range(0, len(order), batch_size):
            index = order[begin : begin + batch_size]
            first = [pairs[i] or "" for i in index] if pairs else [texts[i] for i in index]
            second = [texts[i] for i in index] if pairs else None
            tokens = self.tokenizer(
                first, second, padding=True, truncation=True,
                max_length=self.max_tokens, return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[index] = pooled.float().cpu().numpy()
        return out

    def features(self, targets: Sequence[str], contexts: Sequence[str]) -> np.ndarray:
        """[embedding(target) ; embedding(context, target)]: the text expert's input."""
        return np.concatenate([self.embed(targets), self.embed(targets, pairs=contexts)], axis=1)


class TextEmotionHead(nn.Module):
    """One shared hidden layer, then an emotion head (7) and a sentiment head (3)."""

    def __init__(self, config: TextHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.shared = nn.Sequential(
            nn.Linear(2 * config.embedding_dim, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
        )
        self.emotion = nn.Linear(config.hidden, len(EMOTIONS))
        self.sentiment = nn.Linear(config.hidden, len(SENTIMENTS))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.shared(features)
        return self.emotion(hidden), self.sentiment(hidden)

    def save(self, path: str | Path, metadata: dict[str, object] | None = None) -> None:
        meta = {"config": json.dumps(asdict(self.config))}
        meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> tuple[TextEmotionHead, dict[str, object]]:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
        config = TextHeadConfig(**json.loads(raw["config"]))
        head = cls(config)
        head.load_state_dict(load_file(str(path)))
        extra = {k: json.loads(v) for k, v in raw.items() if k != "config"}
        return head.eval(), extra


class FrozenTextModel:
    """Emotion and sentiment probabilities for utterances, given the turns before each."""

    name = "text"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        path = Path(weights) if weights else TextHeadWeights.MELD_MINILM_V1.path
        self.head, self.metadata = TextEmotionHead.load(path)
        self.head.to(device)
        self.config = self.head.config
        self.encoder = _encoder(self.config.encoder, device, self.config.max_tokens)
        self.device = device
        self.description = f"{self.config.encoder} (frozen) + MLP heads"

    @torch.inference_mode()
    def predict(
        self, targets: Sequence[str], contexts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        if not targets:
            return np.zeros((0, len(EMOTIONS))), np.zeros((0, len(SENTIMENTS)))
        features = torch.from_numpy(self.encoder.features(targets, contexts)).to(self.device)
        emotion, sentiment = self.head(features)
        return (
            emotion.softmax(-1).double().cpu().numpy(),
            sentiment.softmax(-1).double().cpu().numpy(),
        )


@lru_cache(maxsize=2)
def _encoder(name: str, device: str, max_tokens: int) -> SentenceEncoder:
    use_torch_threads()
    return SentenceEncoder(name, device, max_tokens)


@dataclass(frozen=True)
class LoraTextConfig(TextInputConfig):
    """The encoder itself fine-tuned with LoRA adapters."""

    context_turns: int = 3
    lora_rank: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.1


# every linear layer of each transformer block: BERT names them query/key/value/dense, MPNet q/k/v/o
LORA_TARGETS = r".*encoder\.layer\.\d+\..*\.(query|key|value|dense|q|k|v|o)$"


class ContextualTextClassifier(nn.Module):
    """Encoder over (context, target); the target's tokens are mean-pooled into both heads."""

    def __init__(self, encoder: nn.Module, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.emotion = nn.Linear(hidden, len(EMOTIONS))
        self.sentiment = nn.Linear(hidden, len(SENTIMENTS))

    def pool(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """The target's tokens, mean-pooled: what both heads read."""
        inputs = {k: v for k, v in tokens.items() if k != "target_mask"}
        hidden = self.encoder(**inputs).last_hidden_state
        # the target utterance is segment B; the context in segment A only informs it
        mask = tokens["target_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.dropout(self.pool(tokens))
        return self.emotion(pooled), self.sentiment(pooled)


def pretrained_encoder(config: TextInputConfig, native: bool = False) -> tuple[nn.Module, object]:
    """The packaged (or hub) encoder, as published, and its tokenizer. `native`: MPNet as our
    own module (models/mpnet.py), for inference without importing transformers (2.5 s)."""
    folder = resolve_text_encoder(config.encoder)
    if native and is_mpnet(Path(folder)):
        return MPNetModel.from_folder(Path(folder)), PairTokenizer(Path(folder))
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return AutoModel.from_pretrained(folder, add_pooling_layer=False), AutoTokenizer.from_pretrained(folder)


def build_lora_classifier(config: LoraTextConfig) -> tuple[ContextualTextClassifier, object]:
    """The encoder wrapped with fresh LoRA adapters (for training), and its tokenizer."""
    from peft import LoraConfig, get_peft_model

    base, tokenizer = pretrained_encoder(config)
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=LORA_TARGETS)
    with warnings.catch_warnings():
        # peft 0.21 still calls transformers' deprecated is_gradient_checkpointing; nothing for a user to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        encoder = get_peft_model(base, lora)
    return ContextualTextClassifier(encoder, base.config.hidden_size), tokenizer


PEFT_PREFIX = "encoder.base_model.model."  # where peft's wrapper puts the encoder's own modules


@torch.no_grad()
def merge_lora(encoder: nn.Module, trained: dict[str, torch.Tensor], scaling: float) -> int:
    """W += B·A·scaling for every adapted linear layer of a saved LoRA classifier: what peft's
    merge_and_unload computes, done here because importing peft alone costs 2.3 s at start-up.
    Returns how many layers were merged."""
    modules = dict(encoder.named_modules())
    merged = 0
    for key, down in trained.items():
        if not key.startswith(PEFT_PREFIX) or ".lora_A." not in key:
            continue
        name, _, adapter = key[len(PEFT_PREFIX):].partition(".lora_A.")
        up = trained[f"{PEFT_PREFIX}{name}.lora_B.{adapter}"]
        layer = modules[name]
        layer.weight += (up.to(layer.weight.dtype) @ down.to(layer.weight.dtype)) * scaling
        merged += 1
    return merged


def encode_pairs(tokenizer: object, contexts: Sequence[str], targets: Sequence[str], max_tokens: int
                 ) -> dict[str, torch.Tensor]:
    """Context as segment A, target as B. Truncation cuts the context, not the target, unless
    the target alone is longer than `max_tokens` (a long monologue turn, or Whisper repeating
    itself): then the longer of the two is cut, token by token.

    `target_mask` marks segment B and its closing special token. For BERT that is exactly
    token_type_ids; MPNet has no token types, so it comes from the tokenizer's sequence ids.
    """
    def encode(truncation: bool | str) -> dict[str, torch.Tensor]:
        return tokenizer(list(contexts), list(targets), padding=True, truncation=truncation,
                         max_length=max_tokens, return_tensors="pt")

    if not any(contexts):
        tokens = encode(True)
    else:
        try:
            tokens = encode("only_first")
        except Exception as err:  # tokenizers raises a bare Exception when cutting A cannot make room
            if "too short" not in str(err):
                raise
            tokens = encode("longest_first")
    target = torch.zeros_like(tokens["attention_mask"])
    for row in range(len(targets)):
        start = tokens.sequence_ids(row).index(1)
        target[row, start:] = tokens["attention_mask"][row, start:]
    tokens["target_mask"] = target
    return tokens


Scorer = Callable[[dict[str, torch.Tensor]], tuple[np.ndarray, ...]]


def score_in_batches(score: Scorer, tokenizer: object, contexts: Sequence[str], targets: Sequence[str],
                     max_tokens: int, batch_size: int = 64) -> tuple[np.ndarray, ...]:
    """`score` of each (context, target), in length-sorted batches to keep padding low; `score`
    maps a batch of encoded pairs to a tuple of row arrays ((emotion, sentiment) probabilities)."""
    order = np.argsort([len(c) + len(t) for c, t in zip(contexts, targets, strict=True)], kind="stable")
    outputs: list[np.ndarray] = []
    for begin in range(0, len(order), batch_size):
        index = order[begin : begin + batch_size]
        tokens = encode_pairs(tokenizer, [contexts[i] for i in index], [targets[i] for i in index], max_tokens)
        for k, rows in enumerate(score(tokens)):
            if len(outputs) <= k:
                outputs.append(np.zeros((len(targets), *rows.shape[1:]), dtype=rows.dtype))
            outputs[k][index] = rows
    if not outputs:
        return np.zeros((0, len(EMOTIONS))), np.zeros((0, len(SENTIMENTS)))
    return tuple(outputs)


@torch.inference_mode()
def classify_pairs(model: ContextualTextClassifier, tokenizer: object, contexts: Sequence[str],
                   targets: Sequence[str], max_tokens: int, batch_size: int = 64,
                   device: str = "cpu", bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities for each (context, target) from the torch model."""
    model.eval()

    def score(tokens: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        # bf16 only where the CPU has it natively (fast_bf16): 2.4x faster MPNet, 0.001 off in dev F1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and device == "cpu"):
            e, s = model(tokens.to(device))
        return e.float().softmax(-1).double().cpu().numpy(), s.float().softmax(-1).double().cpu().numpy()

    return score_in_batches(score, tokenizer, contexts, targets, max_tokens, batch_size)


class LoraTextModel:
    """A packaged encoder + MELD-trained LoRA adapters (merged into the weights at load) + joint heads."""

    name = "text"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu", native: bool = True) -> None:
        path = Path(weights) if weights else DEFAULT_TEXT_WEIGHTS.path
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
        self.config = LoraTextConfig(**json.loads(raw["model"]))
        self.metadata = {k: json.loads(v) for k, v in raw.items() if k != "model"}
        encoder, self.tokenizer = pretrained_encoder(self.config, native=native)
        trained = load_file(str(path))
        adapted = sum(1 for name in dict(encoder.named_modules()) if re.fullmatch(LORA_TARGETS, name))
        merged = merge_lora(encoder, trained, self.config.lora_alpha / self.config.lora_rank)
        if not merged or merged != adapted:
            raise ValueError(f"{path}: not a LoRA text model ({merged} adapted layers of {adapted})")
        model = ContextualTextClassifier(encoder, encoder.config.hidden_size)
        for name in ("emotion", "sentiment"):
            own = {k.removeprefix(f"{name}."): v for k, v in trained.items() if k.startswith(f"{name}.")}
            getattr(model, name).load_state_dict(own)
        self.model = model.to(device).eval()
        self.device = device
        # Where the CPU has bf16 (fast_bf16), autocast runs every linear layer in bf16 anyway; storing
        # their weights in bf16 once gives the same numbers without re-casting 85M weights per call
        # (2.7x faster on one short line under the CLI's mmap threshold: bench/text_bf16.py).
        self.bf16 = native and device == "cpu" and fast_bf16()
        if self.bf16:
            for layer in self.model.modules():
                if isinstance(layer, nn.Linear):
                    layer.to(torch.bfloat16)
        self.description = (f"{self.config.encoder} + LoRA r={self.config.lora_rank} fine-tuned on MELD, "
                            f"{self.config.context_turns} turns of context")

    def predict(self, targets: Sequence[str], contexts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not targets:
            return np.zeros((0, len(EMOTIONS))), np.zeros((0, len(SENTIMENTS)))
        # inference only: training scores its dev epochs in float32, so its runs stay reproducible
        return classify_pairs(self.model, self.tokenizer, contexts, targets, self.config.max_tokens,
                              device=self.device, bf16=self.bf16)


class OnnxTextModel:
    """A LoRA text model exported by `moodlens export text` (ONNX, float or int8), run by onnxruntime."""

    name = "text"

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        from transformers import AutoTokenizer

        folder = Path(folder)
        manifest = read_export_manifest(folder, ONNX_KIND)
        self.config = LoraTextConfig(**manifest["model"])
        self.metadata = manifest.get("metadata", {})
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.session = onnx_session(folder / "model.onnx", device)
        precision = manifest.get("quantize") or "float32"
        self.description = (f"{self.config.encoder} + LoRA r={self.config.lora_rank} fine-tuned on MELD, "
                            f"{self.config.context_turns} turns of context; ONNX {precision}")

    def predict(self, targets: Sequence[str], contexts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not targets:
            return np.zeros((0, len(EMOTIONS))), np.zeros((0, len(SENTIMENTS)))

        def score(tokens: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
            emotion, sentiment = self.session.run(None, {name: tokens[name].numpy() for name in ONNX_INPUTS})
            return emotion.astype(np.float64), sentiment.astype(np.float64)

        return score_in_batches(score, self.tokenizer, contexts, targets, self.config.max_tokens)


ONNX_KIND = "moodlens-onnx-text"
MANIFEST = EXPORT_MANIFEST  # not config.json, which transformers would read as a model config
ONNX_INPUTS = ("input_ids", "attention_mask", "target_mask")
TextModel = FrozenTextModel | LoraTextModel | OnnxTextModel


@lru_cache(maxsize=2)
def load_text_expert(weights: str | None = None, device: str = "cpu") -> TextModel:
    """The shipped LoRA model by default; any file written by train-text or finetune-text, or a
    folder written by `moodlens export text`."""
    use_torch_threads()
    path = Path(weights) if weights else DEFAULT_TEXT_WEIGHTS.path
    if path.is_dir():
        return OnnxTextModel(path, device)
    with safe_open(str(path), framework="pt") as handle:
        kind = (handle.metadata() or {}).get("kind")
    return LoraTextModel(path, device) if kind == '"lora-classifier"' else FrozenTextModel(path, device)
