"""The `moodlens` entry point: every command's help, one-line errors for a missing extra, a core install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moodlens.cli import app
from tests.conftest import DEMO

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def test_installed_entry_point_has_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "moodlens.cli", "analyze", str(tmp_path / "nope.mp4")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 1
    assert "nope.mp4: file not found" in result.stderr and "Traceback" not in result.stderr


def _commands() -> list[list[str]]:
    import typer.main

    group = typer.main.get_command(app)
    return [[], *([name] for name in group.commands)]


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c) or "moodlens")
def test_every_help_works(command: list[str]) -> None:
    """Help text goes through rich markup: a stray [/...] in a docstring is a traceback."""
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "Usage" in result.output and "Traceback" not in result.output


def test_models_list_and_a_bad_name() -> None:
    listed = invoke("models", "list")
    assert listed.exit_code == 0 and "whisper-base" in listed.stdout and "all-mpnet-base-v2" in listed.stdout
    assert "MIT" in listed.stdout and "Apache-2.0" in listed.stdout
    bad = invoke("models", "install", "nope")
    assert bad.exit_code == 2 and "unknown model(s) nope" in bad.output


@pytest.mark.parametrize(("command", "blocked", "extra", "missing"), [
    (["serve"], ["uvicorn", "fastapi"], "serve", "uvicorn"),
    (["batch", str(DEMO), "--out", "unused"], ["ray"], "scale", "ray"),
])
def test_a_command_whose_extra_is_missing_says_which_to_install(
        command: list[str], blocked: list[str], extra: str, missing: str) -> None:
    """A core install (no [serve] or [scale] extra) asked for what needs it: one line naming the
    extra, exit 2."""
    block = f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); "
    result = subprocess.run(
        [sys.executable, "-c", block + f"sys.argv = ['moodlens', *{command!r}]; from moodlens.cli import run; run()"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: this command needs the [{extra}] extra: pip install 'moodlens[{extra}]' ({missing} is not installed)")
    assert "Traceback" not in result.stderr


def test_a_core_install_analyses_a_file(tmp_path: Path) -> None:
    """Every extra's modules made unimportable, as in `pip install moodlens` alone: the demo is
    still analysed, all three experts on."""
    extras = ["fastapi", "uvicorn", "sqlalchemy", "multipart", "peft", "sklearn", "yaml", "ray", "boto3",
              "psycopg", "onnx", "torchvision", "pandas"]
    blocked = f"import sys; sys.modules.update(dict.fromkeys({extras!r})); "
    result = subprocess.run(
        [sys.executable, "-c", blocked + f"sys.argv = ['moodlens', 'analyze', {str(DEMO)!r}, '--out', "
                                         f"{str(tmp_path)!r}, '--format', 'json']; "
                                         "from moodlens.cli import run; run()"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    analysis = json.loads((tmp_path / "demo.analysis.json").read_text(encoding="utf-8"))
    assert analysis["utterances"] and all(analysis["modalities"][m]["available"] for m in ("text", "face", "voice"))
