"""Typed errors. Every one carries a one-line message that names the file and the reason."""

from __future__ import annotations

from pathlib import Path

# Notes that start with this mark media that ended or broke before its stated duration.
INCOMPLETE_MEDIA = "incomplete media"


class MoodlensError(Exception):
    """Base class: the CLI prints `str(err)` and exits non-zero, with no traceback."""


class InvalidMediaError(MoodlensError):
    """The file is missing, empty, not media, or cannot be decoded."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class NoMediaError(MoodlensError):
    """A folder that holds no media files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: folder contains no media files")


class TranscriptError(MoodlensError):
    """A transcript file (SRT, VTT, CSV) that cannot be read."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {reason}")


class ModelNotFoundError(MoodlensError):
    """No weights could be resolved for a model."""


class SourceError(MoodlensError):
    """A live source that cannot be opened or read: no such device, no answer, not media, stalled."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")
