from __future__ import annotations

import itertools

import numpy as np

from moodlens.faces import FaceBox
from moodlens.tracks import FaceTracker, TrackedFace, TrackSighting, active_track, face_patches
from tests.media_factory import face_image, frame

LANDMARKS = ((40.0, 40.0), (60.0, 40.0), (50.0, 50.0), (42.0, 62.0), (58.0, 62.0))
BOX = FaceBox(25, 20, 50, 60, 0.99, LANDMARKS)


def faces_in(image: np.ndarray) -> list[FaceBox]:
    from moodlens.faces import default_detector

    return default_detector().detect(image)


def test_a_face_moving_a_little_keeps_its_track() -> None:
    tracker = FaceTracker()
    tracks = [[f.track for f in tracker.update(image, faces_in(image))]
              for image in (frame(t / 2, 320, 240, face_image()) for t in range(5))]
    assert tracks == [["F1"]] * 5 and tracker.cuts == 0


def test_a_face_moving_further_than_it_overlaps_keeps_its_track() -> None:
    """The demo's photo slides 30 px a frame at 51 px wide: IoU under 0.3, the same face."""
    import cv2

    photo = cv2.resize(face_image(), (200, 200))  # a face about 35 px wide, moving 24 px a frame
    tracker = FaceTracker()
    found, boxes = [], []
    for x in (20, 44, 68, 92):
        image = np.full((260, 480, 3), 60, np.uint8)
        image[30:230, x:x + 200] = photo
        boxes += faces_in(image)
        found.append([f.track for f in tracker.update(image, boxes[-1:])])
    assert all(a.iou(b) < 0.3 for a, b in itertools.pairwise(boxes))
    assert found == [["F1"]] * 4


def test_a_cut_starts_new_tracks_even_where_the_same_face_overlaps() -> None:
    tracker = FaceTracker()
    image = frame(0, 320, 240, face_image())
    tracker.update(image, faces_in(image))
    other = (image * np.array([0.3, 1.0, 0.3])).astype(np.uint8)  # the same face, other colours: a cut
    assert [f.track for f in tracker.update(other, faces_in(other))] == ["F2"]
    assert tracker.cuts == 1


def test_another_face_in_the_same_place_is_another_track() -> None:
    """No cut (the background stays), but the face in the box changes: the thumbnail says so."""
    tracker = FaceTracker()
    image = np.full((120, 100, 3), 90, np.uint8)
    image[20:80, 25:75] = np.random.default_rng(0).integers(0, 255, (60, 50, 3))
    assert [f.track for f in tracker.update(image, [BOX])] == ["F1"]
    assert [f.track for f in tracker.update(image, [BOX])] == ["F1"]
    changed = image.copy()
    changed[20:80, 25:75] = np.random.default_rng(1).integers(0, 255, (60, 50, 3))
    assert [f.track for f in tracker.update(changed, [BOX])] == ["F2"]


def test_mouth_and_eye_patches_come_from_the_landmarks() -> None:
    grey = np.random.default_rng(0).integers(0, 255, (120, 100)).astype(np.uint8)
    mouth, eyes = face_patches(grey, BOX)
    assert mouth is not None and eyes is not None and mouth.shape == eyes.shape == (12, 24)
    assert abs(float(mouth.mean())) < 1e-4
    assert face_patches(grey, FaceBox(25, 20, 50, 60)) == (None, None)  # Haar: no landmarks


def sighting(mouth_change: float, area: int = 2500, frames: int = 4) -> TrackSighting:
    rng = np.random.default_rng(int(mouth_change * 100))
    base, eyes = rng.normal(size=(12, 24)), rng.normal(size=(12, 24))
    faces = [TrackedFace("", FaceBox(0, 0, area // 50, 50), base + mouth_change * rng.normal(size=(12, 24)),
                         eyes, np.zeros(256)) for _ in range(frames)]
    return TrackSighting(faces, [np.zeros(7)] * frames)


def test_the_talking_face_is_the_one_whose_mouth_moves() -> None:
    chosen = active_track({"F1": sighting(0.05, area=5000), "F2": sighting(1.0)})
    assert chosen == ("F2", "mouth movement")
    assert active_track({"F3": sighting(0.5)}) == ("F3", "only face")
    assert active_track({}) is None


def test_without_a_clear_mouth_the_largest_face_is_read() -> None:
    tie = {"F1": sighting(0.5, area=5000), "F2": sighting(0.5, area=2500)}
    assert active_track(tie) == ("F1", "largest face")
    once = {"F1": sighting(0.0, area=2500, frames=1), "F2": sighting(0.0, area=5000, frames=1)}
    assert active_track(once) == ("F2", "largest face")  # one sighting each: no movement to compare
