"""Face tracks across sampled frames, and which track is talking.

A box joins the track whose box it overlaps most in the previous sampled frame (IoU), if it
still looks like that face (a grey thumbnail's correlation); a box that moved too far to
overlap may still join if it looks very alike and moved less than its own size. A cut (the whole frame's colours
change at once) ends every track, because TV's shot/reverse-shot puts the next person's face
where the last one was. Tracks are named F1, F2, ... in order of
first appearance.

Who is talking is read from the mouth: RetinaFace's two mouth corners place a patch over the
lips, and a talking mouth changes between frames more than a listening one. The change is taken
relative to the same face's eye region, so that a turning or moving head does not read as talk.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from moodlens.faces import FaceBox

MIN_IOU = 0.3
MIN_LIKENESS = 0.5  # correlation of grey face thumbnails below which an overlapping box is another face
# A face that moved too far to overlap (a walk, a pan: the demo's photo moves 30 px a frame at
# 51 px wide) still continues its track if it looks very alike and moved less than its own size.
CLOSE_LIKENESS = 0.8
MAX_SHIFT = 1.0
CUT_SIMILARITY = 0.6  # histogram correlation of consecutive frames below which a cut is called
PATCH_SIZE = (24, 12)  # (width, height) of the normalised mouth and eye patches
MIN_MARGIN = 1.15  # the most active mouth must move this many times more than the next to be chosen


@dataclass(frozen=True)
class TrackedFace:
    track: str
    box: FaceBox
    mouth: np.ndarray | None  # normalised grey patches, None without landmarks
    eyes: np.ndarray | None
    thumbnail: np.ndarray  # the whole face, 16x16 grey, normalised: is it still the same face?


def _patch(grey: np.ndarray, centre: tuple[float, float], width: float) -> np.ndarray | None:
    """A PATCH_SIZE patch of `width` pixels around `centre`, zero mean and unit variance."""
    height = width * PATCH_SIZE[1] / PATCH_SIZE[0]
    left, top = round(centre[0] - width / 2), round(centre[1] - height / 2)
    right, bottom = round(left + width), round(top + height)
    if width < 4 or left < 0 or top < 0 or right > grey.shape[1] or bottom > grey.shape[0]:
        return None
    patch = cv2.resize(grey[top:bottom, left:right], PATCH_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    return (patch - patch.mean()) / (patch.std() + 1.0)


def face_patches(grey: np.ndarray, box: FaceBox) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(mouth, eyes) patches from the five landmarks, each as wide as the face's eye span allows."""
    if box.landmarks is None:
        return None, None
    eye_r, eye_l, _, mouth_r, mouth_l = box.landmarks
    span = max(np.hypot(eye_l[0] - eye_r[0], eye_l[1] - eye_r[1]), 1.0)
    mouth_centre = ((mouth_r[0] + mouth_l[0]) / 2, (mouth_r[1] + mouth_l[1]) / 2 + 0.1 * span)
    eyes_centre = ((eye_r[0] + eye_l[0]) / 2, (eye_r[1] + eye_l[1]) / 2)
    return _patch(grey, mouth_centre, 1.4 * span), _patch(grey, eyes_centre, 1.8 * span)


def _thumbnail(grey: np.ndarray, box: FaceBox) -> np.ndarray:
    top, left = max(0, box.y), max(0, box.x)
    face = grey[top:max(top + 1, box.y + box.height), left:max(left + 1, box.x + box.width)]
    thumb = cv2.resize(face, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    return ((thumb - thumb.mean()) / (thumb.std() + 1e-3)).ravel() / 16.0


def _histogram(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def _continues(old: FaceBox, new: FaceBox, likeness: float) -> bool:
    if likeness < MIN_LIKENESS:
        return False
    if new.iou(old) >= MIN_IOU:
        return True
    shift = np.hypot(new.x + new.width / 2 - old.x - old.width / 2, new.y + new.height / 2 - old.y - old.height / 2)
    return likeness >= CLOSE_LIKENESS and shift <= MAX_SHIFT * max(old.width, old.height)


class FaceTracker:
    """Feed it the faces of each sampled frame in time order; it names their tracks."""

    def __init__(self) -> None:
        self.previous: list[TrackedFace] = []
        self.previous_histogram: np.ndarray | None = None
        self.count = 0
        self.cuts = 0

    def update(self, image: np.ndarray, boxes: Sequence[FaceBox]) -> list[TrackedFace]:
        histogram = _histogram(image)
        if self.previous_histogram is not None and cv2.compareHist(
                self.previous_histogram, histogram, cv2.HISTCMP_CORREL) < CUT_SIMILARITY:
            self.previous = []
            self.cuts += 1
        self.previous_histogram = histogram
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        thumbnails = [_thumbnail(grey, box) for box in boxes]
        pairs = sorted(((box.iou(old.box) + likeness, b, p) for b, box in enumerate(boxes)
                        for p, old in enumerate(self.previous)
                        for likeness in [float(thumbnails[b] @ old.thumbnail)] if _continues(old.box, box, likeness)),
                       reverse=True)
        names: dict[int, str] = {}
        taken: set[int] = set()
        for _, b, p in pairs:
            if b not in names and p not in taken:
                names[b] = self.previous[p].track
                taken.add(p)
        faces = []
        for b, box in enumerate(boxes):
            if b not in names:
                self.count += 1
                names[b] = f"F{self.count}"
            faces.append(TrackedFace(names[b], box, *face_patches(grey, box), thumbnails[b]))
        self.previous = faces
        return faces


@dataclass
class TrackSighting:
    """One track's appearances inside one utterance."""

    faces: list[TrackedFace] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)

    @property
    def mean_area(self) -> float:
        return float(np.mean([f.box.area for f in self.faces]))

    def mouth_movement(self) -> float | None:
        """Mean change of the mouth patch between consecutive sightings, over the eyes' change
        (+0.1, so a perfectly still head does not divide by zero); None with fewer than two."""
        steps = [(a, b) for a, b in itertools.pairwise(self.faces)
                 if a.mouth is not None and b.mouth is not None and a.eyes is not None and b.eyes is not None]
        if not steps:
            return None
        mouth = np.mean([np.abs(b.mouth - a.mouth).mean() for a, b in steps])
        eyes = np.mean([np.abs(b.eyes - a.eyes).mean() for a, b in steps])
        return float(mouth / (eyes + 0.1))


def active_track(sightings: dict[str, TrackSighting]) -> tuple[str, str] | None:
    """(track, how it was chosen): the only face; else the mouth that moves clearly most of
    those seen at least twice; else the face seen most often, then the largest."""
    if not sightings:
        return None
    if len(sightings) == 1:
        return next(iter(sightings)), "only face"
    movement = {name: s.mouth_movement() for name, s in sightings.items()}
    ranked = sorted(((m, name) for name, m in movement.items() if m is not None), reverse=True)
    if len(ranked) >= 2 and ranked[0][0] >= MIN_MARGIN * ranked[1][0]:
        return ranked[0][1], "mouth movement"
    return max(sightings, key=lambda name: (len(sightings[name].faces), sightings[name].mean_area)), "largest face"
