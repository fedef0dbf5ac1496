"""Evaluate the text expert (and baselines) on any MELD-format CSV."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from moodlens.data.meld import MeldRow, dialogue_texts, read_meld_csv
from moodlens.features import text_with_context
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.text import TextModel, load_text_expert
from moodlens.training.metrics import TaskMetrics, task_metrics

MODALITIES = ("text",)


@dataclass(frozen=True)
class SystemResult:
    system: str
    emotion: TaskMetrics | None
    sentiment: TaskMetrics | None


@dataclass(frozen=True)
class Evaluation:
    source: str
    n: int
    seconds: float
    model: str
    ours: SystemResult
    baselines: list[SystemResult]

    def to_json(self) -> dict[str, Any]:
        """One object: our model's metrics at the top level, as fractions, baselines beside."""
        def metrics(m: TaskMetrics | None) -> dict[str, Any] | None:
            return None if m is None else asdict(m)

        return {
            "source": self.source,
            "n": self.n,
            "system": self.ours.system,
            "model": self.model,
            "seconds": round(self.seconds, 2),
            "emotion": metrics(self.ours.emotion),
            "sentiment": metrics(self.ours.sentiment),
            "baselines": {b.system: {"emotion": metrics(b.emotion), "sentiment": metrics(b.sentiment)}
                          for b in self.baselines},
        }


def predict_rows(rows: list[MeldRow], expert: TextModel) -> tuple[np.ndarray, np.ndarray]:
    """Emotion and sentiment indices, each row seen with the turns before it in its dialogue."""
    pairs = [text_with_context(h, expert.config.context_turns) for h in dialogue_texts(rows)]
    emotion, sentiment = expert.predict([p[0] for p in pairs], [p[1] for p in pairs])
    return emotion.argmax(1), sentiment.argmax(1)


def evaluate_meld_csv(
    path: str | Path,
    modality: str = "text",
    baselines: bool = False,
    weights: str | None = None,
) -> Evaluation:
    """Our text model (the shipped one, or `weights`) on every row, baselines optionally beside."""
    if modality not in MODALITIES:
        raise ValueError(
            f"modality {modality!r} cannot be evaluated from a CSV alone; face and voice need the "
            "MELD.Raw clips (`moodlens evaluate --model`, not built yet)"
        )
    start = time.perf_counter()
    rows = read_meld_csv(path)
    expert = load_text_expert(weights)
    emotion_true = [r.emotion for r in rows]
    sentiment_true = [r.sentiment for r in rows]
    emotion, sentiment = predict_rows(rows, expert)
    ours = SystemResult(
        "moodlens text",
        task_metrics(emotion_true, emotion, EMOTIONS),
        task_metrics(sentiment_true, sentiment, SENTIMENTS),
    )
    others = []
    if baselines:
        from moodlens.baselines import BASELINES

        texts = [r.text for r in rows]
        for name, (task, predict) in BASELINES.items():
            predicted = predict(texts)
            if task == "emotion":
                others.append(SystemResult(name, task_metrics(emotion_true, predicted, EMOTIONS), None))
            else:
                others.append(SystemResult(name, None, task_metrics(sentiment_true, predicted, SENTIMENTS)))
    model = expert.description
    return Evaluation(str(path), len(rows), time.perf_counter() - start, model, ours, others)


def write_confusion_png(metrics: TaskMetrics, path: str | Path, title: str) -> Path:
    """A row-normalised confusion matrix with counts, drawn with OpenCV (no plotting stack)."""
    labels, counts = metrics.labels, np.array(metrics.confusion, dtype=float)
    cell, left, top = 80, 110, 70
    size = len(labels)
    image = np.full((top + cell * size + 90, left + cell * size + 20, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, title, (10, 28), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "true \\ predicted", (10, top - 12), font, 0.45, (90, 90, 90), 1, cv2.LINE_AA)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    for i in range(size):
        for j in range(size):
            shade = int(255 - 200 * rates[i, j])
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(image, (x, y), (x + cell, y + cell), (255, shade, shade), -1)
            cv2.rectangle(image, (x, y), (x + cell, y + cell), (200, 200, 200), 1)
            ink = (255, 255, 255) if rates[i, j] > 0.6 else (0, 0, 0)
            cv2.putText(image, f"{int(counts[i, j])}", (x + 8, y + 32), font, 0.5, ink, 1, cv2.LINE_AA)
            cv2.putText(image, f"{rates[i, j]:.0%}", (x + 8, y + 58), font, 0.45, ink, 1, cv2.LINE_AA)
        cv2.putText(image, labels[i][:9], (8, top + i * cell + 45), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        label_at = (left + i * cell + 6, top + size * cell + 22)
        cv2.putText(image, labels[i][:9], label_at, font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    footer = (f"n={metrics.n}  accuracy {metrics.accuracy:.3f}  weighted F1 {metrics.weighted_f1:.3f}  "
              f"macro F1 {metrics.macro_f1:.3f}")
    cv2.putText(image, footer, (10, image.shape[0] - 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def evaluate_bundle(model_dir: str | Path, meld_root: str | Path, split: str = "dev",
                    cache: str | Path | None = None) -> dict[str, Any]:
    """A `moodlens train` bundle on one split's clips: fused scores with each modality alone and all."""
    import torch
    from torch.utils.data import DataLoader

    from moodlens.data.cache import prepare_split
    from moodlens.models.multimodal import load_bundle
    from moodlens.training.multimodal import CachedClips, ablation

    start = time.perf_counter()
    model, _ = load_bundle(model_dir)
    folder = Path(cache or Path(model_dir).parent / "cache") / split
    if not (folder / "index.json").exists():
        prepare_split(meld_root, split, folder.parent, model.config.feature_spec())
    dataset = CachedClips(folder, model.config)  # refuses a cache made with other features
    loader = DataLoader(dataset, batch_size=16)
    scores = ablation(model, loader, dataset, torch.device("cpu"))
    return {"model": str(model_dir), "split": split, "n": len(dataset), "ablation": scores,
            "emotion": {"weighted_f1": scores["all"]["emotion_weighted_f1"],
                        "accuracy": scores["all"]["emotion_accuracy"]},
            "sentiment": {"weighted_f1": scores["all"]["sentiment_weighted_f1"],
                          "accuracy": scores["all"]["sentiment_accuracy"]},
            "seconds": round(time.perf_counter() - start, 2)}
