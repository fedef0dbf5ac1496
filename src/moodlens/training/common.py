"""What every moodlens training run shares: the run config's common fields, class weights,
P(sentiment | emotion), seeding, and the random states a resume restores."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from moodlens.data.meld import MeldRow
from moodlens.labels import EMOTIONS, SENTIMENTS


@dataclass(frozen=True)
class RunConfig:
    """The fields every MELD text run names; each run's config adds its own and sets its defaults."""

    train_csv: str
    dev_csv: str
    out: str
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    limit: int | None = None  # rows per split, for quick runs and tests


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """sqrt inverse class frequency: lifts rare classes without letting them dominate."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def sentiment_given_emotion(rows: list[MeldRow]) -> list[list[float]]:
    """P(sentiment | emotion) on the training rows, used to give the face expert a sentiment."""
    table = np.ones((len(EMOTIONS), len(SENTIMENTS)))  # add-one smoothing
    for row in rows:
        table[row.emotion, row.sentiment] += 1
    return (table / table.sum(1, keepdims=True)).round(4).tolist()


def rng_states(loader: torch.Generator, device: torch.device) -> dict[str, object]:
    """Every random state the next epoch depends on, in types torch.load(weights_only=True) reads:
    the shuffle order's generator, torch's CPU and CUDA generators, numpy's and Python's."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {"loader": loader.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
            "python": random.getstate()}


def set_rng_states(saved: dict[str, object], loader: torch.Generator, device: torch.device) -> None:
    loader.set_state(saved["loader"])
    torch.set_rng_state(saved["torch"])
    if device.type == "cuda" and saved["cuda"]:
        torch.cuda.set_rng_state_all(saved["cuda"])
    kind, keys, position, has_gauss, gauss = saved["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(saved["python"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
