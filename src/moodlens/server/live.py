"""/v1/live: a live session over a WebSocket, on the same LiveSession as `moodlens live`.

The protocol (docs/live.md):
- the client's first message is JSON text: {"type": "start", "audio": "pcm16" | "webm", "video": bool,
  "name": str, "api_key": str, "partials": seconds}; the key may come as the X-API-Key header instead;
- then binary messages, whose first byte says what follows: 1, audio (16 kHz mono s16le PCM, or
  the next piece of a WebM/Opus stream from a browser's MediaRecorder); 2, a camera frame: its
  media time in seconds (float64, little-endian) and a JPEG;
- {"type": "stop"} ends the session; the server sends the same events as `moodlens live --events`,
  the `end` event naming the stored job, and closes.

Each session is a stored job (stage `live` while it runs). Whatever ends it, a stop, the client
going away, a bad message, a client too slow to read, the server shutting down, the speech already
heard is judged, the Analysis is written to the job, and the job says whether it was cut off.
Audio is never dropped; camera frames are, when the analysis falls behind, and a note says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import secrets
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from moodlens.events import JsonLines, event
from moodlens.media import SAMPLE_RATE, Frame
from moodlens.options import AnalyzeOptions
from moodlens.server.jobs import LIVE, JobStore
from moodlens.server.worker import RESULT_FORMATS, RESULT_NAME, job_folder

log = logging.getLogger(__name__)
AUDIO, FRAME = 1, 2  # the first byte of a binary message
AUDIO_FORMATS = ("pcm16", "webm")
MAX_MESSAGE_BYTES = 4 << 20  # one audio piece or one JPEG
MAX_START_BYTES = 4096
START_TIMEOUT_SECONDS = 10.0
EVENT_BACKLOG = 2000  # events held for a client that does not read them; past this it is closed
FRAME_BACKLOG = 16  # pieces waiting for the analysis, past which camera frames are dropped
RETRY_AFTER_SECONDS = 30
# close codes (RFC 6455 and the 4000-4999 private range)
GOING_AWAY, UNSUPPORTED, POLICY, TOO_BIG, SERVER_STOPPING, UNAUTHORISED = 1001, 1003, 1008, 1009, 1012, 4401


class BadMessage(Exception):
    def __init__(self, reason: str, code: int = UNSUPPORTED) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class StartMessage:
    audio: str
    video: bool
    name: str
    partials: float | None = None  # LiveOptions.partial_every


def parse_start(text: str, api_key: str | None, header_key: str | None,
                same: Callable[[str | None, str], bool]) -> StartMessage:
    """The first message, checked; BadMessage names what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError:
        raise BadMessage("the first message must be JSON: {\"type\": \"start\", ...}") from None
    if not isinstance(data, dict) or data.get("type") != "start":
        raise BadMessage("the first message must be {\"type\": \"start\", ...}")
    if api_key and not (same(header_key, api_key) or same(data.get("api_key"), api_key)):
        raise BadMessage("missing or wrong API key (X-API-Key header or api_key in the start message)", UNAUTHORISED)
    audio = data.get("audio", "pcm16")
    if audio not in AUDIO_FORMATS:
        raise BadMessage(f"audio must be pcm16 (16 kHz mono s16le) or webm (MediaRecorder), got {str(audio)[:40]!r}")
    video = data.get("video", False)
    name = data.get("name", "live session")
    if not isinstance(video, bool) or not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise BadMessage("video must be true or false, and name a short text")
    from moodlens.live import partials_problem

    partials = data.get("partials")
    if (problem := partials_problem(partials)) is not None:
        raise BadMessage(f"partials {problem}, or left out")
    return StartMessage(audio, video, name.strip(), None if partials is None else float(partials))


class PushedBytes:
    """A file that PyAV reads while a WebSocket fills it: read() waits for the next piece."""

    def __init__(self) -> None:
        self.pieces: queue.Queue[bytes | None] = queue.Queue()
        self.rest = b""

    def feed(self, data: bytes | None) -> None:
        self.pieces.put(data)  # None: no more

    def read(self, size: int = -1) -> bytes:
        while not self.rest:
            piece = self.pieces.get()
            if piece is None:
                self.pieces.put(None)
                return b""
            self.rest = piece
        size = len(self.rest) if size < 0 else size
        out, self.rest = self.rest[:size], self.rest[size:]
        return out


class LiveHub:
    """The live sessions of one server: the models, loaded once and shared, and at most `limit`
    sessions at a time."""

    def __init__(self, store: JobStore, data_dir: Path, options: AnalyzeOptions, limit: int) -> None:
        self.store, self.data_dir, self.options, self.limit = store, data_dir, options, limit
        self.active: set[LiveConnection] = set()
        self._models: Any = None
        self._loading = threading.Lock()

    def models(self) -> Any:
        from moodlens.live import LiveModels

        with self._loading:
            if self._models is None:
                self._models = LiveModels(self.options)
            return self._models

    def warm(self) -> None:
        if self.limit > 0:
            threading.Thread(target=self.models, name="moodlens-live-models", daemon=True).start()

    def end_orphans(self) -> int:
        """Live jobs a crash left running: their events are on disk, the session is gone."""
        return self.store.end_live("the server stopped during the live session; the events it sent are in "
                                   "events.jsonl")

    async def serve(self, websocket: WebSocket, api_key: str | None, same: Callable[[str | None, str], bool]) -> None:
        if len(self.active) >= self.limit:
            await websocket.send_denial_response(JSONResponse(
                {"error": f"all {self.limit} live sessions are in use; try again later"}, status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)}))
            return
        await websocket.accept()
        connection = LiveConnection(self, websocket)
        self.active.add(connection)
        try:
            await connection.run(api_key, same)
        finally:
            self.active.discard(connection)

    async def close_all(self, reason: str, timeout: float = 60.0) -> None:
        """End every session (the server is stopping): each is judged, stored, and sent its `end`
        before its socket closes. Called before uvicorn closes the connections itself."""
        connections = list(self.active)
        for connection in connections:
            connection.stop(reason)
        await asyncio.wait_for(asyncio.gather(*(c.closed.wait() for c in connections)), timeout)


class LiveConnection:
    """One WebSocket's session: a receiving loop here, the analysis on a thread of its own."""

    def __init__(self, hub: LiveHub, websocket: WebSocket) -> None:
        self.hub, self.websocket = hub, websocket
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.job_id = secrets.token_hex(16)
        self.ended = asyncio.Event()
        self.closed = asyncio.Event()
        self.receiving: asyncio.Task | None = None
        self.ending: tuple[str, bool, int] | None = None  # reason, complete, close code
        self.dropped = 0
        self.samples = 0
        self.webm: PushedBytes | None = None
        self.thread: threading.Thread | None = None
        self.sink: JsonLines | None = None

    async def run(self, api_key: str | None, same: Callable[[str | None, str], bool]) -> None:
        sender = asyncio.create_task(self._send())
        try:
            try:
                first = await asyncio.wait_for(self.websocket.receive(), START_TIMEOUT_SECONDS)
            except TimeoutError:
                raise BadMessage(f"no start message within {START_TIMEOUT_SECONDS:g} s", POLICY) from None
            if first["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(first.get("code", 1000))
            text = first.get("text")
            if text is None:
                raise BadMessage("the first message must be JSON text: {\"type\": \"start\", ...}")
            if len(text) > MAX_START_BYTES:
                raise BadMessage("the start message is too big", TOO_BIG)
            start = parse_start(text, api_key, self.websocket.headers.get("x-api-key"), same)
            await self._begin(start)
            self.receiving = asyncio.create_task(self._receive(start))
            with contextlib.suppress(asyncio.CancelledError):  # stop(): the server is stopping
                await self.receiving
        except BadMessage as err:
            if self.thread is None:  # nothing started: no job, just say why
                self._emit(event("end", reason=str(err), complete=False, duration=0.0, utterances=0, job=None))
                self.ending = (str(err), False, err.code)
            else:
                await self.end(str(err), complete=False, code=err.code)
        except WebSocketDisconnect as gone:
            # 1012: uvicorn closing every connection as the server stops
            await self.end("the server is shutting down" if gone.code == SERVER_STOPPING else "client disconnected",
                           complete=False)
        finally:
            if self.thread is not None:
                await self.end("client disconnected", complete=False)
                await asyncio.to_thread(self.thread.join)
            # after every event already handed to the loop (they come by call_soon_threadsafe)
            self.loop.call_soon(self.outbox.put_nowait, None)
            await sender
            with contextlib.suppress(Exception):
                code = self.ending[2] if self.ending else 1000
                await self.websocket.close(code, (self.ending[0] if self.ending else "")[:120])
            self.closed.set()

    async def _begin(self, start: StartMessage) -> None:
        folder = job_folder(self.hub.data_dir, self.job_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.sink = JsonLines(folder / "events.jsonl")
        if start.audio == "webm":
            self.webm = PushedBytes()
        await asyncio.to_thread(self.hub.store.create, start.name, 0, self.job_id, "running", LIVE)
        models = await asyncio.to_thread(self.hub.models)
        self.thread = threading.Thread(target=self._analyse, args=(models, start), name="moodlens-live",
                                       daemon=True)
        self.thread.start()

    async def _receive(self, start: StartMessage) -> None:
        while not self.ended.is_set():
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            data, text = message.get("bytes"), message.get("text")
            if text is not None:
                try:
                    kind = json.loads(text).get("type")
                except (ValueError, AttributeError):
                    kind = None
                if kind == "stop":
                    await self.end("stopped by the client", complete=True)
                    return
                raise BadMessage("a text message must be {\"type\": \"stop\"}")
            if not data or len(data) > MAX_MESSAGE_BYTES:
                raise BadMessage(f"a binary message must hold 1 to {MAX_MESSAGE_BYTES} bytes",
                                 TOO_BIG if data else UNSUPPORTED)
            if data[0] == AUDIO:
                self._audio(data[1:], start)
            elif data[0] == FRAME and start.video:
                if len(data) < 9:
                    raise BadMessage("a frame message is 1, its time (float64) and a JPEG")
                if self.inbox.qsize() > FRAME_BACKLOG:
                    self.dropped += 1
                    if self.dropped % 10 == 1:
                        self.inbox.put(("note", f"analysis behind: {self.dropped} camera frames dropped so far "
                                                "(audio is never dropped)"))
                    continue
                (at,) = struct.unpack("<d", data[1:9])
                self.inbox.put(("jpeg", at, data[9:]))
            else:
                raise BadMessage(f"unknown binary message kind {data[0]} (1: audio, 2: a frame, with video: true)")

    def _audio(self, payload: bytes, start: StartMessage) -> None:
        from moodlens.sources import AudioChunk

        if start.audio == "webm":
            assert self.webm is not None
            self.webm.feed(payload)
            return
        if len(payload) % 2:
            raise BadMessage("pcm16 audio must be whole 16-bit samples")
        samples = np.frombuffer(payload, "<i2").astype(np.float32) / 32768.0
        self.inbox.put(AudioChunk(self.samples / SAMPLE_RATE, samples))
        self.samples += samples.size

    def stop(self, reason: str) -> None:
        """End the session from outside (the server is stopping); `closed` is set once it is stored
        and its client told."""
        self.ending = self.ending or (reason, False, GOING_AWAY)
        self.inbox.put(None)
        if self.webm is not None:
            self.webm.feed(None)
        self.ended.set()
        if self.receiving is not None:
            self.receiving.cancel()

    async def end(self, reason: str, complete: bool, code: int = 1000) -> None:
        """Stop taking input; the analysis thread judges what is open, stores the job, sends `end`."""
        if self.ending is None:
            self.ending = (reason, complete, code)
            self.inbox.put(None)
            if self.webm is not None:
                self.webm.feed(None)
        self.ended.set()
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join)

    def _emit(self, data: dict[str, Any]) -> None:
        if self.sink is not None:
            self.sink(data)
        self.loop.call_soon_threadsafe(self._queue_event, data)

    def _queue_event(self, data: dict[str, Any]) -> None:
        if self.outbox.qsize() >= EVENT_BACKLOG:
            if self.ending is None:  # a client that does not read: end the session, keep its job
                self.ending = (f"the client read too slowly ({EVENT_BACKLOG} events waiting)", False, POLICY)
                self.inbox.put(None)
                self.ended.set()
            return
        self.outbox.put_nowait(data)

    async def _send(self) -> None:
        while (data := await self.outbox.get()) is not None:
            try:
                await self.websocket.send_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
            except Exception:  # the client is gone: what is left goes to the job's events.jsonl only
                self.ended.set()

    def _analyse(self, models: Any, start: StartMessage) -> None:
        """The analysis thread: feed the session, then store its Analysis in the job."""
        from moodlens.live import LiveOptions, LiveSession, end_event
        from moodlens.sources import AudioChunk, Ended, Opened, Source, SourceReader
        from moodlens.writers import write

        opened = Opened(True, start.video, f"websocket {start.audio}", None, None, None, start.audio, "jpeg")
        session = LiveSession(models, start.name, opened, self._emit,
                              LiveOptions(models.options, partial_every=start.partials))
        reader = None
        if self.webm is not None:
            reader = SourceReader(Source(start.name, "", "webm", "stdin", stream=self.webm), stall_timeout=3600)
            threading.Thread(target=self._pump, args=(reader,), daemon=True).start()
        failure = None
        try:
            while (item := self.inbox.get()) is not None:
                if isinstance(item, AudioChunk):
                    session.feed_audio(item)
                elif isinstance(item, Ended):
                    if item.error:
                        failure = f"the WebM audio could not be read ({item.error})"
                        break
                elif item[0] == "jpeg":
                    image = _decode_jpeg(item[2], models.options.max_side)
                    if image is None:
                        session.note(f"a camera frame at {item[1]:.2f} s is not a JPEG; skipped")
                    else:
                        session.feed_frame(Frame(max(0.0, item[1]), image))
                elif item[0] == "note":
                    session.note(item[1])
        except Exception as err:  # a failure in the analysis must still store what was finalised
            log.exception("live session %s failed", self.job_id)
            failure = f"analysis failed ({type(err).__name__}: {err})"
        if reader is not None:
            reader.stop()
        reason, complete, _ = self.ending or ("stopped", True, 1000)
        if failure:
            reason, complete = failure, False
            self.ending = (reason, False, 1011)
        analysis = session.finish(reason, complete=complete)
        folder = job_folder(self.hub.data_dir, self.job_id)
        write(analysis, folder, list(RESULT_FORMATS), name=RESULT_NAME)
        self.hub.store.finish(self.job_id, stage="done" if complete else "cut off")
        done = end_event(analysis, [f"/v1/analyses/{self.job_id}/{v}" for v in ("result", "result.csv", "result.srt")],
                         job=self.job_id)
        self._emit({**done, "result_page": f"/analyses/{self.job_id}"})
        if self.sink is not None:
            self.sink.close()

    def _pump(self, reader: Any) -> None:
        """WebM pieces decoded by PyAV on a thread of its own, into the analysis queue."""
        from moodlens.errors import SourceError
        from moodlens.sources import Ended

        try:
            reader.open()
        except SourceError as err:
            self.inbox.put(Ended(err.reason))
            return
        for item in reader.items(lambda: self.ending is not None):
            self.inbox.put(item)


def _decode_jpeg(data: bytes, max_side: int) -> np.ndarray | None:
    """An RGB image no larger than `max_side`, as media.sample_frames gives; None if not a JPEG."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    return np.ascontiguousarray(image[:, :, ::-1])

