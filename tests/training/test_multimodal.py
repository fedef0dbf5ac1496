"""One epoch of the reference model on the MELD-format fixture (11 real clips + edge cases)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchvision", reason="the multimodal extra is not installed")

from typer.testing import CliRunner

from moodlens.cli import app
from moodlens.models.multimodal import MultimodalConfig, MultimodalSentimentModel
from moodlens.training.multimodal import CachedClips, TrainConfig, drop_modalities, train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _config(root: Path, out: Path, cache: Path, **changes: object) -> TrainConfig:
    from moodlens.training.recipe import load_multimodal_recipe

    config = load_multimodal_recipe(CONFIGS / "meld-multimodal.yaml", root, out, cache=str(cache))
    return replace(config, batch_size=4, grad_accum=1, workers=0, **changes)


@pytest.fixture(scope="module")
def first_epoch(tmp_path_factory: pytest.TempPathFactory, meld_raw: tuple[Path, dict], meld_cache: Path
                ) -> tuple[TrainConfig, dict]:
    out = tmp_path_factory.mktemp("run")
    config = _config(meld_raw[0], out, meld_cache, epochs=1)
    return config, train(config, progress=lambda line: None)


def test_one_epoch_writes_checkpoint_bundle_and_logs(first_epoch: tuple[TrainConfig, dict]) -> None:
    config, summary = first_epoch
    out = Path(config.out)
    record = summary["history"][0]
    assert torch.isfinite(torch.tensor(record["loss"])) and record["step"] == 2  # 9 clips, batches of 4
    assert (out / "last.pt").is_file() and (out / "best" / "model.safetensors").is_file()
    document = json.loads((out / "best" / "config.json").read_text())
    assert document["trained_on"]["clips"] == 9 and document["trained_on"]["text_encoder"] == "all-MiniLM-L6-v2"
    assert document["trained_on"]["video_init"] == "r3d_18 from random init"  # offline: honest about it
    from moodlens.data.cache import read_index

    # the bundle carries the spec of the features it was trained on: the cache's, exactly
    assert document["feature_spec"] == read_index(config.cache_dir / "train")["feature_spec"]
    assert set(summary["ablation"]) == {"text", "audio", "video", "all"}
    assert json.loads((out / "ablation.json").read_text()) == summary["ablation"]
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard")).Reload()
    steps, epochs = events.Scalars("train/loss_step"), events.Scalars("train/loss_epoch")
    assert [e.step for e in steps] == [1, 2] and [e.step for e in epochs] == [1]  # two tags, two clocks
    assert epochs[0].value == pytest.approx(record["loss"], rel=1e-5)


def test_resume_continues_from_the_same_step(first_epoch: tuple[TrainConfig, dict]) -> None:
    config, _ = first_epoch
    lines: list[str] = []
    summary = train(replace(config, epochs=2), progress=lines.append, resume=True)
    assert lines[0] == "resumed after epoch 1 at step 2"
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert summary["history"][1]["step"] == 4  # 2 more optimizer steps, counted on from 2
    saved = torch.load(Path(config.out) / "last.pt", weights_only=False)
    assert saved["state"]["epoch"] == 2 and saved["state"]["step"] == 4


def test_loss_goes_down_over_repeated_batches(meld_cache: Path) -> None:
    torch.manual_seed(0)
    config = replace(MultimodalConfig(), text_dim=384, text_encoder="all-MiniLM-L6-v2")  # as the cache fell back
    dataset = CachedClips(meld_cache / "train", config)
    batch = {k: torch.stack([dataset[i][k] for i in range(4)]) for k in dataset[0]}
    model = MultimodalSentimentModel(dataset.config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        out = model(batch["text"], batch["video"], batch["audio"], batch["mask"])
        loss = (torch.nn.functional.cross_entropy(out.emotion, batch["emotion"])
                + torch.nn.functional.cross_entropy(out.sentiment, batch["sentiment"]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] * 0.8, losses


def test_modality_dropout_never_hides_everything() -> None:
    mask = torch.tensor([[True, True, True], [True, False, False], [False, True, True]] * 50)
    dropped = drop_modalities(mask, 0.9, torch.Generator().manual_seed(0))
    assert dropped.any(dim=1).all() and not (dropped & ~mask).any()
    assert dropped.sum() < mask.sum()


def test_analyze_with_the_trained_model(first_epoch: tuple[TrainConfig, dict], meld_clips: list[dict],
                                        tmp_path: Path) -> None:
    config, _ = first_epoch
    clip = meld_clips[1]["path"]
    result = CliRunner().invoke(app, ["analyze", clip, "--model", str(Path(config.out) / "best"),
                                      "--out", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    analysis = json.loads((tmp_path / f"{Path(clip).stem}.analysis.json").read_text())
    assert analysis["settings"]["fusion"]["method"] == "feature-level"
    utterance = analysis["utterances"][0]
    assert set(utterance["modalities_used"]) == {"text", "face", "voice"}
    assert abs(sum(utterance["emotion"]["probabilities"].values()) - 1) < 1e-3
    assert "9 clips of" in analysis["modalities"]["face"]["trained_on"]


def test_evaluate_model_prints_the_ablation(first_epoch: tuple[TrainConfig, dict], meld_raw: tuple[Path, dict],
                                            meld_cache: Path) -> None:
    config, _ = first_epoch
    result = CliRunner().invoke(app, ["evaluate", "--model", str(Path(config.out) / "best"), "--meld-root",
                                      str(meld_raw[0]), "--cache", str(meld_cache), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 5 and set(report["ablation"]) == {"text", "audio", "video", "all"}
    assert report["emotion"]["weighted_f1"] == report["ablation"]["all"]["emotion_weighted_f1"]


def test_bad_model_folder_is_one_line(tmp_path: Path, meld_clips: list[dict]) -> None:
    result = CliRunner().invoke(app, ["analyze", meld_clips[0]["path"], "--model", str(tmp_path)])
    assert result.exit_code == 2 and "not a moodlens multimodal model" in result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here; mixed precision runs only on CUDA")
def test_one_epoch_with_mixed_precision_on_cuda(meld_raw: tuple[Path, dict], meld_cache: Path,
                                                tmp_path: Path) -> None:
    config = _config(meld_raw[0], tmp_path, meld_cache, epochs=1, amp=True)
    summary = train(config, progress=lambda line: None)
    assert torch.isfinite(torch.tensor(summary["history"][0]["loss"]))
    assert (tmp_path / "best" / "model.safetensors").is_file()


def test_torchrun_ddp_runs_the_same_command(meld_raw: tuple[Path, dict], meld_cache: Path, tmp_path: Path) -> None:
    """Two processes on the CPU (gloo): the command a multi-GPU user runs, with no other script."""
    import os
    import subprocess
    import sys

    import yaml

    recipe = yaml.safe_load((CONFIGS / "meld-multimodal.yaml").read_text())
    recipe["training"].update(batch_size=2, grad_accum=1, workers=0)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "moodlens.cli", "train", "--config", str(tmp_path / "recipe.yaml"), "--meld-root",
               str(meld_raw[0]), "--cache", str(meld_cache), "--out", str(tmp_path / "run"), "--epochs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 1 step 2:") == 1  # 9 clips over 2 ranks, batches of 2: 2 steps, one report
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()


def test_the_cache_and_the_pipeline_agree(first_epoch: tuple[TrainConfig, dict], meld_raw: tuple[Path, dict],
                                          meld_cache: Path) -> None:
    """evaluate --model from the cache and --through-pipeline (analyze itself, CSV line as transcript)
    score the same clips the same way: the features are the same, so the predictions are."""
    config, _ = first_epoch
    common = ["evaluate", "--model", str(Path(config.out) / "best"), "--meld-root", str(meld_raw[0]), "--json"]
    cached = json.loads(CliRunner().invoke(app, [*common, "--cache", str(meld_cache)]).output)
    result = CliRunner().invoke(app, [*common, "--through-pipeline"])
    assert result.exit_code == 0, result.output
    piped = json.loads(result.output)
    assert cached["mode"] == "cache" and piped["mode"] == "pipeline"
    shared = sorted(set(cached["predictions"]) & set(piped["predictions"]))
    assert len(shared) >= 4  # every real dev clip the fixture holds
    for clip in shared:
        for task in ("emotion", "sentiment"):
            a, b = np.array(cached["predictions"][clip][task]), np.array(piped["predictions"][clip][task])
            assert a.argmax() == b.argmax() and np.abs(a - b).max() < 1e-3, (clip, task, a, b)


def test_an_interrupted_run_resumes_exactly(tmp_path: Path, meld_raw: tuple[Path, dict], meld_cache: Path) -> None:
    """Two epochs straight, against one epoch, a stop, and a resume: the same losses, dev scores
    and weights, step for step, because the shuffle order and every RNG are restored."""
    from safetensors.torch import load_file

    straight = train(_config(meld_raw[0], tmp_path / "straight", meld_cache, epochs=2), progress=lambda line: None)
    stopped = _config(meld_raw[0], tmp_path / "stopped", meld_cache, epochs=1)
    train(stopped, progress=lambda line: None)
    resumed = train(replace(stopped, epochs=2), progress=lambda line: None, resume=True)
    keys = ("epoch", "step", "loss", "lr", "emotion_weighted_f1", "sentiment_weighted_f1")
    assert [[h[k] for k in keys] for h in resumed["history"]] == [[h[k] for k in keys] for h in straight["history"]]
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "stopped" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if (tmp_path / "straight" / "best").exists() and (tmp_path / "stopped" / "best").exists():
        best_a = load_file(str(tmp_path / "straight" / "best" / "model.safetensors"))
        best_b = load_file(str(tmp_path / "stopped" / "best" / "model.safetensors"))
        assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)


def test_two_processes_under_torchrun(tmp_path: Path, meld_raw: tuple[Path, dict], meld_cache: Path) -> None:
    """DDP on CPU (gloo) with gradient accumulation: the no_sync micro-steps and the rank-0 dev
    scoring run, both ranks finish, and rank 0 alone writes the run."""
    import os
    import subprocess
    import sys

    import yaml

    recipe = yaml.safe_load((CONFIGS / "meld-multimodal.yaml").read_text(encoding="utf-8"))
    recipe["training"].update(epochs=1, batch_size=2, grad_accum=2, workers=0, amp=False)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "moodlens.cli", "train", "--config", str(path),
         "--meld-root", str(meld_raw[0]), "--cache", str(meld_cache), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("epoch 1 step") == 1  # said once, by rank 0
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file() and (tmp_path / "run" / "last.pt").is_file()
