"""Evaluate the text expert (and baselines) on any MELD-format CSV."""

from __future__ import annotations

import math
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
                    cache: str | Path | None = None, through_pipeline: bool = False) -> dict[str, Any]:
    """A `moodlens train` bundle on one split's clips. From the feature cache (fast): fused scores
    with each modality alone and all. With `through_pipeline`: each clip through `analyze --model`
    itself, with its CSV line as the transcript, so what is scored is what users get."""
    import torch
    from torch.utils.data import DataLoader

    from moodlens.data.cache import prepare_split
    from moodlens.models.multimodal import load_bundle
    from moodlens.training.multimodal import CachedClips, ablation, predict

    start = time.perf_counter()
    if through_pipeline:
        predictions, labels = _through_pipeline(model_dir, meld_root, split)
        scores = {"all": _scores(labels, predictions)}
    else:
        model, _ = load_bundle(model_dir)
        folder = Path(cache or Path(model_dir).parent / "cache") / split
        if not (folder / "index.json").exists():
            prepare_split(meld_root, split, folder.parent, model.config.feature_spec())
        dataset = CachedClips(folder, model.config)  # refuses a cache made with other features
        loader = DataLoader(dataset, batch_size=16)
        scores = ablation(model, loader, dataset, torch.device("cpu"))
        emotion, sentiment = predict(model, loader, torch.device("cpu"))
        predictions = {entry["clip"]: {"emotion": e.round(6).tolist(), "sentiment": s.round(6).tolist()}
                       for entry, e, s in zip(dataset.clips, emotion, sentiment, strict=True)}
    return {"model": str(model_dir), "split": split, "mode": "pipeline" if through_pipeline else "cache",
            "n": len(predictions), "ablation": scores,
            "emotion": {"weighted_f1": scores["all"]["emotion_weighted_f1"],
                        "accuracy": scores["all"]["emotion_accuracy"]},
            "sentiment": {"weighted_f1": scores["all"]["sentiment_weighted_f1"],
                          "accuracy": scores["all"]["sentiment_accuracy"]},
            "predictions": predictions, "seconds": round(time.perf_counter() - start, 2)}


def _through_pipeline(model_dir: str | Path, meld_root: str | Path, split: str
                      ) -> tuple[dict[str, dict[str, list[float]]], dict[str, tuple[int, int]]]:
    """Per clip: the fused probabilities `analyze --model` gives with the clip's CSV line as its
    one utterance, and the clip's labels. Clips that cannot be read are left out, as the cache does."""
    import tempfile

    from moodlens.data.meld import split_clips
    from moodlens.errors import MoodlensError
    from moodlens.media import probe
    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import analyze
    from moodlens.writers import caption_timestamp

    predictions: dict[str, dict[str, list[float]]] = {}
    labels: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="moodlens-eval-") as folder:
        for clip in split_clips(meld_root, split):
            try:
                duration = probe(clip.path).duration
            except MoodlensError:
                continue
            transcript = Path(folder) / f"{clip.row.clip_name}.srt"
            end = caption_timestamp(math.ceil(duration * 1000) / 1000, ",")  # the whole clip, as the cache spans it
            transcript.write_text(f"1\n00:00:00,000 --> {end}\n{clip.row.text}\n", encoding="utf-8")
            try:
                result = analyze(clip.path, AnalyzeOptions(model=str(model_dir), transcript=str(transcript)))
            except MoodlensError:
                continue
            fused = result.utterances[0] if result.utterances else None
            if fused is None or fused.emotion is None or fused.sentiment is None:
                continue
            predictions[clip.row.clip_name] = {
                "emotion": [round(fused.emotion.probabilities[e], 6) for e in EMOTIONS],
                "sentiment": [round(fused.sentiment.probabilities[s], 6) for s in SENTIMENTS]}
            labels[clip.row.clip_name] = (clip.row.emotion, clip.row.sentiment)
    return predictions, labels


def _scores(labels: dict[str, tuple[int, int]], predictions: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    names = sorted(predictions)
    e = task_metrics(np.array([labels[n][0] for n in names]),
                     np.array([int(np.argmax(predictions[n]["emotion"])) for n in names]), EMOTIONS)
    s = task_metrics(np.array([labels[n][1] for n in names]),
                     np.array([int(np.argmax(predictions[n]["sentiment"])) for n in names]), SENTIMENTS)
    return {"emotion_weighted_f1": e.weighted_f1, "emotion_accuracy": e.accuracy,
            "sentiment_weighted_f1": s.weighted_f1, "sentiment_accuracy": s.accuracy}
