"""SageMaker's hosting contract: GET /ping and a synchronous POST /invocations."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from moodlens.server.jobs import Job
from moodlens.server.services import Services, require_key, services
from moodlens.server.uploads import UploadError, check_media, discard, save_body, stage_video
from moodlens.server.worker import RESULT_NAME, job_folder, media_file

MAX_JSON_BODY = 64 * 1024  # bytes of a JSON /invocations request

router = APIRouter()


@router.get("/ping")
def ping(request: Request) -> JSONResponse:
    """SageMaker's health check: 200 once the models are loaded, else 503."""
    health = services(request).health
    return JSONResponse({"status": health.split(":")[0]}, status_code=200 if health == "ready" else 503)


@router.post("/invocations", dependencies=[Depends(require_key)])
async def invocations(request: Request) -> Response:
    """SageMaker's inference call, answered synchronously with the Analysis JSON. The body is the
    video itself (video/*, audio/* or application/octet-stream), or JSON {"video_path": "s3://..." | "/path"}."""
    app = services(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    job_id = secrets.token_hex(16)
    folder = job_folder(app.settings.data_dir, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if ctype == "application/json":
            filename, size = await _fetch_video_path(request, folder, app.settings.max_upload_mb)
        elif ctype.startswith(("video/", "audio/")) or ctype == "application/octet-stream":
            filename, size = "body", await save_body(request, folder / "media", app.settings.max_upload_mb)
        else:
            raise UploadError(415, "send the video as the body (video/*, audio/* or application/octet-stream)"
                                   ' or JSON {"video_path": "s3://bucket/key"}')
        media = media_file(app.settings.data_dir, job_id)
        await asyncio.to_thread(check_media, media, filename)
        await asyncio.to_thread(app.store.create, filename, size, job_id)
    except UploadError as err:
        discard(folder)
        raise HTTPException(err.status, str(err)) from None
    except ClientDisconnect:
        discard(folder)
        return JSONResponse({"error": "the upload was cut off"}, status_code=400)
    except BaseException:
        discard(folder)
        raise
    app.workers.notify()
    try:
        job = await _finished(app, job_id)
        if job.status != "done":
            internal = (job.error or "").startswith("analysis failed: internal error")
            return JSONResponse({"error": job.error}, status_code=500 if internal else 422)
        result = folder / f"{RESULT_NAME}.analysis.json"
        return Response(await asyncio.to_thread(result.read_bytes), media_type="application/json")
    finally:
        # a synchronous call keeps nothing: its job and files go once it is answered
        await asyncio.to_thread(app.store.delete, job_id)
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def _finished(app: Services, job_id: str) -> Job:
    deadline = time.monotonic() + app.settings.job_timeout * app.settings.max_attempts + 60
    while time.monotonic() < deadline:
        job = await asyncio.to_thread(app.store.get, job_id)
        if job is not None and job.status in ("done", "failed"):
            return job
        await asyncio.sleep(0.2)
    raise HTTPException(504, "the analysis did not finish in time")


async def _fetch_video_path(request: Request, folder: Path, max_mb: int) -> tuple[str, int]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise UploadError(413, f"a JSON request is at most {MAX_JSON_BODY // 1024} KB")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UploadError(400, "the body is not valid JSON") from None
    location = document.get("video_path") if isinstance(document, dict) else None
    if not isinstance(location, str) or not location.strip():
        raise UploadError(400, 'JSON must be {"video_path": "s3://bucket/key" or "/path/to/video"}')
    return await asyncio.to_thread(stage_video, location.strip(), folder, max_mb)
