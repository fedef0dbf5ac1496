"""MPNet's encoder in plain torch, and its tokenizer through `tokenizers`, for inference.

The same weights and the same numbers as transformers' MPNetModel (tests/models/test_mpnet.py
checks both on real MELD lines), without importing transformers: its import alone pulls in
torch._dynamo and torch.distributed and costs 2.5 s of the 3 s start-up budget (issue 13).
Training keeps transformers and peft (`models/text.py`'s build_lora_classifier).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class MPNetConfig:
    vocab_size: int = 30527
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 514
    relative_attention_num_buckets: int = 32
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1

    @classmethod
    def from_folder(cls, folder: Path) -> MPNetConfig:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def is_mpnet(folder: Path) -> bool:
    config = folder / "config.json"
    return config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("model_type") == "mpnet"


class Embeddings(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=self.padding_idx)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size,
                                                padding_idx=self.padding_idx)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # positions count real tokens from padding_idx + 1, as fairseq's make_positions does
        real = input_ids.ne(self.padding_idx).int()
        positions = (torch.cumsum(real, dim=1).type_as(real) * real).long() + self.padding_idx
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(positions))


class SelfAttention(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.q = nn.Linear(config.hidden_size, config.hidden_size)
        self.k = nn.Linear(config.hidden_size, config.hidden_size)
        self.v = nn.Linear(config.hidden_size, config.hidden_size)
        self.o = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = (proj(x).view(batch, length, self.heads, -1).transpose(1, 2) for proj in (self.q, self.k, self.v))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.o(context.transpose(1, 2).reshape(batch, length, width))


class Attention(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.attn = SelfAttention(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.attn(x, bias) + x)


class Dense(nn.Module):
    """A linear layer under the checkpoint's `<name>.dense` key, with an optional residual LayerNorm."""

    def __init__(self, width_in: int, width_out: int, eps: float | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(width_in, width_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(width_out, eps=eps)


class Layer(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Dense(config.hidden_size, config.intermediate_size)
        self.output = Dense(config.intermediate_size, config.hidden_size, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        attended = self.attention(x, bias)
        inner = F.gelu(self.intermediate.dense(attended))
        return self.output.LayerNorm(self.output.dense(inner) + attended)


class Encoder(nn.Module):
    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([Layer(config) for _ in range(config.num_hidden_layers)])
        self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets,
                                                    config.num_attention_heads)
        self.buckets = config.relative_attention_num_buckets

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor:
        """(1, heads, length, length): T5-style relative position buckets, shared by every layer."""
        positions = torch.arange(length, device=device)
        relative = positions[None, :] - positions[:, None]
        return self.relative_attention_bias(relative_bucket(relative, self.buckets)).permute(2, 0, 1).unsqueeze(0)


def relative_bucket(relative: torch.Tensor, buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    n = -relative
    half = buckets // 2
    ret = (n < 0).long() * half
    n = n.abs()
    exact = half // 2
    large = exact + (torch.log(n.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    return ret + torch.where(n < exact, n, large.clamp(max=half - 1))


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor


class MPNetModel(nn.Module):
    """MPNet without its pooler, with transformers' parameter names, so its checkpoints and
    LoRA merges (`merge_lora`) load unchanged."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    @classmethod
    def from_folder(cls, folder: Path) -> MPNetModel:
        from safetensors.torch import load_file

        model = cls(MPNetConfig.from_folder(folder))
        state = {k: v for k, v in load_file(str(folder / "model.safetensors")).items()
                 if not k.startswith("pooler.") and k != "embeddings.position_ids"}  # unused by an encoder
        model.load_state_dict(state)
        return model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EncoderOutput:
        x = self.embeddings(input_ids)
        bias = self.encoder.position_bias(input_ids.shape[1], input_ids.device).to(x.dtype)
        padded = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        bias = bias + padded  # (batch, heads, length, length)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return EncoderOutput(x)


class PairEncoding(dict):
    """What `encode_pairs` reads of a transformers BatchEncoding: tensors by name, sequence ids, .to()."""

    def __init__(self, tensors: dict[str, torch.Tensor], sequence_ids: list[list[int | None]]) -> None:
        super().__init__(tensors)
        self._sequence_ids = sequence_ids

    def sequence_ids(self, row: int) -> list[int | None]:
        return self._sequence_ids[row]

    def to(self, device: str | torch.device) -> PairEncoding:
        return PairEncoding({k: v.to(device) for k, v in self.items()}, self._sequence_ids)


class PairTokenizer:
    """The model folder's tokenizer.json run by `tokenizers`: the engine transformers' fast
    tokenizer runs too, so the ids are the same."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.folder = folder
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        special = json.loads((folder / "special_tokens_map.json").read_text(encoding="utf-8"))
        pad = special.get("pad_token", "<pad>")
        self.pad_token = pad["content"] if isinstance(pad, dict) else pad
        self.pad_id = self.tokenizer.token_to_id(self.pad_token)

    def __call__(self, first: Sequence[str], second: Sequence[str], *, padding: bool = True,
                 truncation: bool | str = True, max_length: int = 512, return_tensors: str = "pt") -> PairEncoding:
        strategy = truncation if isinstance(truncation, str) else "longest_first"
        self.tokenizer.enable_truncation(max_length, strategy=strategy)
        self.tokenizer.enable_padding(pad_id=self.pad_id, pad_token=self.pad_token)
        encoded = self.tokenizer.encode_batch(list(zip(first, second, strict=True)))
        return PairEncoding({"input_ids": torch.tensor([e.ids for e in encoded]),
                             "attention_mask": torch.tensor([e.attention_mask for e in encoded])},
                            [e.sequence_ids for e in encoded])

    def save_pretrained(self, folder: str | Path) -> None:
        """Copy the tokenizer's files, as transformers' save_pretrained would (`moodlens export`)."""
        import shutil

        for name in TOKENIZER_FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, Path(folder) / name)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
