"""Uploads as they arrive: the multipart body streamed to disk under limits, its form fields
checked, its file name made safe to show."""

from __future__ import annotations

import asyncio
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from moodlens.errors import MoodlensError
from moodlens.language import AUTO, check_language

MAX_PART_HEADERS = 16 * 1024  # bytes of headers in one multipart part
MAX_FORM_FIELDS = 64 * 1024  # bytes in all the parts that are not the file
WRITE_BLOCK = 1 << 20  # uploads are written to disk in blocks this big, off the event loop


class UploadError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StreamedUpload:
    """Writes the multipart field `file` straight to disk as it arrives, counting bytes.

    The limit is enforced on the stream, so an oversize upload stops at the limit: it is never
    held in memory or written out whole. Part headers and other form fields are capped too,
    since a hostile client can send megabytes of either.
    """

    def __init__(self, boundary: bytes, target: Path, limit: int) -> None:
        self.target, self.limit, self.size = target, limit, 0
        self.filename: str | None = None
        self.handle: Any = None
        self._header, self._value = b"", b""
        self._header_bytes = 0
        self._field_bytes = 0
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self._field: str | None = None
        self.fields: dict[str, bytes] = {}  # the other form fields' values (JOB_FIELDS reads them)
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done, "on_part_data": self._data, "on_part_end": self._part_end,
            "on_end": self._end})
        self._ended = False

    def _end(self) -> None:
        self._ended = True

    def _part_begin(self) -> None:
        self._headers, self._in_file, self._header_bytes = {}, False, 0

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_PART_HEADERS:
            raise UploadError(400, f"a multipart part has more than {MAX_PART_HEADERS // 1024} KB of headers")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header.lower()] = self._value
        self._header, self._value = b"", b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") != b"file":
            self._field = params.get(b"name", b"").decode("utf-8", "replace")
            self.fields.setdefault(self._field, b"")
            return
        if self.filename is not None:
            raise UploadError(400, "send one file per upload: the form has two `file` parts")
        self.filename = clean_filename(params.get(b"filename", b""))
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.target.open("wb")
        self._in_file = True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            self._field_bytes += end - start
            if self._field_bytes > MAX_FORM_FIELDS:
                raise UploadError(413, f"form fields other than `file` are limited to {MAX_FORM_FIELDS // 1024} KB")
            if self._field is not None:
                self.fields[self._field] += data[start:end]
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
        try:
            self.parser.write(chunk)
        except MultipartParseError as err:
            raise UploadError(400, f"malformed multipart body ({str(err).split(':')[0]})") from None

    def finish(self) -> None:
        try:
            self.parser.finalize()
        except MultipartParseError as err:
            raise UploadError(400, f"malformed multipart body ({str(err).split(':')[0]})") from None
        self.close()
        if not self._ended:  # a body cut short is not a shorter file
            raise UploadError(400, "malformed multipart body (it ends before its closing boundary)")

    def close(self) -> None:
        if self.handle is not None and not self.handle.closed:
            self.handle.close()


def job_fields(fields: dict[str, bytes]) -> dict[str, str]:
    """The analysis options an upload may set in its form (`language`), checked: an UploadError
    (400) names a bad one. Other fields are ignored, as before."""
    chosen: dict[str, str] = {}
    if "language" in fields:
        raw = fields["language"].decode("utf-8", "replace").strip() or AUTO
        try:
            chosen["language"] = check_language(raw)
        except ValueError as err:
            raise UploadError(400, f"bad form field `language`: {err}") from None
    return chosen


def clean_filename(raw: bytes) -> str:
    """The upload's name as shown back to people: its last path part, printable, at most 255
    characters. It is never used as a path on the server (uploads are stored as media.EXT)."""
    text = raw.decode("utf-8", "replace")
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip()
    return text.strip(".")[:255] or "upload"


def suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


async def receive_multipart(request: Request, upload: StreamedUpload) -> None:
    """The whole multipart body into `upload`. Disk writes run in threads: a slow disk or a big
    upload must not stall every other request on the event loop."""
    block = bytearray()
    async for chunk in request.stream():
        block += chunk
        if len(block) >= WRITE_BLOCK:
            await asyncio.to_thread(upload.feed, bytes(block))
            block.clear()
    await asyncio.to_thread(upload.feed, bytes(block))
    upload.finish()


async def save_body(request: Request, target: Path, max_mb: int) -> int:
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


def stage_video(location: str, folder: Path, max_mb: int) -> tuple[str, int]:
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


def discard(folder: Path, upload: StreamedUpload | None = None) -> None:
    """What a refused or cut-off upload left behind."""
    if upload is not None:
        upload.close()
    shutil.rmtree(folder, ignore_errors=True)


def check_media(path: Path, filename: str) -> None:
    """415 for anything FFmpeg can't open as audio or video, before a job is queued."""
    from moodlens.media import probe

    try:
        probe(path)
    except MoodlensError as err:
        raise UploadError(415, f"{filename}: {str(err).split(': ', 1)[-1]}") from None
