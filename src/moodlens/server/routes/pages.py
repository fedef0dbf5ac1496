"""What a person opens: the upload page, the live page, one result's page, and /healthz."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse

from moodlens.server.services import found_job, same_secret, services
from moodlens.writers import page

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter()


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 once the workers' models are loaded (`ready`); 503 while `starting` or `degraded`."""
    app = services(request)
    health = app.health
    return JSONResponse({"status": health.split(":")[0], "detail": health, "ready": health == "ready",
                         "jobs": app.store.counts(), "workers": app.settings.workers},
                        status_code=200 if health == "ready" else 503)


@router.websocket("/v1/live")
async def live_session(websocket: WebSocket) -> None:
    """A live session (docs/live.md): audio and camera frames in, the events of `moodlens live` out,
    stored as a job when it ends. 503 with Retry-After past --max-live-sessions."""
    app = websocket.app.state.services
    await app.live.serve(websocket, app.settings.api_key, same_secret)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def upload_page() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


@router.get("/live", response_class=HTMLResponse, include_in_schema=False)
def live_page() -> str:
    return (STATIC / "live.html").read_text(encoding="utf-8")


@router.get("/analyses/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def result_page(request: Request, job_id: str) -> str:
    found_job(services(request).store, job_id)
    script = (STATIC / "result-page.js").read_text(encoding="utf-8")
    return page(script.replace("JOB_ID", json.dumps(job_id)), nav='<a href="/">upload another</a>')
