"""The `moodlens` command: typer commands with rich progress and tables, one module per family
(analyze, training, service); what they run lives in the library."""

from __future__ import annotations

import sys

from moodlens.cli import analyze, service, training  # noqa: F401  (each registers its commands)
from moodlens.cli.common import app, errors

__all__ = ["app", "run"]

EXTRA_OF_MODULE = {"fastapi": "serve", "uvicorn": "serve", "sqlalchemy": "serve", "python_multipart": "serve",
                   "peft": "train", "sklearn": "train", "yaml": "train", "ray": "scale", "boto3": "scale",
                   "psycopg": "scale", "onnx": "export", "torchvision": "multimodal", "pandas": "pandas"}


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
    except ModuleNotFoundError as err:
        extra = EXTRA_OF_MODULE.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        errors.print(f"error: this command needs the [{extra}] extra: pip install 'moodlens[{extra}]' "
                     f"({err.name} is not installed)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


