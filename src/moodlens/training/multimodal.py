"""`moodlens train`: the reference multimodal model on a prepared MELD feature cache.

Read top to bottom: config -> (DDP if launched by torchrun) -> cached datasets -> model ->
AdamW + ReduceLROnPlateau -> epochs of (mixed precision, accumulation, clipping, modality
dropout) -> dev weighted F1 -> best bundle + `last.pt` every epoch -> early stop -> ablation.

The same command runs on one CPU, one GPU, or under `torchrun --nproc-per-node N`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from moodlens.data.cache import check_cache_spec, prepare_split, read_index
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.multimodal import (
    MODALITIES,
    MultimodalConfig,
    MultimodalSentimentModel,
    save_bundle,
)
from moodlens.training.common import class_weights, rng_states, seed_everything, set_rng_states
from moodlens.training.metrics import task_metrics


@dataclass(frozen=True)
class TrainConfig:
    meld_root: str
    out: str
    cache: str | None = None  # default: OUT/cache
    model: MultimodalConfig = field(default_factory=MultimodalConfig)
    epochs: int = 20
    batch_size: int = 16
    grad_accum: int = 2  # optimizer steps every `grad_accum` batches
    lr: float = 1e-4
    weight_decay: float = 0.01
    plateau_patience: int = 2  # ReduceLROnPlateau on dev weighted F1
    plateau_factor: float = 0.1
    early_stop: int = 5  # epochs without a better dev score
    clip_norm: float = 1.0
    modality_dropout: float = 0.2  # chance of hiding each modality of each training example
    aux_weight: float = 0.3  # per-modality heads' share of the loss
    amp: bool = True  # only on CUDA
    workers: int = 2
    seed: int = 0
    train_split: str = "train"
    dev_split: str = "dev"

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out) / "cache"


class CachedClips(Dataset):
    """Examples from a prepared split: (text [CLS], video uint8, log-mel, mask, emotion, sentiment)."""

    def __init__(self, folder: str | Path, config: MultimodalConfig) -> None:
        self.folder = Path(folder)
        self.index = read_index(self.folder)
        check_cache_spec(self.index, config.feature_spec(), self.folder)
        self.clips = self.index["clips"]
        self.text = np.load(self.folder / "text.npy", mmap_mode="r")
        self.config = config

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        entry, c = self.clips[i], self.config
        with np.load(self.folder / f"{entry['clip']}.npz") as cached:
            video, mel = cached["video"], cached["mel"]
        has_video, has_audio = video.size > 0, mel.size > 0
        if not has_video:
            video = np.zeros((c.clip_frames, c.clip_size, c.clip_size, 3), np.uint8)
        if not has_audio:
            mel = np.zeros((c.mel_bands, c.mel_frames), c.mel_dtype)
        has_text = bool(entry["text"].strip())
        return {
            "text": torch.from_numpy(np.array(self.text[i], dtype=np.float32)),
            "video": torch.from_numpy(video),
            "audio": torch.from_numpy(mel.astype(np.float32)),
            "mask": torch.tensor([has_text, has_video, has_audio]),
            "emotion": torch.tensor(entry["emotion"]),
            "sentiment": torch.tensor(entry["sentiment"]),
        }

    def labels(self, task: str) -> np.ndarray:
        return np.array([entry[task] for entry in self.clips])


def drop_modalities(mask: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Hide each present modality with probability p, but never all of a row's modalities."""
    keep = torch.rand(mask.shape, generator=generator) >= p
    dropped = mask & keep.to(mask.device)
    empty = ~dropped.any(dim=1)
    dropped[empty] = mask[empty]
    return dropped


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device,
            only: tuple[str, ...] = MODALITIES) -> tuple[np.ndarray, np.ndarray]:
    """Fused probabilities, (N, 7) and (N, 3), with every modality outside `only` masked (the ablations)."""
    model.eval()
    keep = torch.tensor([m in only for m in MODALITIES], device=device)
    emotion, sentiment = [], []
    with torch.inference_mode():
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(batch["text"], batch["video"], batch["audio"], batch["mask"] & keep)
            emotion.append(out.emotion.float().softmax(1).cpu())
            sentiment.append(out.sentiment.float().softmax(1).cpu())
    return torch.cat(emotion).numpy(), torch.cat(sentiment).numpy()


def dev_scores(model: nn.Module, loader: DataLoader, dataset: CachedClips, device: torch.device,
               only: tuple[str, ...] = MODALITIES) -> dict[str, float]:
    emotion, sentiment = predict(model, loader, device, only)
    e = task_metrics(dataset.labels("emotion"), emotion.argmax(1), EMOTIONS)
    s = task_metrics(dataset.labels("sentiment"), sentiment.argmax(1), SENTIMENTS)
    return {"emotion_weighted_f1": e.weighted_f1, "emotion_accuracy": e.accuracy,
            "sentiment_weighted_f1": s.weighted_f1, "sentiment_accuracy": s.accuracy}


def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); torchrun sets WORLD_SIZE, and then a process group is made."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return (dist.get_rank() if world > 1 else 0), world, device


def train(config: TrainConfig, progress: Callable[[str], None] = print, resume: bool = False) -> dict:
    from torch.utils.tensorboard import SummaryWriter

    rank, world, device = _distributed()
    main = rank == 0
    say = progress if main else (lambda line: None)
    seed_everything(config.seed + rank)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    # Data: prepared once (rank 0), then read from the cache by every rank.
    folders = {}
    for split in (config.train_split, config.dev_split):
        folders[split] = config.cache_dir / split
        if main and not (folders[split] / "index.json").exists():
            say(f"preparing {split} features under {folders[split]}")
            prepare_split(config.meld_root, split, config.cache_dir, config.model.feature_spec(), config.workers)
    if world > 1:
        dist.barrier()
    index = read_index(folders[config.train_split])
    model_config = replace(config.model, text_encoder=index["text_encoder"], text_dim=index["text_dim"])
    train_set = CachedClips(folders[config.train_split], model_config)
    dev_set = CachedClips(folders[config.dev_split], model_config)
    sampler = DistributedSampler(train_set, world, rank, seed=config.seed) if world > 1 else None
    loader_args = {"batch_size": config.batch_size, "num_workers": config.workers,
                   "pin_memory": device.type == "cuda", "persistent_workers": False}
    # BatchNorm cannot train on a batch of one, which a ragged last batch can be
    train_loader = DataLoader(train_set, shuffle=sampler is None, sampler=sampler,
                              drop_last=len(train_set) // world > config.batch_size,
                              generator=torch.Generator().manual_seed(config.seed), **loader_args)
    dev_loader = DataLoader(dev_set, shuffle=False, **loader_args)

    # Model, optimiser, schedule, loss.
    model = MultimodalSentimentModel(model_config, pretrained_video=True).to(device)
    video_source = model.encoders["video"].source
    core = model
    if world > 1:
        # a batch without, say, any audio skips that encoder, so some parameters get no gradient
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                                    find_unused_parameters=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config.plateau_factor,
                                                         patience=config.plateau_patience)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    emotion_loss = nn.CrossEntropyLoss(weight=class_weights(train_set.labels("emotion"), len(EMOTIONS)).to(device))
    sentiment_loss = nn.CrossEntropyLoss(
        weight=class_weights(train_set.labels("sentiment"), len(SENTIMENTS)).to(device))
    dropout_rng = torch.Generator().manual_seed(config.seed + rank)

    # Resume: everything needed to continue as if never stopped.
    state = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "stale": 0, "history": []}
    checkpoint = out / "last.pt"
    if resume and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)  # a checkpoint runs no code
        core.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        plateau.load_state_dict(saved["plateau"])
        scaler.load_state_dict(saved["scaler"])
        dropout_rng.set_state(saved["dropout_rng"])
        set_rng_states(saved["rng"], train_loader.generator, device)
        state = saved["state"]
        say(f"resumed after epoch {state['epoch']} at step {state['step']}")
    writer = SummaryWriter(str(out / "tensorboard")) if main else None

    def loss_of(batch: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, enabled=use_amp):
            o = model(batch["text"], batch["video"], batch["audio"], mask)
            loss = emotion_loss(o.emotion.float(), batch["emotion"]) + sentiment_loss(
                o.sentiment.float(), batch["sentiment"])
            # each auxiliary head learns only from the rows where its modality was shown
            aux = sum(emotion_loss(o.aux_emotion[m][mask[:, i]].float(), batch["emotion"][mask[:, i]])
                      + sentiment_loss(o.aux_sentiment[m][mask[:, i]].float(), batch["sentiment"][mask[:, i]])
                      for i, m in enumerate(MODALITIES) if mask[:, i].any())
        return loss + config.aux_weight * aux / len(MODALITIES)

    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        if state["stale"] >= config.early_stop:
            break
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        began, total, seen, batches = time.perf_counter(), 0.0, 0, len(train_loader)
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(train_loader, start=1):
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            mask = drop_modalities(batch["mask"].cpu(), config.modality_dropout, dropout_rng).to(device)
            boundary = i % config.grad_accum == 0 or i == batches
            # under DDP, gradients are all-reduced only on the micro-step that steps the optimiser
            with model.no_sync() if world > 1 and not boundary else contextlib.nullcontext():
                loss = loss_of(batch, mask)
                scaler.scale(loss / config.grad_accum).backward()
            total += loss.item() * len(batch["emotion"])
            seen += len(batch["emotion"])
            if boundary:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                if writer:
                    writer.add_scalar("train/loss_step", loss.item(), state["step"])
        seconds = time.perf_counter() - began
        scores = dev_scores(core, dev_loader, dev_set, device) if main else {}
        if world > 1:  # rank 0 scored the whole dev set once; every rank takes its scores (same LR schedule)
            box = [scores]
            dist.broadcast_object_list(box, src=0)
            scores = box[0]
        score = (scores["emotion_weighted_f1"] + scores["sentiment_weighted_f1"]) / 2
        plateau.step(score)
        lr = optimizer.param_groups[0]["lr"]
        record = {"epoch": epoch, "step": state["step"], "loss": total / max(seen, 1), "lr": lr,
                  "seconds": round(seconds, 2), "clips": seen * world, **scores}
        state["history"].append(record)
        if writer:
            writer.add_scalar("train/loss_epoch", record["loss"], epoch)
            writer.add_scalar("train/lr", record["lr"], epoch)
            for key, value in scores.items():
                writer.add_scalar(f"dev/{key}", value, epoch)
            writer.flush()
        say(f"epoch {epoch} step {state['step']}: loss {record['loss']:.4f}, dev emotion wF1 "
            f"{scores['emotion_weighted_f1']:.4f}, sentiment wF1 {scores['sentiment_weighted_f1']:.4f}, "
            f"lr {lr:.2e}, {seconds:.1f} s")
        state["epoch"] = epoch
        if score > state["best"]:
            state.update(best=score, best_epoch=epoch, stale=0)
            if main:
                save_bundle(core, out / "best", _bundle_metadata(config, index, video_source, epoch, scores))
        else:
            state["stale"] += 1
        if main:
            partial = checkpoint.with_suffix(".tmp")
            torch.save({"model": core.state_dict(), "optimizer": optimizer.state_dict(),
                        "plateau": plateau.state_dict(), "scaler": scaler.state_dict(),
                        "dropout_rng": dropout_rng.get_state(), "rng": rng_states(train_loader.generator, device),
                        "state": state, "config": asdict(config)}, partial)
            os.replace(partial, checkpoint)  # a kill mid-write never leaves a broken checkpoint
    if writer:
        writer.close()

    summary = {"best_epoch": state["best_epoch"], "history": state["history"]}
    if main and (out / "best" / "config.json").exists():
        from moodlens.models.multimodal import load_bundle

        best, _ = load_bundle(out / "best", str(device))
        summary["ablation"] = ablation(best, dev_loader, dev_set, device)
        (out / "ablation.json").write_text(json.dumps(summary["ablation"], indent=2), encoding="utf-8")
    if world > 1:
        dist.destroy_process_group()
    return summary


ABLATIONS = {"text": ("text",), "audio": ("audio",), "video": ("video",), "all": MODALITIES}


def ablation(model: nn.Module, loader: DataLoader, dataset: CachedClips, device: torch.device
             ) -> dict[str, dict[str, float]]:
    """Dev scores with only one modality let through, and with all three."""
    return {name: dev_scores(model, loader, dataset, device, only) for name, only in ABLATIONS.items()}


def _bundle_metadata(config: TrainConfig, index: dict, video_source: str, epoch: int,
                     scores: dict[str, float]) -> dict[str, object]:
    return {
        "trained_on": {"root": config.meld_root, "split": config.train_split,
                       "clips": len(index["clips"]), "text_encoder": index["text_encoder"],
                       "video_init": video_source},
        "dev": {"split": config.dev_split, "epoch": epoch, **{k: round(v, 4) for k, v in scores.items()}},
        "train_config": {k: v for k, v in asdict(config).items() if k != "model"},
    }
