"""/v1/analyses: upload a video, poll its job, fetch or delete its results."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from moodlens.server.services import found_job, media_url, require_key, require_key_or_signature, services
from moodlens.server.uploads import (
    MAX_FORM_FIELDS,
    StreamedUpload,
    UploadError,
    check_media,
    discard,
    job_fields,
    receive_multipart,
    suffix,
)
from moodlens.server.worker import JOB_OPTIONS, RESULT_NAME, job_folder, media_file

RESULTS = {"result": (".analysis.json", "application/json"), "result.csv": (".utterances.csv", "text/csv"),
           "result.srt": (".srt", "application/x-subrip")}

router = APIRouter(prefix="/v1/analyses")


@router.post("", status_code=202, dependencies=[Depends(require_key)])
async def create_analysis(request: Request) -> JSONResponse:
    """Multipart upload with the video in the field `file`; answers at once, the analysis runs later."""
    app = services(request)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise HTTPException(400, "send multipart/form-data with the video in the field `file`")
    limit = app.settings.max_upload_mb * 2**20
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MAX_FORM_FIELDS + 64 * 1024:
        raise HTTPException(413, f"upload is larger than the {app.settings.max_upload_mb} MB limit")
    job_id = secrets.token_hex(16)
    folder = job_folder(app.settings.data_dir, job_id)
    upload = StreamedUpload(params[b"boundary"], folder / "upload.part", limit)
    try:
        await receive_multipart(request, upload)
        if upload.filename is None:
            raise UploadError(400, "no file in the field `file`")
        if upload.size == 0:
            raise UploadError(415, f"{upload.filename}: the file is empty")
        chosen = job_fields(upload.fields)
        if chosen:
            (folder / JOB_OPTIONS).write_text(json.dumps(chosen), encoding="utf-8")
        media = folder / f"media{suffix(upload.filename)}"
        (folder / "upload.part").rename(media)
        # probing and the database run in threads, off the event loop
        await asyncio.to_thread(check_media, media, upload.filename)
        job = await asyncio.to_thread(app.store.create, upload.filename, upload.size, job_id)
    except UploadError as err:
        await asyncio.to_thread(discard, folder, upload)
        raise HTTPException(err.status, str(err)) from None
    except ClientDisconnect:
        # the client went away mid-upload: nothing of it is kept, and nobody reads the answer
        await asyncio.to_thread(discard, folder, upload)
        return JSONResponse({"error": "the upload was cut off"}, status_code=400)
    except BaseException:
        await asyncio.to_thread(discard, folder, upload)
        raise
    app.workers.notify()
    return JSONResponse({"id": job.id, "status": job.status}, status_code=202,
                        headers={"Location": f"/v1/analyses/{job.id}"})


@router.get("", dependencies=[Depends(require_key)])
def list_analyses(request: Request, offset: Annotated[int, Query(ge=0)] = 0,
                  limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    jobs, total = services(request).store.page(offset, limit)
    return {"items": [j.to_json() for j in jobs], "total": total, "offset": offset, "limit": limit}


@router.get("/{job_id}", dependencies=[Depends(require_key)])
def get_analysis(request: Request, job_id: str) -> dict[str, Any]:
    app = services(request)
    return {**found_job(app.store, job_id).to_json(), "media_url": media_url(app.settings, job_id)}


@router.get("/{job_id}/media", dependencies=[Depends(require_key_or_signature)])
def get_media(request: Request, job_id: str) -> Response:
    app = services(request)
    found_job(app.store, job_id)
    media = media_file(app.settings.data_dir, job_id)
    if media is None:
        raise HTTPException(404, "the uploaded file is gone")
    return FileResponse(media)  # answers Range requests, so the player can seek


@router.get("/{job_id}/{variant}", dependencies=[Depends(require_key)])
def get_result(request: Request, job_id: str, variant: str) -> Response:
    app = services(request)
    job = found_job(app.store, job_id)
    if variant not in RESULTS:
        raise HTTPException(404, f"no {variant[:64]!r}; use result, result.csv, result.srt or media")
    if job.status != "done":
        raise HTTPException(409, f"analysis is {job.status}" + (f": {job.error}" if job.error else ""))
    ending, media_type = RESULTS[variant]
    path = job_folder(app.settings.data_dir, job_id) / f"{RESULT_NAME}{ending}"
    if not path.is_file():
        raise HTTPException(404, "the result files are gone")
    return FileResponse(path, media_type=media_type)


@router.delete("/{job_id}", status_code=204, dependencies=[Depends(require_key)])
def delete_analysis(request: Request, job_id: str) -> Response:
    app = services(request)
    job = found_job(app.store, job_id)
    if job.status == "running":
        raise HTTPException(409, "the analysis is running; delete it once it is done or failed")
    app.store.delete(job_id)
    shutil.rmtree(job_folder(app.settings.data_dir, job_id), ignore_errors=True)
    return Response(status_code=204)
