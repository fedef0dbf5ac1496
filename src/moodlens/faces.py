"""Face detection with OpenCV's Haar cascade (ships inside opencv-python-headless)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / CASCADE
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise RuntimeError(f"cannot load the Haar cascade at {path}")
    return classifier


def detect_faces(image: np.ndarray, min_fraction: float = 0.08) -> list[FaceBox]:
    """Faces in an RGB image, largest first. Faces smaller than min_fraction of the shorter
    side are ignored: at that size an expression cannot be read."""
    grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    side = max(24, int(min(grey.shape) * min_fraction))
    found = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    boxes = [FaceBox(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
    return sorted(boxes, key=lambda b: b.area, reverse=True)


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
