"""`moodlens serve` as a real process on loopback, attacked over real sockets: oversized
headers, uploads cut off mid-stream, DELETE during an analysis, and 20 concurrent uploads with
a server restart in the middle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data: Path, *options: str) -> None:
        self.data, self.options = data, options
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait until /healthz says ready; returns the seconds that took."""
        started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moodlens.cli", "serve", "--port", str(self.port), "--data-dir", str(self.data),
             *self.options],
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).json()["ready"]:
                    return time.monotonic() - started
            except (httpx.HTTPError, ValueError):
                pass
            if self.process.poll() is not None:
                raise AssertionError(self.process.stdout.read().decode(errors="replace"))
            time.sleep(0.3)
        raise AssertionError("the server did not become ready in 180 s")

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output.decode(errors="replace")

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.url}/v1/analyses/{job_id}", timeout=10).json()

    def wait(self, job_id: str, timeout: float = 240.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in ("done", "failed"):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} did not end: {job}")

    def upload(self, path: Path) -> httpx.Response:
        with path.open("rb") as handle:
            return httpx.post(f"{self.url}/v1/analyses", files={"file": (path.name, handle, "video/mp4")},
                              timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("serve-process"))
    server.start()
    yield server
    server.stop()


def raw_request(server: Server, payload: bytes, read: bool = True) -> bytes:
    """Send bytes as they are; return the start of the answer (or nothing, with read=False)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(payload)
        if not read:
            return b""
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_a_header_over_64_kb_is_refused(server: Server) -> None:
    request = (b"GET /v1/analyses HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"j" * (65 * 1024) + b"\r\n\r\n")
    answer = raw_request(server, request)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else None
    assert status == 431 and b"request headers are over 64 KB" in answer, answer[:300]
    assert b"Traceback" not in answer
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # and the server is fine


def test_an_upload_cut_off_mid_stream_leaves_no_job_and_no_file(server: Server) -> None:
    before = httpx.get(f"{server.url}/v1/analyses").json()["total"]
    folders = set((server.data / "jobs").glob("*")) if (server.data / "jobs").exists() else set()
    head = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.mp4\"\r\n"
            b"Content-Type: video/mp4\r\n\r\n")
    sent = DEMO.read_bytes()[: 2**20]
    request = (f"POST /v1/analyses HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
               f"Content-Length: {len(head) + 5 * 2**20}\r\n\r\n").encode() + head + sent
    raw_request(server, request, read=False)  # and the client is gone
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = set((server.data / "jobs").glob("*")) if (server.data / "jobs").exists() else set()
        if now == folders:
            break
        time.sleep(0.2)
    assert now == folders
    assert httpx.get(f"{server.url}/v1/analyses").json()["total"] == before


def test_delete_during_analysis_is_refused_then_works(server: Server) -> None:
    job_id = server.upload(DEMO).json()["id"]
    deadline = time.monotonic() + 120
    while server.job(job_id)["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    answer = httpx.delete(f"{server.url}/v1/analyses/{job_id}")
    if server.job(job_id)["status"] == "running":
        assert answer.status_code == 409 and "running" in answer.json()["error"]
    assert server.wait(job_id)["status"] == "done"
    assert httpx.delete(f"{server.url}/v1/analyses/{job_id}").status_code == 204
    assert not (server.data / "jobs" / job_id).exists()


def test_twenty_concurrent_uploads_and_a_restart_lose_nothing(tmp_path: Path, media_dir: Path) -> None:
    server = Server(tmp_path / "data")
    server.start()
    clip = media_dir / "h264_aac.mp4"
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: server.upload(clip), range(20)))
    assert [a.status_code for a in answers] == [202] * 20
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == 20
    deadline = time.monotonic() + 120  # restart once some are done and others are not
    while time.monotonic() < deadline:
        states = [server.job(i)["status"] for i in ids]
        if "done" in states:
            break
        time.sleep(0.1)
    log = server.stop()
    assert "Traceback" not in log, log
    server.start()
    try:
        jobs = [server.wait(i) for i in ids]
        listing = httpx.get(f"{server.url}/v1/analyses", params={"limit": 100}).json()
    finally:
        server.stop()
    assert listing["total"] == 20 and sorted(j["id"] for j in listing["items"]) == sorted(ids)
    for job in jobs:
        assert job["status"] == "done" or (job["status"] == "failed" and job["error"]), job
        if job["status"] == "done":
            assert (server.data / "jobs" / job["id"] / "result.analysis.json").is_file()
    assert sum(j["status"] == "done" for j in jobs) == 20
