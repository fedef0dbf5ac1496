import numpy as np
import pytest

from moodlens.features import face_tensor, text_with_context


def test_text_context_uses_only_previous_turns() -> None:
    history = ["a", "b", "c", "d"]
    assert text_with_context(history, k=2) == ("d", "b c")
    assert text_with_context(["only"], k=2) == ("only", "")
    assert text_with_context(history, k=0) == ("d", "")
    with pytest.raises(ValueError):
        text_with_context([])


def test_face_tensor_scales_to_minus_one_one() -> None:
    crops = [np.zeros((30, 20, 3), np.uint8), np.full((100, 100, 3), 255, np.uint8)]
    batch = face_tensor(crops)
    assert batch.shape == (2, 1, 64, 64)
    assert batch[0].max() == -1.0 and batch[1].min() == 1.0
