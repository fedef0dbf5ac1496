"""What every route shares: the settings, the job store, the analysis workers and the live hub
(`Services`, kept on `app.state`), and the FastAPI dependencies that check keys and find jobs."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Header, HTTPException, Request

from moodlens.options import AnalyzeOptions
from moodlens.server.jobs import Job, JobStore
from moodlens.server.live import LiveHub
from moodlens.server.worker import JOB_ID, AnalysisWorkers

MEDIA_URL_SECONDS = 3600  # how long a signed media link works
# what a SageMaker model directory may hold: train-text, train-voice and train outputs
MODEL_FILES = {"text_weights": "text.safetensors", "voice_weights": "voice.safetensors",
               "face_weights": "face.safetensors", "model": "bundle"}


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path = Path("moodlens-data")
    database_url: str | None = None  # default: SQLite in data_dir
    max_upload_mb: int = 500
    workers: int = 1
    api_key: str | None = None
    job_timeout: float = 3600.0  # seconds one analysis may take before its worker is ended
    max_attempts: int = 3  # a job whose worker dies is tried this often, then fails
    warm: bool = True  # load the models when the workers start, not on the first job
    model_dir: Path | None = None  # SageMaker's SM_MODEL_DIR: the models in it replace the packaged ones
    # /v1/live sessions at once (0: none): one per core keeps each within its latency target, with
    # bf16 or without (bench/live_latency.py --via websocket --sessions 2 3 --bf16 auto 0; docs/live.md)
    max_live_sessions: int = field(default_factory=lambda: os.cpu_count() or 1)

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'jobs.sqlite3').resolve()}"

    def analyze_options(self) -> AnalyzeOptions:
        """The packaged models, except those that model_dir holds (MODEL_FILES names them)."""
        if self.model_dir is None:
            return AnalyzeOptions()
        if not self.model_dir.is_dir():
            raise ValueError(f"{self.model_dir}: the model directory does not exist")
        found = {field: str(self.model_dir / name) for field, name in MODEL_FILES.items()
                 if (self.model_dir / name).exists()}
        return AnalyzeOptions(**found)


@dataclass(frozen=True)
class Services:
    settings: ServerSettings
    store: JobStore
    workers: AnalysisWorkers
    live: LiveHub
    started: bool  # whether the analysis workers run (tests make apps that only accept)

    @property
    def health(self) -> str:
        return self.workers.health if self.started else "degraded: analysis workers are not started"


def services(request: Request) -> Services:
    return request.app.state.services


def same_secret(given: str | None, expected: str) -> bool:
    # bytes, because hmac.compare_digest refuses str with non-ASCII characters
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def media_signature(key: str, job_id: str, expires: int) -> str:
    return hmac.new(key.encode(), f"media:{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def media_url(settings: ServerSettings, job_id: str) -> str:
    url = f"/v1/analyses/{job_id}/media"
    if not settings.api_key:
        return url
    expires = int(time.time()) + MEDIA_URL_SECONDS
    return f"{url}?expires={expires}&sig={media_signature(settings.api_key, job_id, expires)}"


def require_key(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    key = services(request).settings.api_key
    if key and not same_secret(x_api_key, key):
        raise HTTPException(401, "missing or wrong X-API-Key header")


def require_key_or_signature(request: Request, job_id: str, x_api_key: Annotated[str | None, Header()] = None,
                             expires: int | None = None, sig: str | None = None) -> None:
    """A <video src> can't send headers: media also opens with a short-lived signed link,
    so the API key itself never appears in a URL (or a log)."""
    key = services(request).settings.api_key
    if not key or same_secret(x_api_key, key):
        return
    if expires is None or sig is None or expires < time.time():
        raise HTTPException(401, "missing or wrong X-API-Key header, or an expired media link")
    if not same_secret(sig, media_signature(key, job_id, expires)):
        raise HTTPException(401, "wrong media link signature")


def found_job(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id) if JOB_ID.fullmatch(job_id) else None
    if job is None:
        raise HTTPException(404, f"no analysis with id {job_id[:64]!r}")
    return job
