"""Cost of the reference multimodal model on CPU, scaled to 1,000 MELD clips.

    .venv/bin/python bench/train_epoch.py [--epochs 3] [--batch-size 8]

It lays the 11 real MELD test clips in ../shared out as a folder with one CSV (used as both
train and dev), times `prepare-meld` on them, then trains for a few epochs and reports the
median training time per epoch. Both are divided by the clip count and multiplied by 1,000.
Offline, r3d_18 starts from random weights; that changes nothing about the time.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MELD_CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.ERROR)
    if not (MELD_CLIPS / "labels.csv").exists():
        raise SystemExit(f"{MELD_CLIPS} is absent: this benchmark needs the MELD clips in ../shared")

    import torch

    from moodlens.data.cache import prepare_split
    from moodlens.training.multimodal import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        shutil.copy(MELD_CLIPS / "labels.csv", folder / "labels.csv")
        for clip in MELD_CLIPS.glob("*.mp4"):
            (folder / clip.name).symlink_to(clip)
        began = time.perf_counter()
        prepare_split(folder, "train", Path(tmp) / "cache", workers=args.workers)
        prepare_seconds = time.perf_counter() - began
        shutil.copytree(Path(tmp) / "cache" / "train", Path(tmp) / "cache" / "dev")
        config = TrainConfig(meld_root=str(folder), out=str(Path(tmp) / "run"), cache=str(Path(tmp) / "cache"),
                             epochs=args.epochs, batch_size=args.batch_size, grad_accum=1, workers=0,
                             early_stop=args.epochs)
        summary = train(config, progress=lambda line: None)
    clips = summary["history"][0]["clips"]
    epoch = statistics.median(h["seconds"] for h in summary["history"])
    print(f"threads {torch.get_num_threads()}, {clips} clips per epoch, batch {args.batch_size}")
    print(f"prepare-meld: {prepare_seconds:.1f} s for 11 clips ({args.workers} workers, text encoder "
          f"included) = {prepare_seconds / 11 * 1000 / 60:.1f} min per 1,000 clips")
    print(f"train: median epoch {epoch:.1f} s = {epoch / clips * 1000 / 60:.1f} min per 1,000 clips")


if __name__ == "__main__":
    main()
