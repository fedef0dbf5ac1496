"""The API against the real app: real uploads, real worker processes, real analyses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from moodlens.analysis import validate
from moodlens.server import ServerSettings, create_app
from moodlens.server.jobs import JobStore


def _wait(client: TestClient, job_id: str, timeout: float = 240.0, headers: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/analyses/{job_id}", headers=headers or {}).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def _upload(client: TestClient, path: Path, headers: dict | None = None) -> object:
    with path.open("rb") as handle:
        return client.post("/v1/analyses", files={"file": (path.name, handle, "video/mp4")}, headers=headers or {})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    data = tmp_path_factory.mktemp("serve")
    with TestClient(create_app(ServerSettings(data_dir=data, max_upload_mb=1, workers=1))) as client:
        yield client, data


def test_upload_poll_result_list_delete(server: tuple[TestClient, Path], meld_clips: list[dict]) -> None:
    client, data = server
    clip = Path(meld_clips[1]["path"])
    answer = _upload(client, clip)
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    job_id = answer.json()["id"]
    job = _wait(client, job_id)
    assert job["status"] == "done" and job["progress"] == 1.0 and job["filename"] == clip.name, job
    analysis = client.get(f"/v1/analyses/{job_id}/result").json()
    validate(analysis)
    assert analysis["utterances"] and analysis["utterances"][0]["emotion"]["label"]
    csv_text = client.get(f"/v1/analyses/{job_id}/result.csv")
    assert csv_text.status_code == 200 and csv_text.text.startswith("index,start,end")
    assert "-->" in client.get(f"/v1/analyses/{job_id}/result.srt").text
    media = client.get(f"/v1/analyses/{job_id}/media", headers={"Range": "bytes=0-99"})
    assert media.status_code == 206 and len(media.content) == 100  # seekable in a <video>
    listing = client.get("/v1/analyses", params={"limit": 5}).json()
    assert job_id in [j["id"] for j in listing["items"]] and listing["total"] >= 1
    page = client.get(f"/analyses/{job_id}")
    assert page.status_code == 200 and "render(" in page.text
    assert client.delete(f"/v1/analyses/{job_id}").status_code == 204
    assert client.get(f"/v1/analyses/{job_id}").status_code == 404
    assert not (data / "jobs" / job_id).exists()


@pytest.mark.parametrize(("name", "body", "status", "message"), [
    ("notes.mp4", b"this is plainly not a video" * 20, 415, "not a readable media file"),
    ("empty.mp4", b"", 415, "the file is empty"),
])
def test_bad_uploads_get_a_json_error(server: tuple[TestClient, Path], name: str, body: bytes, status: int,
                                      message: str) -> None:
    client, data = server
    answer = client.post("/v1/analyses", files={"file": (name, body, "video/mp4")})
    assert answer.status_code == status and message in answer.json()["error"], answer.text
    assert not any((data / "jobs").glob("*/upload.part"))


def test_bad_requests(server: tuple[TestClient, Path]) -> None:
    client, _ = server
    assert client.post("/v1/analyses", files={"video": ("a.mp4", b"x")}).status_code == 400  # wrong field
    assert client.post("/v1/analyses", json={"file": "a.mp4"}).status_code == 400
    assert client.get("/v1/analyses/nope").status_code == 404
    assert client.get("/v1/analyses/nope").json() == {"error": "no analysis with id 'nope'"}
    assert client.get("/v1/analyses", params={"limit": 0}).status_code == 422
    assert client.get("/healthz").json()["status"] in ("ready", "starting")
    assert client.get("/openapi.json").json()["paths"]["/v1/analyses"]


def test_oversize_upload_is_refused_while_streaming(server: tuple[TestClient, Path]) -> None:
    client, data = server
    assert _upload_bytes(client, 2 * 2**20, declare_length=True).status_code == 413
    # no Content-Length: the limit is still enforced on the stream itself
    answer = _upload_bytes(client, 2 * 2**20, declare_length=False)
    assert answer.status_code == 413 and "1 MB limit" in answer.json()["error"]
    assert not any((data / "jobs").glob("*/upload.part"))


def _upload_bytes(client: TestClient, size: int, declare_length: bool) -> object:
    boundary = "moodlensboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(size // 65536):
            yield b"\0" * 65536
        yield tail

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if declare_length:
        return client.post("/v1/analyses", content=head + b"\0" * size + tail, headers=headers)
    return client.post("/v1/analyses", content=body(), headers=headers)


def test_api_key(tmp_path: Path) -> None:
    with TestClient(create_app(ServerSettings(data_dir=tmp_path, api_key="s3cret"), start_workers=False)) as client:
        assert client.get("/v1/analyses").status_code == 401
        assert client.get("/v1/analyses", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/v1/analyses", headers={"X-API-Key": "s3cret"}).status_code == 200
        health = client.get("/healthz")  # health checks need no key; no workers here, so not ready
        assert health.status_code == 503 and health.json()["status"] == "degraded"


def test_jobs_survive_a_restart_and_running_ones_are_requeued(tmp_path: Path, meld_clips: list[dict]) -> None:
    clips = [Path(meld_clips[i]["path"]) for i in (1, 6)]
    settings = ServerSettings(data_dir=tmp_path, workers=1)
    with TestClient(create_app(settings, start_workers=False)) as client:  # accepts, never analyses
        ids = [_upload(client, clip).json()["id"] for clip in clips]
    store = JobStore(settings.url)
    crashed = store.claim()  # as if a worker had started it and the server then died
    assert crashed is not None and store.get(crashed.id).status == "running"
    import multiprocessing

    before = set(multiprocessing.active_children())  # the module's own server has workers too
    with TestClient(create_app(settings)) as client:
        jobs = [_wait(client, job_id) for job_id in ids]
        ours = set(multiprocessing.active_children()) - before
    assert [j["status"] for j in jobs] == ["done", "done"]
    assert store.get(crashed.id).attempts == 2
    assert ours and set(multiprocessing.active_children()) <= before  # shutdown ended this server's workers
    assert [p.exitcode for p in ours] == [0] * len(ours)  # idle ones leave cleanly rather than being killed


def test_two_workers_share_one_postgres_queue(tmp_path: Path, postgres_url: str, meld_clips: list[dict]) -> None:
    """The multi-worker claim on a real PostgreSQL: every upload analysed once, none lost."""
    from tests.conftest import new_database

    settings = ServerSettings(data_dir=tmp_path, workers=2, database_url=new_database(postgres_url))
    clips = [Path(meld_clips[i]["path"]) for i in (0, 1, 6, 8)]
    with TestClient(create_app(settings)) as client:
        ids = [_upload(client, clip).json()["id"] for clip in clips]
        jobs = [_wait(client, job_id) for job_id in ids]
        assert client.get("/healthz").json()["jobs"]["done"] == len(clips)
    assert [j["status"] for j in jobs] == ["done"] * len(clips)
    assert [j["attempts"] for j in jobs] == [1] * len(clips)


def test_the_form_chooses_the_language_and_a_bad_one_is_a_400(server: tuple[TestClient, Path],
                                                              meld_clips: list[dict]) -> None:
    client, data = server
    clip = Path(meld_clips[1]["path"])
    with clip.open("rb") as handle:
        bad = client.post("/v1/analyses", data={"language": "klingon"},
                          files={"file": (clip.name, handle, "video/mp4")})
    assert bad.status_code == 400 and "bad form field `language`" in bad.json()["error"], bad.text
    assert not any((data / "jobs").glob("*/upload.part"))
    with clip.open("rb") as handle:
        answer = client.post("/v1/analyses", data={"language": "EN"}, files={"file": (clip.name, handle, "video/mp4")})
    assert answer.status_code == 202, answer.text
    job = _wait(client, answer.json()["id"])
    assert job["status"] == "done", job
    analysis = client.get(f"/v1/analyses/{job['id']}/result").json()
    assert analysis["settings"]["language"] == "en" and analysis["language"]["given"] is True
