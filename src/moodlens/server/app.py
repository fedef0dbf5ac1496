"""`moodlens serve`: the REST API (OpenAPI at /docs) and the upload and result pages."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from python_multipart.multipart import MultipartParser, parse_options_header

from moodlens.errors import MoodlensError
from moodlens.server.jobs import JobStore
from moodlens.server.worker import RESULT_NAME, AnalysisWorkers, job_folder, media_file
from moodlens.writers import page

STATIC = Path(__file__).resolve().parent / "static"
RESULTS = {"result": (".analysis.json", "application/json"), "result.csv": (".utterances.csv", "text/csv"),
           "result.srt": (".srt", "application/x-subrip")}


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path = Path("moodlens-data")
    database_url: str | None = None  # default: SQLite in data_dir
    max_upload_mb: int = 500
    workers: int = 1
    api_key: str | None = None

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'jobs.sqlite3').resolve()}"


class UploadError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StreamedUpload:
    """Writes the multipart field `file` straight to disk as it arrives, counting bytes.

    The limit is enforced on the stream, so an oversize upload stops at the limit: it is never
    held in memory or written out whole.
    """

    def __init__(self, boundary: bytes, target: Path, limit: int) -> None:
        self.target, self.limit, self.size = target, limit, 0
        self.filename: str | None = None
        self.handle: Any = None
        self._header, self._value = b"", b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done, "on_part_data": self._data, "on_part_end": self._part_end})

    def _part_begin(self) -> None:
        self._headers, self._in_file = {}, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header.lower()] = self._value
        self._header, self._value = b"", b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == b"file" and self.filename is None:
            self.filename = params.get(b"filename", b"upload").decode("utf-8", "replace") or "upload"
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.target.open("wb")
            self._in_file = True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        self.size += end - start
        if self.size > self.limit:
            raise UploadError(413, f"upload is larger than the {self.limit // 2**20} MB limit")
        self.handle.write(data[start:end])

    def _part_end(self) -> None:
        if self._in_file:
            self.handle.close()
            self._in_file = False

    def feed(self, chunk: bytes) -> None:
        self.parser.write(chunk)

    def close(self) -> None:
        if self.handle is not None and not self.handle.closed:
            self.handle.close()


def _suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def create_app(settings: ServerSettings | None = None, start_workers: bool = True) -> FastAPI:
    settings = settings or ServerSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.url)
    workers = AnalysisWorkers(store, settings.data_dir, settings.workers)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.requeue_running()  # a crash left them half done; they start again from the upload
        if start_workers:
            workers.start()
        yield
        if start_workers:
            workers.stop()

    app = FastAPI(title="moodlens", version="1", lifespan=lifespan,
                  description="How a video feels: upload it, poll the job, fetch the Analysis.")
    app.state.store, app.state.workers, app.state.settings = store, workers, settings

    def require_key(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
        # a <video src> can't send headers, so the key may also come as ?key=
        given = x_api_key or request.query_params.get("key")
        if settings.api_key and not (given and secrets.compare_digest(given, settings.api_key)):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    @app.exception_handler(HTTPException)
    async def json_errors(_: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": err.detail}, status_code=err.status_code)

    def found(job_id: str) -> Any:
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no analysis with id {job_id!r}")
        return job

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "jobs": store.counts(), "workers": settings.workers}

    @app.post("/v1/analyses", status_code=202, dependencies=[Depends(require_key)])
    async def create_analysis(request: Request) -> JSONResponse:
        """Multipart upload with the video in the field `file`; answers at once, the analysis runs later."""
        ctype, params = parse_options_header(request.headers.get("content-type", ""))
        if ctype != b"multipart/form-data" or b"boundary" not in params:
            raise HTTPException(400, "send multipart/form-data with the video in the field `file`")
        limit = settings.max_upload_mb * 2**20
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise HTTPException(413, f"upload is larger than the {settings.max_upload_mb} MB limit")
        job_id = secrets.token_hex(16)
        folder = job_folder(settings.data_dir, job_id)
        upload = StreamedUpload(params[b"boundary"], folder / "upload.part", limit)
        try:
            async for chunk in request.stream():
                upload.feed(chunk)
            upload.close()
            if upload.filename is None:
                raise UploadError(400, "no file in the field `file`")
            if upload.size == 0:
                raise UploadError(415, f"{upload.filename}: the file is empty")
            media = folder / f"media{_suffix(upload.filename)}"
            (folder / "upload.part").rename(media)
            _check_media(media, upload.filename)
        except UploadError as err:
            upload.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(err.status, str(err)) from None
        except Exception:
            upload.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job = store.create(upload.filename, upload.size, job_id)
        workers.notify()
        return JSONResponse({"id": job.id, "status": job.status}, status_code=202,
                            headers={"Location": f"/v1/analyses/{job.id}"})

    @app.get("/v1/analyses", dependencies=[Depends(require_key)])
    def list_analyses(offset: Annotated[int, Query(ge=0)] = 0,
                      limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
        jobs, total = store.page(offset, limit)
        return {"items": [j.to_json() for j in jobs], "total": total, "offset": offset, "limit": limit}

    @app.get("/v1/analyses/{job_id}", dependencies=[Depends(require_key)])
    def get_analysis(job_id: str) -> dict[str, Any]:
        return found(job_id).to_json()

    @app.get("/v1/analyses/{job_id}/{variant}", dependencies=[Depends(require_key)])
    def get_result(job_id: str, variant: str) -> Response:
        job = found(job_id)
        if variant == "media":
            media = media_file(settings.data_dir, job_id)
            if media is None:
                raise HTTPException(404, "the uploaded file is gone")
            return FileResponse(media)  # answers Range requests, so the player can seek
        if variant not in RESULTS:
            raise HTTPException(404, f"no {variant!r}; use result, result.csv, result.srt or media")
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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def upload_page() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/analyses/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def result_page(job_id: str) -> str:
        found(job_id)
        script = (STATIC / "result-page.js").read_text(encoding="utf-8")
        return page(script.replace("JOB_ID", json.dumps(job_id)), nav='<a href="/">upload another</a>')

    return app


def _check_media(path: Path, filename: str) -> None:
    """415 for anything FFmpeg can't open as audio or video, before a job is queued."""
    from moodlens.media import probe

    try:
        probe(path)
    except MoodlensError as err:
        raise UploadError(415, f"{filename}: {str(err).split(': ', 1)[-1]}") from None
