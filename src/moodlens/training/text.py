"""Train the text expert's heads on MELD train over frozen sentence embeddings; select on dev.

Read top to bottom: load rows -> embed (cached) -> train heads epoch by epoch -> keep the
epoch with the best dev score -> save safetensors with the dev numbers in its metadata.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from moodlens.data.meld import MeldRow, dialogue_texts, read_meld_csv
from moodlens.features import text_with_context
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.text import SentenceEncoder, TextEmotionHead, TextHeadConfig
from moodlens.training.common import RunConfig, class_weights, sentiment_given_emotion


@dataclass(frozen=True)
class TextTrainConfig(RunConfig):
    epochs: int = 12
    batch_size: int = 64
    head: TextHeadConfig = field(default_factory=TextHeadConfig)
    cache_dir: str | None = ".cache/moodlens"


def embed_rows(
    encoder: SentenceEncoder, rows: list[MeldRow], config: TextTrainConfig, split: str
) -> np.ndarray:
    pairs = [text_with_context(h, config.head.context_turns) for h in dialogue_texts(rows)]
    key = hashlib.sha1(
        repr((config.head.encoder, config.head.context_turns, config.head.max_tokens, pairs))
        .encode()
    ).hexdigest()[:16]
    cache = Path(config.cache_dir) / f"text-{split}-{key}.npy" if config.cache_dir else None
    if cache is not None and cache.exists():
        return np.load(cache)
    features = encoder.features([p[0] for p in pairs], [p[1] for p in pairs])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, features)
    return features


def evaluate_head(
    head: TextEmotionHead, features: torch.Tensor, emotion: np.ndarray, sentiment: np.ndarray
) -> dict[str, float]:
    head.eval()
    with torch.inference_mode():
        emotion_logits, sentiment_logits = head(features)
    emotion_pred = emotion_logits.argmax(-1).numpy()
    sentiment_pred = sentiment_logits.argmax(-1).numpy()
    return {
        "emotion_weighted_f1": float(f1_score(emotion, emotion_pred, average="weighted")),
        "emotion_accuracy": float((emotion_pred == emotion).mean()),
        "sentiment_weighted_f1": float(f1_score(sentiment, sentiment_pred, average="weighted")),
        "sentiment_accuracy": float((sentiment_pred == sentiment).mean()),
    }


def train_text(
    config: TextTrainConfig, progress: Callable[[int, dict[str, float]], None] | None = None
) -> dict[str, object]:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_rows = read_meld_csv(config.train_csv)[: config.limit]
    dev_rows = read_meld_csv(config.dev_csv)[: config.limit]

    encoder = SentenceEncoder(config.head.encoder, max_tokens=config.head.max_tokens)
    x_train = torch.from_numpy(embed_rows(encoder, train_rows, config, "train"))
    x_dev = torch.from_numpy(embed_rows(encoder, dev_rows, config, "dev"))
    y_emotion = np.array([r.emotion for r in train_rows])
    y_sentiment = np.array([r.sentiment for r in train_rows])
    dev_emotion = np.array([r.emotion for r in dev_rows])
    dev_sentiment = np.array([r.sentiment for r in dev_rows])

    head = TextEmotionHead(config.head)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    emotion_loss = nn.CrossEntropyLoss(weight=class_weights(y_emotion, len(EMOTIONS)))
    sentiment_loss = nn.CrossEntropyLoss(weight=class_weights(y_sentiment, len(SENTIMENTS)))
    t_emotion, t_sentiment = torch.from_numpy(y_emotion), torch.from_numpy(y_sentiment)

    best_score, best_state, best_metrics, best_epoch = -1.0, None, {}, 0
    history = []
    for epoch in range(1, config.epochs + 1):
        head.train()
        order = torch.from_numpy(rng.permutation(len(train_rows)))
        total = 0.0
        for begin in range(0, len(order), config.batch_size):
            batch = order[begin : begin + config.batch_size]
            emotion_logits, sentiment_logits = head(x_train[batch])
            loss = emotion_loss(emotion_logits, t_emotion[batch]) + sentiment_loss(
                sentiment_logits, t_sentiment[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        metrics = {"loss": total / len(train_rows)}
        metrics.update(evaluate_head(head, x_dev, dev_emotion, dev_sentiment))
        history.append(metrics)
        if progress:
            progress(epoch, metrics)
        # Both tasks count equally when choosing the epoch.
        score = (metrics["emotion_weighted_f1"] + metrics["sentiment_weighted_f1"]) / 2
        if score > best_score:
            best_score, best_state = score, copy.deepcopy(head.state_dict())
            best_metrics, best_epoch = metrics, epoch

    assert best_state is not None
    head.load_state_dict(best_state)
    summary = {
        "dev": {k: round(v, 4) for k, v in best_metrics.items()},
        "best_epoch": best_epoch,
        "train_rows": len(train_rows),
        "dev_rows": len(dev_rows),
        "train_config": {k: v for k, v in asdict(config).items() if k not in ("head", "out")},
        "sentiment_given_emotion": sentiment_given_emotion(train_rows),
    }
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    head.save(config.out, summary)
    summary["history"] = history
    return summary
