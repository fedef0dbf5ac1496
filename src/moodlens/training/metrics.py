"""Classification metrics for one task (emotion or sentiment), as MELD papers report them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class TaskMetrics:
    labels: tuple[str, ...]
    n: int
    accuracy: float
    weighted_f1: float
    macro_f1: float
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]  # rows: true label, columns: predicted label, in `labels` order


def task_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: tuple[str, ...]) -> TaskMetrics:
    """All metrics over the full label set, so a class that is never predicted still counts."""
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if true.shape != pred.shape or true.size == 0:
        raise ValueError("need the same, non-zero number of true and predicted labels")
    index = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=index, zero_division=0
    )
    return TaskMetrics(
        labels=labels,
        n=int(true.size),
        accuracy=float(accuracy_score(true, pred)),
        weighted_f1=float(f1_score(true, pred, labels=index, average="weighted", zero_division=0)),
        macro_f1=float(f1_score(true, pred, labels=index, average="macro", zero_division=0)),
        per_class={
            label: ClassMetrics(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
            for i, label in enumerate(labels)
        },
        confusion=confusion_matrix(true, pred, labels=index).tolist(),
    )
