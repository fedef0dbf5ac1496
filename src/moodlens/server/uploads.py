"""Uploads as they arrive: the multipart body streamed to disk under limits, its form fields
checked, its file name made safe to show."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from moodlens.language import AUTO, check_language

MAX_PART_HEADERS = 16 * 1024  # bytes of headers in one multipart part
MAX_FORM_FIELDS = 64 * 1024  # bytes in all the parts that are not the file


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
