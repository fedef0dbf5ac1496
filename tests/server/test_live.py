"""/v1/live over real sockets: a `moodlens serve` process and WebSocket clients that send the
demo's audio and camera frames as a browser would. Properties only, never ASR text."""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from moodlens.events import validate_event
from moodlens.media import read_audio, sample_frames
from tests.conftest import DEMO
from tests.server.test_serve_process import Server

websockets = pytest.importorskip("websockets", reason="websockets (the [serve] extra) is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("live-serve"), "--max-live-sessions", "4")
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def demo() -> tuple[np.ndarray, list[tuple[float, bytes]]]:
    audio = (np.clip(read_audio(DEMO), -1, 1) * 32767).astype("<i2")
    frames = [(f.time, cv2.imencode(".jpg", f.image[:, :, ::-1])[1].tobytes()) for f in sample_frames(DEMO, 2.0, 640)]
    return audio, frames


@dataclass
class Client:
    events: list[dict] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]


async def session(url: str, audio: np.ndarray, frames: list[tuple[float, bytes]], speed: float = 4.0,
                  seconds: float | None = None, stop: bool = True, start: dict | None = None,
                  extra: list[bytes | str] | None = None) -> Client:
    """Send `seconds` of the demo (all of it by default) at `speed` times real time; then stop,
    or just go away (stop=False)."""
    client = Client()
    async with websockets.connect(url.replace("http", "ws") + "/v1/live", max_size=None) as ws:
        await ws.send(json.dumps(start or {"type": "start", "audio": "pcm16", "video": True, "name": "test"}))

        async def receive() -> None:
            try:
                async for message in ws:
                    client.events.append(json.loads(message))
            except websockets.ConnectionClosed:
                pass

        reader = asyncio.create_task(receive())
        try:
            await _send_demo(ws, audio, frames, speed, seconds)
            for message in extra or []:
                await ws.send(message)
            if not stop:
                ws.transport.abort()  # gone, with no closing handshake
                reader.cancel()
                return client
            if not extra:
                await ws.send(json.dumps({"type": "stop"}))
        except websockets.ConnectionClosed:
            pass  # the server ended the session (a bad start, say): its close says why
        await asyncio.wait_for(reader, 120)
        client.close_code, client.close_reason = ws.close_code, ws.close_reason
    return client


async def _send_demo(ws: object, audio: np.ndarray, frames: list[tuple[float, bytes]], speed: float,
                     seconds: float | None) -> None:
    began, step, sent_frames = time.monotonic(), 1600, 0
    end = audio.size if seconds is None else int(seconds * 16000)
    for i in range(0, end, step):
        await asyncio.sleep(max(0.0, began + i / 16000 / speed - time.monotonic()))
        await ws.send(b"\x01" + audio[i:i + step].tobytes())
        while sent_frames < len(frames) and frames[sent_frames][0] <= i / 16000:
            at, jpeg = frames[sent_frames]
            await ws.send(b"\x02" + struct.pack("<d", at) + jpeg)
            sent_frames += 1


def stored(server: Server, job_id: str) -> tuple[dict, dict]:
    job = httpx.get(f"{server.url}/v1/analyses/{job_id}", timeout=10).json()
    result = httpx.get(f"{server.url}/v1/analyses/{job_id}/result", timeout=10).json()
    return job, result


def test_a_session_sends_events_and_is_stored_as_a_job(server: Server, demo: tuple) -> None:
    client = asyncio.run(session(server.url, *demo, speed=2.0, start={
        "type": "start", "audio": "pcm16", "video": True, "name": "test", "partials": 1.0}))
    for e in client.events:
        validate_event(e)
    utterances = client.of_type("utterance")
    assert len(utterances) >= 3 and client.of_type("face")
    assert {p["start"] for p in client.of_type("partial")} <= {u["start"] for u in utterances}
    assert client.of_type("partial")
    end = client.of_type("end")[0]
    assert end["complete"] and end["reason"] == "stopped by the client" and client.close_code == 1000
    job, result = stored(server, end["job"])
    assert job["status"] == "done" and job["stage"] == "done"
    assert [(u["start"], u["end"], u["text"]) for u in result["utterances"]] == [
        (u["start"], u["end"], u["text"]) for u in utterances]
    assert result["media"]["has_video"] and all("face" in u["modalities_used"] for u in result["utterances"][:2])
    page = httpx.get(f"{server.url}/analyses/{end['job']}", timeout=10)
    assert page.status_code == 200


def test_a_client_that_vanishes_keeps_what_was_finalised_and_the_job_says_cut_off(server: Server, demo: tuple) -> None:
    client = asyncio.run(session(server.url, *demo, speed=1.0, seconds=12.0, stop=False))
    seen = len(client.of_type("utterance"))
    assert seen >= 1
    deadline = time.monotonic() + 60
    while True:
        listed = httpx.get(f"{server.url}/v1/analyses?limit=100", timeout=10).json()["items"]
        cut = [j for j in listed if j["stage"] == "cut off"]
        if cut or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert cut, listed
    job, result = stored(server, cut[0]["id"])
    assert job["status"] == "done"
    assert len(result["utterances"]) >= seen
    assert result["settings"]["live"] == {**result["settings"]["live"], "complete": False,
                                          "ended": "client disconnected"}


def test_four_sessions_at_once_lose_nothing_and_a_fifth_is_told_to_retry(server: Server, demo: tuple) -> None:
    async def together() -> tuple[list[Client], object]:
        running = [asyncio.create_task(session(server.url, *demo, speed=4.0)) for _ in range(4)]
        await asyncio.sleep(2.0)
        try:
            await websockets.connect(server.url.replace("http", "ws") + "/v1/live")
            refused = None
        except websockets.InvalidStatus as err:
            refused = err.response
        return list(await asyncio.gather(*running)), refused

    clients, refused = asyncio.run(together())
    assert refused is not None and refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
    for client in clients:
        end = client.of_type("end")[0]
        assert end["complete"], end
        _, result = stored(server, end["job"])
        assert len(result["utterances"]) == len(client.of_type("utterance")) >= 3
    assert httpx.get(f"{server.url}/healthz", timeout=10).json()["jobs"]["running"] == 0


@pytest.mark.parametrize(("start", "extra", "code", "says"), [
    ("not json", [], 1003, "the first message must be JSON"),
    ({"type": "start", "audio": "mp3"}, [], 1003, "audio must be pcm16"),
    ({"type": "start", "audio": "pcm16", "partials": 0.01}, [], 1003, "partials must be a number of seconds"),
    (None, [b"\x07junk"], 1003, "unknown binary message kind 7"),
    (None, [json.dumps({"type": "dance"})], 1003, "a text message must be"),
    (None, [b"\x01" + bytes(5 << 20)], 1009, "a binary message must hold"),
])
def test_a_bad_message_is_a_one_line_end_and_a_close_code(server: Server, demo: tuple, start: object,
                                                          extra: list, code: int, says: str) -> None:
    async def run() -> Client:
        if isinstance(start, str):
            client = Client()
            async with websockets.connect(server.url.replace("http", "ws") + "/v1/live") as ws:
                await ws.send(start)
                try:
                    async for message in ws:
                        client.events.append(json.loads(message))
                except websockets.ConnectionClosed:
                    pass
                client.close_code = ws.close_code
            return client
        return await session(server.url, *demo, speed=4.0, seconds=3.0, start=start, extra=extra)

    client = asyncio.run(run())
    end = client.of_type("end")[-1]
    assert end["reason"].startswith(says) and "\n" not in end["reason"] and not end["complete"]
    assert client.close_code == code
    if end.get("job"):  # the session had begun: what it heard is stored
        job, _ = stored(server, end["job"])
        assert job["status"] == "done" and job["stage"] == "cut off"


def test_webm_opus_from_a_browser_recorder_is_decoded(server: Server, tmp_path: Path) -> None:
    import av

    webm = tmp_path / "speech.webm"
    samples = read_audio(DEMO)[: 16000 * 8]
    with av.open(str(webm), "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        frame = av.AudioFrame.from_ndarray((samples * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = 16000
        for piece in resampler.resample(frame):
            for packet in stream.encode(piece):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = webm.read_bytes()

    async def run() -> Client:
        client = Client()
        async with websockets.connect(server.url.replace("http", "ws") + "/v1/live") as ws:
            await ws.send(json.dumps({"type": "start", "audio": "webm", "name": "recorder"}))
            for i in range(0, len(data), 4000):  # MediaRecorder's timeslice pieces
                await ws.send(b"\x01" + data[i:i + 4000])
                await asyncio.sleep(0.02)
            await ws.send(json.dumps({"type": "stop"}))
            client.events = [json.loads(m) async for m in ws]
        return client

    client = asyncio.run(run())
    end = client.of_type("end")[0]
    assert end["complete"] and client.of_type("utterance"), client.events
    _, result = stored(server, end["job"])
    assert not result["media"]["has_video"] and result["utterances"]


def test_a_server_stopped_mid_session_stores_it(tmp_path: Path, demo: tuple) -> None:
    running = Server(tmp_path / "data", "--max-live-sessions", "1")
    running.start()

    async def run() -> Client:
        task = asyncio.create_task(session(running.url, *demo, speed=1.0))
        while True:
            await asyncio.sleep(0.5)
            done = list(running.data.glob("jobs/*/events.jsonl"))
            if done and '"utterance"' in done[0].read_text():
                break
        running.process.send_signal(signal.SIGTERM)
        return await task

    client = asyncio.run(run())
    # uvicorn ends gracefully, then raises the signal again, as a process stopped by it should
    assert running.process.wait(timeout=60) in (0, -signal.SIGTERM)
    end = client.of_type("end")[0]
    assert end["reason"] == "the server is shutting down" and not end["complete"]
    running.start()  # the job outlived the process, finished
    job, result = stored(running, end["job"])
    assert job["status"] == "done" and job["stage"] == "cut off"
    assert len(result["utterances"]) == len(client.of_type("utterance")) >= 1
    running.stop()


def test_a_client_that_does_not_read_is_closed_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events for a client that does not read wait up to EVENT_BACKLOG; the next one ends the
    session (its job is kept, cut off) with close code 1008 and the reason. Over a real socket
    the kernel's buffers hold megabytes first, so the bound is checked on the connection itself."""
    from moodlens.server import live

    monkeypatch.setattr(live, "EVENT_BACKLOG", 3)

    async def unread() -> tuple[live.LiveConnection, list[object]]:
        connection = live.LiveConnection(hub=None, websocket=None)  # the queueing needs neither
        for n in range(5):
            connection._queue_event({"type": "face", "n": n})
        return connection, [connection.inbox.get_nowait() for _ in range(connection.inbox.qsize())]

    connection, told = asyncio.run(unread())
    assert connection.outbox.qsize() == 3 and connection.ended.is_set() and told == [None]  # analysis told to end
    reason, complete, code = connection.ending
    assert code == live.POLICY and not complete and "read too slowly (3 events waiting)" in reason
