from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from moodlens.models.text import TextEmotionHead
from moodlens.training.text import TextTrainConfig, class_weights, train_text


def test_small_training_run_learns(tmp_path: Path, meld_dir: Path) -> None:
    out = tmp_path / "heads.safetensors"
    config = TextTrainConfig(
        train_csv=str(meld_dir / "train_sent_emo.csv"), dev_csv=str(meld_dir / "dev_sent_emo.csv"),
        out=str(out), epochs=8, limit=200, cache_dir=None,
    )
    summary = train_text(config)
    losses = [h["loss"] for h in summary["history"]]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < losses[0] * 0.9, losses
    assert out.exists()
    _head, metadata = TextEmotionHead.load(out)
    assert metadata["train_rows"] == 200 and metadata["dev_rows"] == 200
    assert 1 <= metadata["best_epoch"] <= 8


def test_class_weights_favour_rare_classes() -> None:
    weights = class_weights(np.array([0] * 90 + [1] * 10), 3)
    assert weights[1] / weights[0] == pytest.approx(3.0)
