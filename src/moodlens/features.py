"""Features shared by training and inference, so both see exactly the same inputs."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

CONTEXT_TURNS = 2
FACE_SIZE = 64


def text_with_context(history: Sequence[str], k: int = CONTEXT_TURNS) -> tuple[str, str]:
    """(target, context) for the last text in `history`; context is the k turns before it.

    Speaker names are left out on purpose: ASR output has none, and the model must see at
    inference what it saw in training.
    """
    if not history:
        raise ValueError("history is empty")
    target = history[-1]
    previous = [t for t in history[-1 - k : -1] if t] if k > 0 else []
    return target, " ".join(previous)


def face_tensor(crops: Sequence[np.ndarray]) -> np.ndarray:
    """Grey 64x64 crops scaled to [-1, 1], shaped (N, 1, 64, 64), as the FER2013 model expects."""
    batch = np.empty((len(crops), 1, FACE_SIZE, FACE_SIZE), dtype=np.float32)
    for i, crop in enumerate(crops):
        grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        resized = cv2.resize(grey, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
        batch[i, 0] = (resized.astype(np.float32) / 255.0 - 0.5) * 2.0
    return batch
