"""Fine-tune the text encoder with LoRA on MELD: context turns as segment A, the target as B.

Read top to bottom: rows -> (context, target) pairs -> length-grouped batches -> LoRA on every
linear layer of the encoder, pooled over the target's tokens -> joint emotion and sentiment
heads -> keep the epoch with the best dev score -> save adapters + heads as safetensors.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from moodlens.data.meld import MeldRow, dialogue_texts, read_meld_csv
from moodlens.features import asr_shaped, text_with_context
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.text import LoraTextConfig, build_lora_classifier, classify_pairs, encode_pairs
from moodlens.runtime import fast_bf16
from moodlens.training.common import RunConfig, class_weights, sentiment_given_emotion
from moodlens.training.metrics import task_metrics


@dataclass(frozen=True)
class FinetuneConfig(RunConfig):
    lr: float = 5e-4
    model: LoraTextConfig = field(default_factory=LoraTextConfig)
    head_lr: float = 1e-3
    warmup: float = 0.06
    # float16 halves the file (MPNet's rank-32 adapters are 21 MB in float32, over the 20 MB a
    # file in git may take); the loader upcasts, and evaluate scores the file as shipped
    save_dtype: str = "float32"
    # Share of training lines shown as speech recognition writes them (features.asr_shaped): no
    # exclamation marks or quotes. Dev is then scored both ways, and the epoch kept on both.
    asr_shaped_share: float = 0.0
    init: str | None = None  # a LoRA text model file to start from (its adapters and heads), not fresh ones
    bf16: bool = False  # bf16 autocast on a CPU that has it natively (models.text.fast_bf16); float32 otherwise


def pairs_for(rows: list[MeldRow], turns: int) -> list[tuple[str, str]]:
    """(context, target) for each row: the order the tokenizer wants, context first."""
    return [text_with_context(h, turns)[::-1] for h in dialogue_texts(rows)]


def length_grouped(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffle, then sort within blocks of 50 batches, so each batch pads little but order varies."""
    order = rng.permutation(len(lengths))
    block = batch_size * 50
    batches = []
    for begin in range(0, len(order), block):
        chunk = order[begin : begin + block]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    for index in rng.permutation(len(batches)):
        yield batches[index]


def save_checkpoint(config: FinetuneConfig, best: dict[str, object], priors: list[list[float]]) -> None:
    """Adapters and heads only (a few MB); the base encoder comes from its package at load."""
    from safetensors.torch import save_file

    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    training = {k: v for k, v in asdict(config).items() if k not in ("model", "out")}
    dtype = getattr(torch, config.save_dtype)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in best["state"].items()}
    save_file(state, config.out, metadata={
        "kind": json.dumps("lora-classifier"),
        "model": json.dumps(asdict(config.model)),
        "dev": json.dumps({k: round(v, 4) for k, v in best["metrics"].items()}),
        "best_epoch": json.dumps(best["epoch"]),
        "train_config": json.dumps(training),
        "sentiment_given_emotion": json.dumps(priors),
    })


def finetune(config: FinetuneConfig, progress: Callable[[str], None] = print) -> dict[str, object]:
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_rows = read_meld_csv(config.train_csv)[: config.limit]
    dev_rows = read_meld_csv(config.dev_csv)[: config.limit]
    train_pairs = pairs_for(train_rows, config.model.context_turns)
    dev_pairs = pairs_for(dev_rows, config.model.context_turns)
    priors = sentiment_given_emotion(train_rows)
    y_emotion = torch.tensor([r.emotion for r in train_rows])
    y_sentiment = torch.tensor([r.sentiment for r in train_rows])

    model, tokenizer = build_lora_classifier(config.model)
    if config.init:
        from safetensors.torch import load_file

        try:
            missing, unexpected = model.load_state_dict(load_file(config.init), strict=False)
        except RuntimeError:  # tensors of other shapes
            missing, unexpected = [], ["?"]
        if unexpected or any(".lora_" in k or k.startswith(("emotion.", "sentiment.")) for k in missing):
            raise ValueError(f"{config.init}: not a LoRA text model of this configuration")
    shaped = [(asr_shaped(c), asr_shaped(t)) for c, t in train_pairs]
    bf16 = config.bf16 and fast_bf16()
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    adapters = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": adapters, "lr": config.lr},
                                   {"params": heads, "lr": config.head_lr}],
                                  weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(train_rows) // config.batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup * steps), steps)
    emotion_loss = nn.CrossEntropyLoss(weight=class_weights(y_emotion.numpy(), len(EMOTIONS)))
    sentiment_loss = nn.CrossEntropyLoss(weight=class_weights(y_sentiment.numpy(), len(SENTIMENTS)))
    lengths = np.array([len(a) + len(b) for a, b in train_pairs])

    best: dict[str, object] = {"score": -1.0}
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        began, total = time.perf_counter(), 0.0
        for step, index in enumerate(length_grouped(lengths, config.batch_size, rng), start=1):
            chosen = [shaped[i] if config.asr_shaped_share > 0 and rng.random() < config.asr_shaped_share
                      else train_pairs[i] for i in index]
            tokens = encode_pairs(tokenizer, [c for c, _ in chosen], [t for _, t in chosen], config.model.max_tokens)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                emotion_logits, sentiment_logits = model(tokens)
            emotion_logits, sentiment_logits = emotion_logits.float(), sentiment_logits.float()
            loss = (emotion_loss(emotion_logits, y_emotion[index])
                    + sentiment_loss(sentiment_logits, y_sentiment[index]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
            if step % 50 == 0:
                progress(f"epoch {epoch} step {step}: loss {total / (step * config.batch_size):.4f}")
        metrics: dict[str, float] = {"loss": total / len(train_rows)}
        kinds = [("", dev_pairs)] + ([("_asr_shaped", [(asr_shaped(c), asr_shaped(t)) for c, t in dev_pairs])]
                                     if config.asr_shaped_share > 0 else [])
        for suffix, pairs in kinds:
            emotion, sentiment = classify_pairs(model, tokenizer, [p[0] for p in pairs], [p[1] for p in pairs],
                                                config.model.max_tokens, bf16=bf16)
            metrics[f"emotion_weighted_f1{suffix}"] = task_metrics([r.emotion for r in dev_rows], emotion.argmax(1),
                                                                   EMOTIONS).weighted_f1
            metrics[f"sentiment_weighted_f1{suffix}"] = task_metrics([r.sentiment for r in dev_rows],
                                                                     sentiment.argmax(1), SENTIMENTS).weighted_f1
        metrics["minutes"] = (time.perf_counter() - began) / 60
        history.append(metrics)
        progress(f"epoch {epoch}: {json.dumps({k: round(v, 4) for k, v in metrics.items()})}")
        scored = [v for k, v in metrics.items() if "weighted_f1" in k]
        score = sum(scored) / len(scored)
        if score > best["score"]:
            trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            best = {"score": score, "epoch": epoch, "metrics": metrics, "state": copy.deepcopy(trainable)}
            save_checkpoint(config, best, priors)  # after every improvement: a stopped run keeps its best
    return {"best_epoch": best["epoch"], "dev": best["metrics"], "history": history}
