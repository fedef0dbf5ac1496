"""The Dockerfile, checked without Docker: what it copies exists, what it runs exists, and its
pins are the project's own."""

from __future__ import annotations

import json
import re
import shlex
import tomllib

from typer.main import get_command

from moodlens.cli import app
from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [name]]


def build_arg(name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in instructions("ARG") if a.startswith(f"{name}=")]
    return value


def test_everything_it_copies_exists_and_is_not_ignored() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    copies = instructions("COPY")
    assert copies
    for copy in copies:
        *sources, _ = shlex.split(copy)
        for source in sources:
            assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
            assert source.split("/")[0] not in ignored


def test_the_entrypoint_and_command_exist() -> None:
    (entrypoint,) = instructions("ENTRYPOINT")
    (command,) = instructions("CMD")
    assert json.loads(entrypoint) == ["moodlens"] and "moodlens" in PYPROJECT["project"]["scripts"]
    args = json.loads(command)
    cli = get_command(app)
    assert args[0] in cli.commands  # `serve`, which SageMaker also passes as the container's argument
    options = {o for p in cli.commands["serve"].params for o in getattr(p, "opts", [])}
    assert all(a in options for a in args[1:] if a.startswith("--"))


def test_it_serves_on_8080_as_a_non_root_user_with_a_healthcheck_on_ping() -> None:
    env = " ".join(instructions("ENV"))
    assert "MOODLENS_PORT=8080" in env and "MOODLENS_HOST=0.0.0.0" in env and "HF_HUB_OFFLINE=1" in env
    assert instructions("EXPOSE") == ["8080"]
    (user,) = instructions("USER")
    assert user not in ("root", "0")
    (health,) = instructions("HEALTHCHECK")
    assert "/ping" in health and "MOODLENS_PORT" in health
    serve = {p.name: p for p in get_command(app).commands["serve"].params}
    assert serve["port"].envvar == "MOODLENS_PORT" and serve["host"].envvar == "MOODLENS_HOST"
    assert serve["model_dir"].envvar == "SM_MODEL_DIR"


def test_it_installs_with_the_projects_pins() -> None:
    (run,) = [r for r in instructions("RUN") if "pip install" in r and "constraints.txt" in r]
    assert "-c constraints.txt" in run
    extras = re.search(r"\"\.\[([a-z,]+)\]\"", run).group(1).split(",")
    assert set(extras) <= set(PYPROJECT["project"]["optional-dependencies"])
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "moodlens.models.install" in makefile  # the same installer, so the same --no-deps wheels
    constraints = (ROOT / "constraints.txt").read_text(encoding="utf-8").split()
    assert f"torch=={build_arg('TORCH_VERSION')}" in constraints
    assert f"torchvision=={build_arg('TORCHVISION_VERSION')}" in constraints
    assert "serve" in extras  # the image's command is `moodlens serve`
    assert "moodlens.models.install" in run and "warm_up()" in run  # models baked in, and proven to load offline
