"""The API against a careless or hostile client: every answer is a JSON 4xx, nothing is left
behind, nothing leaks. No workers run here: these requests never reach an analysis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from moodlens.server import ServerSettings, create_app
from moodlens.server.services import media_signature
from moodlens.server.uploads import MAX_PART_HEADERS, clean_filename

BOUNDARY = "attackboundary"
CTYPE = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def part(name: str, body: bytes, filename: bytes | None = None, extra: bytes = b"") -> bytes:
    disposition = f'form-data; name="{name}"'.encode()
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return (f"--{BOUNDARY}\r\n".encode() + b"Content-Disposition: " + disposition + b"\r\n" + extra
            + b"Content-Type: application/octet-stream\r\n\r\n" + body + b"\r\n")


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    with TestClient(create_app(ServerSettings(data_dir=tmp_path, max_upload_mb=20), start_workers=False),
                    raise_server_exceptions=False) as client:
        yield client, tmp_path


def leftovers(data: Path) -> list[Path]:
    return sorted((data / "jobs").glob("*")) if (data / "jobs").exists() else []


def assert_clean_error(answer: object, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert words in error and "Traceback" not in error and 'File "' not in error, error


@pytest.mark.parametrize(("case", "content", "status", "words"), [
    ("no file part", body(part("comment", b"hello")), 400, "no file in the field `file`"),
    ("two file parts", body(part("file", b"a", b"a.mp4"), part("file", b"b", b"b.mp4")), 400, "two `file` parts"),
    ("10 MB form field", body(part("comment", b"x" * 10 * 2**20), part("file", b"a", b"a.mp4")), 413,
     "form fields other than `file`"),
    ("huge part header", body(part("file", b"a", b"a.mp4", b"X-Junk: " + b"j" * (MAX_PART_HEADERS + 1) + b"\r\n")),
     400, "header"),
    ("no closing boundary", part("file", b"abc", b"a.mp4"), 400, "malformed multipart body"),
    ("garbage", b"\x00\xff" * 5000, 400, "malformed multipart body"),
])
def test_malformed_uploads_are_4xx_and_leave_nothing(api: tuple[TestClient, Path], case: str, content: bytes,
                                                     status: int, words: str) -> None:
    client, data = api
    answer = client.post("/v1/analyses", content=content, headers=CTYPE)
    assert_clean_error(answer, status, words)
    assert leftovers(data) == []
    assert client.get("/v1/analyses").json()["total"] == 0


def test_missing_boundary_is_400(api: tuple[TestClient, Path]) -> None:
    client, _ = api
    answer = client.post("/v1/analyses", content=b"x", headers={"Content-Type": "multipart/form-data"})
    assert_clean_error(answer, 400, "multipart/form-data")


@pytest.mark.parametrize(("raw", "shown"), [
    (b"../../etc/passwd", "passwd"),
    (b"..\\\\x.mp4", "x.mp4"),
    (b"a\x00b.mp4", "ab.mp4"),
    (b"caf\xe9.mp4", "caf\ufffd.mp4"),  # Latin-1, not UTF-8
    (b"..", "upload"),
    (b"", "upload"),
])
def test_hostile_filenames_are_names_never_paths(api: tuple[TestClient, Path], media_dir: Path, raw: bytes,
                                                 shown: str) -> None:
    client, data = api
    answer = client.post("/v1/analyses", content=body(part("file", (media_dir / "h264_aac.mp4").read_bytes(), raw)),
                         headers=CTYPE)
    assert answer.status_code == 202, answer.text
    job = client.get(f"/v1/analyses/{answer.json()['id']}").json()
    assert job["filename"] == shown
    stored = [p.relative_to(data) for p in (data / "jobs").rglob("*") if p.is_file()]
    assert all(p.parts[:2] == ("jobs", job["id"]) and p.name.startswith("media") for p in stored), stored
    assert not (data.parent / "etc").exists()


def test_clean_filename() -> None:
    assert clean_filename(b"ok name.MP4") == "ok name.MP4"
    assert clean_filename(b"x" * 1000 + b".mp4") == "x" * 255
    assert clean_filename(b"a\r\nb\x1b[31m.mp4") == "ab[31m.mp4"


@pytest.mark.parametrize("job_id", ["nope", "0" * 31, "..%2F..%2Fetc", "0" * 32 + "%00", "ABCDEF" * 6])
def test_job_ids_are_validated_before_any_lookup(api: tuple[TestClient, Path], job_id: str) -> None:
    client, _ = api
    for url in (f"/v1/analyses/{job_id}", f"/v1/analyses/{job_id}/result", f"/v1/analyses/{job_id}/media"):
        answer = client.get(url)
        assert answer.status_code == 404, (url, answer.text)
        assert "error" in answer.json()
    assert client.delete(f"/v1/analyses/{job_id}").status_code == 404


def test_unknown_routes_and_methods_are_json(api: tuple[TestClient, Path]) -> None:
    client, _ = api
    assert_clean_error(client.get("/v2/nothing"), 404, "Not Found")
    assert_clean_error(client.put("/v1/analyses"), 405, "Method Not Allowed")
    assert_clean_error(client.get("/v1/analyses", params={"limit": "lots"}), 422, "limit")


def test_api_key_and_signed_media_links(tmp_path: Path, media_dir: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path, api_key="s3cret")
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as client:
        key = {"X-API-Key": "s3cret"}
        assert client.get("/v1/analyses", headers={"X-API-Key": "sécret".encode()}).status_code == 401  # no 500
        assert client.get("/v1/analyses", params={"key": "s3cret"}).status_code == 401  # keys never ride in URLs
        with (media_dir / "h264_aac.mp4").open("rb") as handle:
            job_id = client.post("/v1/analyses", files={"file": ("a.mp4", handle)}, headers=key).json()["id"]
        link = client.get(f"/v1/analyses/{job_id}", headers=key).json()["media_url"]
        assert "s3cret" not in link and "sig=" in link
        assert client.get(link).status_code == 200
        assert client.get(f"/v1/analyses/{job_id}/media", params={"key": "s3cret"}).status_code == 401
        assert client.get(link.replace("sig=", "sig=0")).status_code == 401
        expired = int(time.time()) - 1
        stale = f"/v1/analyses/{job_id}/media?expires={expired}&sig={media_signature('s3cret', job_id, expired)}"
        assert client.get(stale).status_code == 401
        other = "f" * 32  # a link signed for one job opens no other
        assert client.get(link.replace(job_id, other)).status_code == 401


def test_the_key_is_compared_in_constant_time() -> None:
    import inspect

    from moodlens.server import services

    source = inspect.getsource(services.same_secret)
    assert "hmac.compare_digest" in source and "==" not in source
