"""Refit the text model's heads for text as speech recognition writes it.

MELD's lines are subtitles: "What?!", "Do them!!", "That is not true!". Whisper writes what it
hears with its own punctuation, and almost never an exclamation mark: "What?", "Do them.",
"That is not true.". The shipped model leaned on those marks: on the true lines of the spoken
MELD dev dialogues its emotion weighted F1 is 0.589, and 0.482 when only the punctuation is
written as Whisper writes it (bench/spoken_dialogues.py; docs/turns.md).

Punctuation is only part of it: speech recognition also mishears words, drops short lines and
joins or splits others. scripts/recognise_spoken_meld.py speaks MELD's lines with espeak-ng and
writes what the shipped ASR heard for each, in MELD's CSV layout; given those files, they are a
third kind of text, with real recognition errors rather than a simulation of them.

Read top to bottom: MELD rows -> (context, target) pairs, as written, ASR-shaped (asr_shaped)
and, given, as recognised -> the fine-tuned encoder's target-pooled features of each, computed
once (the encoder and its LoRA adapters stay as trained; kept in `feature_cache` between runs)
-> new emotion and sentiment heads, started from the shipped ones, trained on every kind at
once, class-weighted -> keep the epoch with the best mean dev score over the kinds -> save the
file with the same adapters and the new heads.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from moodlens.data.meld import read_meld_csv
from moodlens.features import asr_shaped
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.text import LoraTextModel, TextHeadWeights, score_in_batches
from moodlens.training.common import RunConfig, class_weights
from moodlens.training.finetune import pairs_for
from moodlens.training.metrics import task_metrics

REFIT_SOURCE = TextHeadWeights.MELD_MPNET_LORA_V1  # the model the shipped ASR-shaped heads were refitted from


@dataclass(frozen=True)
class HeadRefitConfig(RunConfig):
    epochs: int = 30
    batch_size: int = 256  # features are cached: a batch is a matrix product, not an encoder pass
    weight_decay: float = 1e-4
    weights: str | None = None  # the LoRA text model whose heads are refitted; None: REFIT_SOURCE
    # MELD CSVs whose lines are what the shipped ASR wrote for them, spoken by espeak-ng
    # (scripts/recognise_spoken_meld.py): real word errors, merges and splits, as a third kind
    recognised_csv: str | None = None
    recognised_dev_csv: str | None = None
    feature_cache: str | None = None  # a folder: features kept between runs, keyed by model and text


@dataclass(frozen=True)
class TextKind:
    """One way a split's lines are written: its (context, target) pairs and their labels."""

    name: str
    pairs: list[tuple[str, str]]
    emotion: np.ndarray
    sentiment: np.ndarray


def pooled_features(expert: LoraTextModel, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """(N, hidden) target-pooled features of (context, target) pairs, as the heads read them."""
    model = expert.model.eval()

    @torch.inference_mode()
    def pool(tokens: dict[str, torch.Tensor]) -> tuple[np.ndarray]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=expert.bf16):
            return (model.pool(tokens.to(expert.device)).float().cpu().numpy(),)

    return score_in_batches(pool, expert.tokenizer, [c for c, _ in pairs], [t for _, t in pairs],
                            expert.config.max_tokens)[0]


def cached_features(expert: LoraTextModel, weights: Path, pairs: Sequence[tuple[str, str]],
                    cache: str | None) -> np.ndarray:
    """pooled_features, kept in `cache` under a hash of the model file and the pairs."""
    if cache is None:
        return pooled_features(expert, pairs)
    key = hashlib.sha256(weights.read_bytes())
    key.update(json.dumps(list(pairs)).encode("utf-8"))
    path = Path(cache) / f"pooled-{key.hexdigest()[:24]}.npy"
    if path.is_file():
        return np.load(path)
    features = pooled_features(expert, pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, features)
    return features


def shaped_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(asr_shaped(c), asr_shaped(t)) for c, t in pairs]


def text_kinds(csv_path: str, recognised_csv: str | None, turns: int, limit: int | None) -> list[TextKind]:
    """A split as typed, as typed but punctuated as ASR writes, and (given) as ASR recognised it."""
    rows = read_meld_csv(csv_path)[:limit]
    pairs = pairs_for(rows, turns)
    labels = np.array([r.emotion for r in rows]), np.array([r.sentiment for r in rows])
    kinds = [TextKind("written", pairs, *labels), TextKind("asr_shaped", shaped_pairs(pairs), *labels)]
    if recognised_csv:
        heard = read_meld_csv(recognised_csv)[:limit]
        kinds.append(TextKind("recognised", pairs_for(heard, turns), np.array([r.emotion for r in heard]),
                              np.array([r.sentiment for r in heard])))
    return kinds


def refit_heads(config: HeadRefitConfig, progress: Callable[[str], None] = print) -> dict[str, object]:
    torch.manual_seed(config.seed)
    weights = Path(config.weights or REFIT_SOURCE.path)
    expert = LoraTextModel(weights)
    turns = expert.config.context_turns
    kinds = {"train": text_kinds(config.train_csv, config.recognised_csv, turns, config.limit),
             "dev": text_kinds(config.dev_csv, config.recognised_dev_csv, turns, config.limit)}
    features: dict[str, list[torch.Tensor]] = {}
    began = time.perf_counter()
    for split, split_kinds in kinds.items():
        features[split] = [torch.from_numpy(cached_features(expert, weights, k.pairs, config.feature_cache)).float()
                           for k in split_kinds]
        progress(f"{split}: features of {' + '.join(f'{len(k.pairs)} {k.name}' for k in split_kinds)} lines "
                 f"({time.perf_counter() - began:.0f} s)")

    heads = nn.ModuleDict({"emotion": nn.Linear(features["train"][0].shape[1], len(EMOTIONS)),
                           "sentiment": nn.Linear(features["train"][0].shape[1], len(SENTIMENTS))})
    for name in heads:
        heads[name].load_state_dict(getattr(expert.model, name).float().state_dict())
    x = torch.cat(features["train"])
    y_emotion = torch.from_numpy(np.concatenate([k.emotion for k in kinds["train"]]))
    y_sentiment = torch.from_numpy(np.concatenate([k.sentiment for k in kinds["train"]]))
    emotion_loss = nn.CrossEntropyLoss(weight=class_weights(y_emotion.numpy(), len(EMOTIONS)))
    sentiment_loss = nn.CrossEntropyLoss(weight=class_weights(y_sentiment.numpy(), len(SENTIMENTS)))
    optimizer = torch.optim.AdamW(heads.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def dev_scores() -> dict[str, float]:
        out = {}
        with torch.no_grad():
            for kind, dev in zip(kinds["dev"], features["dev"], strict=True):
                out[f"emotion_weighted_f1_{kind.name}"] = task_metrics(
                    kind.emotion, heads["emotion"](dev).argmax(1).numpy(), EMOTIONS).weighted_f1
                out[f"sentiment_weighted_f1_{kind.name}"] = task_metrics(
                    kind.sentiment, heads["sentiment"](dev).argmax(1).numpy(), SENTIMENTS).weighted_f1
        return out

    best = {"epoch": 0, "metrics": dev_scores(), "state": {k: v.clone() for k, v in heads.state_dict().items()}}
    best["score"] = float(np.mean(list(best["metrics"].values())))
    progress(f"shipped heads: {json.dumps({k: round(v, 4) for k, v in best['metrics'].items()})}")
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        for index in torch.randperm(len(x), generator=generator).split(config.batch_size):
            loss = emotion_loss(heads["emotion"](x[index]), y_emotion[index]) + sentiment_loss(
                heads["sentiment"](x[index]), y_sentiment[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        metrics = dev_scores()
        score = float(np.mean(list(metrics.values())))
        if score > best["score"]:
            best = {"epoch": epoch, "metrics": metrics, "score": score,
                    "state": {k: v.clone() for k, v in heads.state_dict().items()}}
        progress(f"epoch {epoch}: {json.dumps({k: round(v, 4) for k, v in metrics.items()})}")
    save_refitted(config, expert, best)
    return {"best_epoch": best["epoch"], "dev": best["metrics"]}


def save_refitted(config: HeadRefitConfig, expert: LoraTextModel, best: dict[str, object]) -> None:
    """The source file's adapters and metadata as they were, its heads replaced, the refit recorded."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    source = config.weights or str(REFIT_SOURCE.path)
    tensors = load_file(source)
    with safe_open(source, framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    dtype = tensors["emotion.weight"].dtype
    for key, value in best["state"].items():
        tensors[key] = value.to(dtype).contiguous()
    dev = {"emotion_weighted_f1": best["metrics"]["emotion_weighted_f1_written"],
           "sentiment_weighted_f1": best["metrics"]["sentiment_weighted_f1_written"]}
    metadata["dev"] = json.dumps({k: round(v, 4) for k, v in dev.items()})
    metadata["heads_refit"] = json.dumps({
        "what": "heads retrained on MELD train as written and ASR-shaped (training/asr_text.py); adapters as before",
        "config": {k: v for k, v in asdict(config).items() if k != "out"},
        "best_epoch": best["epoch"], "dev": {k: round(v, 4) for k, v in best["metrics"].items()},
        "source": Path(source).name})
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, config.out, metadata=metadata)
