import numpy as np

from moodlens.faces import FaceBox, crop_face, detect_faces, largest_face
from tests.media_factory import face_image


def test_finds_the_astronauts_face() -> None:
    boxes = detect_faces(face_image())
    assert boxes, "Haar cascade should find the face in NASA's astronaut portrait"
    box = boxes[0]
    # the face sits in the upper middle of the 512x512 portrait
    assert 120 < box.x + box.width / 2 < 320 and 40 < box.y + box.height / 2 < 200


def test_no_face_in_a_blank_frame() -> None:
    assert detect_faces(np.full((240, 320, 3), 90, np.uint8)) == []
    assert largest_face(np.full((240, 320, 3), 90, np.uint8)) is None


def test_crop_is_clipped_to_the_image() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    crop = crop_face(image, FaceBox(x=-5, y=90, width=30, height=30))
    assert crop.shape[0] <= 100 and crop.shape[1] <= 100 and crop.size > 0
