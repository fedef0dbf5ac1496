"""`moodlens serve`: the REST API (OpenAPI at /docs) and the upload and result pages."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from python_multipart.multipart import parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from moodlens.errors import MoodlensError
from moodlens.options import AnalyzeOptions
from moodlens.server.jobs import JobStore
from moodlens.server.live import LiveHub
from moodlens.server.uploads import MAX_FORM_FIELDS, StreamedUpload, UploadError, clean_filename, job_fields, suffix
from moodlens.server.worker import JOB_ID, JOB_OPTIONS, RESULT_NAME, AnalysisWorkers, job_folder, media_file
from moodlens.writers import page

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
RESULTS = {"result": (".analysis.json", "application/json"), "result.csv": (".utterances.csv", "text/csv"),
           "result.srt": (".srt", "application/x-subrip")}
MEDIA_URL_SECONDS = 3600  # how long a signed media link works
WRITE_BLOCK = 1 << 20  # uploads are written to disk in blocks this big, off the event loop
MAX_REQUEST_HEADERS = 64 * 1024  # bytes of HTTP request headers
MAX_JSON_BODY = 64 * 1024  # bytes of a JSON /invocations request
# what a SageMaker model directory may hold: train-text, train-voice and train outputs
MODEL_FILES = {"text_weights": "text.safetensors", "voice_weights": "voice.safetensors",
               "face_weights": "face.safetensors", "model": "bundle"}


class HeaderLimit:
    """431 for requests whose headers are over the limit, before any route sees them."""

    def __init__(self, app: Any, limit: int = MAX_REQUEST_HEADERS) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and sum(len(k) + len(v) for k, v in scope["headers"]) > self.limit:
            answer = JSONResponse({"error": f"request headers are over {self.limit // 1024} KB"}, status_code=431)
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


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
    # /v1/live sessions at once; 0: none. One per two cores: bench/live_latency.py --via websocket
    # keeps one session within the latency target on 2 cores, and two together (one server, one
    # judgement at a time) at p50 1.1 s, not
    max_live_sessions: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))

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


def media_signature(key: str, job_id: str, expires: int) -> str:
    return hmac.new(key.encode(), f"media:{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    # bytes, because hmac.compare_digest refuses str with non-ASCII characters
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def create_app(settings: ServerSettings | None = None, start_workers: bool = True) -> FastAPI:
    settings = settings or ServerSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.url)
    workers = AnalysisWorkers(store, settings.data_dir, settings.workers, settings.job_timeout,
                              settings.max_attempts, warm=settings.warm and start_workers,
                              options=settings.analyze_options())

    live = LiveHub(store, settings.data_dir, settings.analyze_options(), settings.max_live_sessions)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.requeue_running(settings.max_attempts)  # a crash left them half done; they start again
        live.end_orphans()
        if start_workers:
            workers.start()
            if settings.warm:
                live.warm()
        yield
        await live.close_all("the server is shutting down")
        if start_workers:
            workers.stop()

    app = FastAPI(title="moodlens", version="1", lifespan=lifespan,
                  description="How a video feels: upload it, poll the job, fetch the Analysis.")
    app.state.store, app.state.workers, app.state.settings, app.state.live = store, workers, settings, live
    app.add_middleware(HeaderLimit)

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if settings.api_key and not _same(x_api_key, settings.api_key):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    def require_key_or_signature(job_id: str, x_api_key: Annotated[str | None, Header()] = None,
                                 expires: int | None = None, sig: str | None = None) -> None:
        """A <video src> can't send headers: media also opens with a short-lived signed link,
        so the API key itself never appears in a URL (or a log)."""
        if not settings.api_key or _same(x_api_key, settings.api_key):
            return
        if expires is None or sig is None or expires < time.time():
            raise HTTPException(401, "missing or wrong X-API-Key header, or an expired media link")
        if not _same(sig, media_signature(settings.api_key, job_id, expires)):
            raise HTTPException(401, "wrong media link signature")

    def media_url(job_id: str) -> str:
        url = f"/v1/analyses/{job_id}/media"
        if not settings.api_key:
            return url
        expires = int(time.time()) + MEDIA_URL_SECONDS
        return f"{url}?expires={expires}&sig={media_signature(settings.api_key, job_id, expires)}"

    @app.exception_handler(StarletteHTTPException)  # ours, and the router's 404 and 405
    async def json_errors(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": err.detail}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors())
        return JSONResponse({"error": f"bad request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_errors(request: Request, err: Exception) -> JSONResponse:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(err).__name__, err)
        return JSONResponse({"error": "internal server error (see the server log)"}, status_code=500)

    def found(job_id: str) -> Any:
        job = store.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise HTTPException(404, f"no analysis with id {job_id[:64]!r}")
        return job

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """200 once the workers' models are loaded (`ready`); 503 while `starting` or `degraded`."""
        health = workers.health if start_workers else "degraded: analysis workers are not started"
        return JSONResponse({"status": health.split(":")[0], "detail": health, "ready": health == "ready",
                             "jobs": store.counts(), "workers": settings.workers},
                            status_code=200 if health == "ready" else 503)

    @app.post("/v1/analyses", status_code=202, dependencies=[Depends(require_key)])
    async def create_analysis(request: Request) -> JSONResponse:
        """Multipart upload with the video in the field `file`; answers at once, the analysis runs later."""
        ctype, params = parse_options_header(request.headers.get("content-type", ""))
        if ctype != b"multipart/form-data" or not params.get(b"boundary"):
            raise HTTPException(400, "send multipart/form-data with the video in the field `file`")
        limit = settings.max_upload_mb * 2**20
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + MAX_FORM_FIELDS + 64 * 1024:
            raise HTTPException(413, f"upload is larger than the {settings.max_upload_mb} MB limit")
        job_id = secrets.token_hex(16)
        folder = job_folder(settings.data_dir, job_id)
        upload = StreamedUpload(params[b"boundary"], folder / "upload.part", limit)
        try:
            # Disk writes, probing and the database run in threads: a slow disk or a big
            # upload must not stall every other request on the event loop.
            block = bytearray()
            async for chunk in request.stream():
                block += chunk
                if len(block) >= WRITE_BLOCK:
                    await asyncio.to_thread(upload.feed, bytes(block))
                    block.clear()
            await asyncio.to_thread(upload.feed, bytes(block))
            upload.finish()
            if upload.filename is None:
                raise UploadError(400, "no file in the field `file`")
            if upload.size == 0:
                raise UploadError(415, f"{upload.filename}: the file is empty")
            chosen = job_fields(upload.fields)
            if chosen:
                (folder / JOB_OPTIONS).write_text(json.dumps(chosen), encoding="utf-8")
            media = folder / f"media{suffix(upload.filename)}"
            (folder / "upload.part").rename(media)
            await asyncio.to_thread(_check_media, media, upload.filename)
            job = await asyncio.to_thread(store.create, upload.filename, upload.size, job_id)
        except UploadError as err:
            await asyncio.to_thread(_discard, upload, folder)
            raise HTTPException(err.status, str(err)) from None
        except ClientDisconnect:
            # the client went away mid-upload: nothing of it is kept, and nobody reads the answer
            await asyncio.to_thread(_discard, upload, folder)
            return JSONResponse({"error": "the upload was cut off"}, status_code=400)
        except BaseException:
            await asyncio.to_thread(_discard, upload, folder)
            raise
        workers.notify()
        return JSONResponse({"id": job.id, "status": job.status}, status_code=202,
                            headers={"Location": f"/v1/analyses/{job.id}"})

    @app.get("/ping", include_in_schema=True)
    def ping() -> JSONResponse:
        """SageMaker's health check: 200 once the models are loaded, else 503."""
        health = workers.health if start_workers else "degraded: analysis workers are not started"
        return JSONResponse({"status": health.split(":")[0]}, status_code=200 if health == "ready" else 503)

    @app.post("/invocations", dependencies=[Depends(require_key)])
    async def invocations(request: Request) -> Response:
        """SageMaker's inference call, answered synchronously with the Analysis JSON. The body is the
        video itself (video/*, audio/* or application/octet-stream), or JSON {"video_path": "s3://..." | "/path"}."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        job_id = secrets.token_hex(16)
        folder = job_folder(settings.data_dir, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            if ctype == "application/json":
                filename, size = await _fetch_video_path(request, folder)
            elif ctype.startswith(("video/", "audio/")) or ctype == "application/octet-stream":
                filename, size = "body", await _save_body(request, folder / "media", settings.max_upload_mb)
            else:
                raise UploadError(415, "send the video as the body (video/*, audio/* or application/octet-stream)"
                                       ' or JSON {"video_path": "s3://bucket/key"}')
            media = media_file(settings.data_dir, job_id)
            await asyncio.to_thread(_check_media, media, filename)
            await asyncio.to_thread(store.create, filename, size, job_id)
        except UploadError as err:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(err.status, str(err)) from None
        except ClientDisconnect:
            shutil.rmtree(folder, ignore_errors=True)
            return JSONResponse({"error": "the upload was cut off"}, status_code=400)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        workers.notify()
        try:
            job = await _finished(job_id)
            if job.status != "done":
                internal = (job.error or "").startswith("analysis failed: internal error")
                return JSONResponse({"error": job.error}, status_code=500 if internal else 422)
            result = folder / f"{RESULT_NAME}.analysis.json"
            return Response(await asyncio.to_thread(result.read_bytes), media_type="application/json")
        finally:
            # a synchronous call keeps nothing: its job and files go once it is answered
            await asyncio.to_thread(store.delete, job_id)
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _finished(job_id: str) -> Any:
        deadline = time.monotonic() + settings.job_timeout * settings.max_attempts + 60
        while time.monotonic() < deadline:
            job = await asyncio.to_thread(store.get, job_id)
            if job is not None and job.status in ("done", "failed"):
                return job
            await asyncio.sleep(0.2)
        raise HTTPException(504, "the analysis did not finish in time")

    async def _fetch_video_path(request: Request, folder: Path) -> tuple[str, int]:
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
        return await asyncio.to_thread(_stage_video, location.strip(), folder, settings.max_upload_mb)

    @app.get("/v1/analyses", dependencies=[Depends(require_key)])
    def list_analyses(offset: Annotated[int, Query(ge=0)] = 0,
                      limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
        jobs, total = store.page(offset, limit)
        return {"items": [j.to_json() for j in jobs], "total": total, "offset": offset, "limit": limit}

    @app.get("/v1/analyses/{job_id}", dependencies=[Depends(require_key)])
    def get_analysis(job_id: str) -> dict[str, Any]:
        return {**found(job_id).to_json(), "media_url": media_url(job_id)}

    @app.get("/v1/analyses/{job_id}/media", dependencies=[Depends(require_key_or_signature)])
    def get_media(job_id: str) -> Response:
        found(job_id)
        media = media_file(settings.data_dir, job_id)
        if media is None:
            raise HTTPException(404, "the uploaded file is gone")
        return FileResponse(media)  # answers Range requests, so the player can seek

    @app.get("/v1/analyses/{job_id}/{variant}", dependencies=[Depends(require_key)])
    def get_result(job_id: str, variant: str) -> Response:
        job = found(job_id)
        if variant not in RESULTS:
            raise HTTPException(404, f"no {variant[:64]!r}; use result, result.csv, result.srt or media")
        if job.status != "done":
            raise HTTPException(409, f"analysis is {job.status}" + (f": {job.error}" if job.error else ""))
        suffix, media_type = RESULTS[variant]
        path = job_folder(settings.data_dir, job_id) / f"{RESULT_NAME}{suffix}"
        if not path.is_file():
            raise HTTPException(404, "the result files are gone")
        return FileResponse(path, media_type=media_type)

    @app.delete("/v1/analyses/{job_id}", status_code=204, dependencies=[Depends(require_key)])
    def delete_analysis(job_id: str) -> Response:
        job = found(job_id)
        if job.status == "running":
            raise HTTPException(409, "the analysis is running; delete it once it is done or failed")
        store.delete(job_id)
        shutil.rmtree(job_folder(settings.data_dir, job_id), ignore_errors=True)
        return Response(status_code=204)

    @app.websocket("/v1/live")
    async def live_session(websocket: WebSocket) -> None:
        """A live session (docs/live.md): audio and camera frames in, the events of `moodlens live` out,
        stored as a job when it ends. 503 with Retry-After past --max-live-sessions."""
        await live.serve(websocket, settings.api_key, _same)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def upload_page() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page() -> str:
        return (STATIC / "live.html").read_text(encoding="utf-8")

    @app.get("/analyses/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def result_page(job_id: str) -> str:
        found(job_id)
        script = (STATIC / "result-page.js").read_text(encoding="utf-8")
        return page(script.replace("JOB_ID", json.dumps(job_id)), nav='<a href="/">upload another</a>')

    return app


async def _save_body(request: Request, target: Path, max_mb: int) -> int:
    """A raw request body to disk in blocks, stopped at the limit; returns its size."""
    limit, size = max_mb * 2**20, 0
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"the video is larger than the {max_mb} MB limit")
    handle = await asyncio.to_thread(target.open, "wb")
    try:
        block = bytearray()
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise UploadError(413, f"the video is larger than the {max_mb} MB limit")
            block += chunk
            if len(block) >= WRITE_BLOCK:
                await asyncio.to_thread(handle.write, bytes(block))
                block.clear()
        await asyncio.to_thread(handle.write, bytes(block))
    finally:
        handle.close()
    if size == 0:
        raise UploadError(415, "the body is empty: send the video")
    return size


def _stage_video(location: str, folder: Path, max_mb: int) -> tuple[str, int]:
    """An s3:// object spooled into the job's folder, or a local file linked there."""
    from moodlens.storage import StorageError, is_s3, local_copy

    name = location.rsplit("/", 1)[-1] or "video"
    target = folder / f"media{suffix(name)}"
    if is_s3(location):
        try:
            with local_copy(location, folder) as spooled:
                spooled.rename(target)
        except StorageError as err:
            status = 404 if "no such" in str(err) else 403 if "access denied" in str(err) else 502
            raise UploadError(status, str(err)) from None
    else:
        source = Path(location)
        if not source.is_absolute() or not source.is_file():
            raise UploadError(404, f"{location}: no such file on the server (give an absolute path)")
        target.symlink_to(source)
    size = target.stat().st_size
    if size > max_mb * 2**20:
        raise UploadError(413, f"{name}: the video is larger than the {max_mb} MB limit")
    return clean_filename(name.encode()), size


def _discard(upload: StreamedUpload, folder: Path) -> None:
    upload.close()
    shutil.rmtree(folder, ignore_errors=True)


def _check_media(path: Path, filename: str) -> None:
    """415 for anything FFmpeg can't open as audio or video, before a job is queued."""
    from moodlens.media import probe

    try:
        probe(path)
    except MoodlensError as err:
        raise UploadError(415, f"{filename}: {str(err).split(': ', 1)[-1]}") from None
