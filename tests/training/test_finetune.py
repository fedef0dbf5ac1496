from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors import safe_open

from moodlens.models.text import LoraTextConfig
from moodlens.training.finetune import FinetuneConfig, finetune, length_grouped, pairs_for


def test_lora_finetune_on_a_slice_learns_and_saves(tmp_path: Path, meld_dir: Path) -> None:
    """200 rows, 4 short epochs (under a minute on 2 cores): the loss must fall."""
    out = tmp_path / "lora.safetensors"
    config = FinetuneConfig(
        train_csv=str(meld_dir / "train_sent_emo.csv"), dev_csv=str(meld_dir / "dev_sent_emo.csv"),
        out=str(out), epochs=4, limit=200, batch_size=16, lr=2e-3, head_lr=5e-3, warmup=0.0,
    )
    summary = finetune(config, progress=lambda line: None)
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0] * 0.9, losses
    with safe_open(str(out), framework="pt") as handle:
        names = list(handle.keys())
        metadata = handle.metadata()
    assert any("lora_A" in n for n in names) and any(n.startswith("emotion.") for n in names)
    assert not any(n.endswith("query.base_layer.weight") for n in names)  # adapters only, not the base
    assert json.loads(metadata["model"])["lora_rank"] == 32
    assert json.loads(metadata["kind"]) == "lora-classifier"
    assert out.stat().st_size < 20_000_000


def test_context_goes_first_and_batches_cover_every_row(tmp_path: Path) -> None:
    from moodlens.data.meld import read_meld_csv

    path = tmp_path / "mini.csv"
    path.write_text("Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
                    "a,X,joy,positive,0,0\nb,Y,anger,negative,0,1\nc,X,neutral,neutral,0,2\n"
                    "d,Y,fear,negative,1,0\n", encoding="utf-8")
    pairs = pairs_for(read_meld_csv(path), turns=2)
    assert pairs == [("", "a"), ("a", "b"), ("a b", "c"), ("", "d")]
    lengths = np.array([5, 1, 9, 3, 7, 2, 8])
    batches = list(length_grouped(lengths, 3, np.random.default_rng(0)))
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))


def test_continuing_from_a_model_on_asr_shaped_text_scores_dev_both_ways(tmp_path: Path, meld_dir: Path) -> None:
    from moodlens.models.text import TextHeadWeights

    out = tmp_path / "continued.safetensors"
    config = FinetuneConfig(
        train_csv=str(meld_dir / "train_sent_emo.csv"), dev_csv=str(meld_dir / "dev_sent_emo.csv"),
        out=str(out), epochs=1, limit=48, batch_size=16, lr=1e-4, head_lr=1e-4, warmup=0.0,
        asr_shaped_share=0.5, init=str(TextHeadWeights.MELD_MINILM_LORA_V1.path), bf16=True,
        model=LoraTextConfig(encoder="all-MiniLM-L6-v2", context_turns=3),
    )
    summary = finetune(config, progress=lambda line: None)
    assert {"emotion_weighted_f1_asr_shaped", "sentiment_weighted_f1_asr_shaped"} <= set(summary["dev"])
    # started from the trained MiniLM model, 48 rows cannot have made it a chance-level one
    assert summary["dev"]["emotion_weighted_f1"] > 0.3
    with safe_open(str(out), framework="pt") as handle:
        recorded = json.loads(handle.metadata()["train_config"])
    assert recorded["asr_shaped_share"] == 0.5 and recorded["init"].endswith("minilm_lora_v1.safetensors")


def test_a_model_of_another_shape_is_refused_as_a_start(tmp_path: Path, meld_dir: Path) -> None:
    import pytest

    from moodlens.models.text import TextHeadWeights

    config = FinetuneConfig(
        train_csv=str(meld_dir / "train_sent_emo.csv"), dev_csv=str(meld_dir / "dev_sent_emo.csv"),
        out=str(tmp_path / "x.safetensors"), epochs=1, limit=16, init=str(TextHeadWeights.MELD_MINILM_V1.path),
        model=LoraTextConfig(encoder="all-MiniLM-L6-v2", context_turns=3))
    with pytest.raises(ValueError, match="not a LoRA text model"):
        finetune(config, progress=lambda line: None)
