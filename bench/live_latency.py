"""Latency of live analysis: a recording fed at real-time pace to `moodlens live -` on standard
input, or to `moodlens serve`'s /v1/live WebSocket.

    .venv/bin/python bench/live_latency.py [--via stdin websocket] [--minutes 1] [--sessions 1 2]
        [--bf16 auto 0 1 avx2] [--speed 1] [--modalities text,face,voice] [--media examples/demo.mp4]

The media (the demo by default, repeated to fill --minutes) is remuxed to MPEG-TS and written to
the process's standard input packet by packet, each at the moment its decoding time comes round
(moodlens.sources.replay). Per utterance, the latency is the wall time from the moment its last
audio sample was sent (its `end` in media time, after the stream's first packet) to the moment
its `utterance` event arrived on standard output. The stream starts only once the process says
its models are loaded. Over the WebSocket, the client sends 16 kHz PCM in 0.1 s pieces and a JPEG
frame every 0.4 s, as the Live page does, and the latency runs from the moment the piece holding
the utterance's last sample was sent.

It prints, per configuration: p50, p95 and max latency; the mean latency over the first and the
last minute (the lag must not grow); how long after the last packet the `end` event came; and
the process's peak memory by 1, 10 and 30 minutes of media, with its level (the median over the
minute before each: a leak raises the level, a passing peak does not). --sessions N runs N processes at once,
each fed its own stream, with the cores split between them (MOODLENS_THREADS); over the WebSocket,
N sessions of one server, which judges one utterance at a time:
the largest N that keeps p50 <= 1.0 s and p95 <= 2.0 s is how many live sessions the machine holds.
--speed 4 feeds four times faster than real time: for the memory curve of a long stream, not latency.
--bf16 avx2 runs the process as an AVX2-only CPU would (no AVX-512, no bf16; moodlens.runtime.AVX2_ONLY).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.mp4"
MARKS = (60.0, 600.0, 1800.0)  # media seconds at which peak memory is reported
P50_TARGET, P95_TARGET = 1.0, 2.0


@dataclass
class Session:
    process: subprocess.Popen
    events: list[tuple[float, dict]] = field(default_factory=list)
    memory: list[tuple[float, float]] = field(default_factory=list)  # (media seconds sent, RSS MB)
    origin: float | None = None  # monotonic time at which media time 0 was sent
    media_sent: float = 0.0
    last_sent: float = 0.0
    stderr: list[str] = field(default_factory=list)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def numeric_env(bf16: str) -> dict[str, str]:
    """The environment of a --bf16 choice: auto, 0 or 1 (MOODLENS_BF16), or avx2 (this CPU acting as
    an AVX2-only one, bf16 off: runtime.AVX2_ONLY)."""
    from moodlens.runtime import AVX2_ONLY

    return AVX2_ONLY if bf16 == "avx2" else {} if bf16 == "auto" else {"MOODLENS_BF16": bf16}


def _start(modalities: str, bf16: str, threads: int, out: Path, partials: float | None) -> Session:
    env = {**os.environ, "MOODLENS_THREADS": str(threads), **numeric_env(bf16)}
    process = subprocess.Popen(
        [sys.executable, "-m", "moodlens.cli", "live", "-", "--events", "-", "--out", str(out), "--format", "json",
         "--modalities", modalities, "--stall-timeout", "30",
         *(["--partials", str(partials)] if partials else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, bufsize=1)
    session = Session(process)

    def read_events() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            session.events.append((time.monotonic(), json.loads(line)))

    threading.Thread(target=read_events, daemon=True).start()
    return session


def _wait_ready(session: Session) -> None:
    assert session.process.stderr is not None
    for line in session.process.stderr:
        session.stderr.append(line)
        if line.startswith("ready"):
            break
    else:
        raise SystemExit("moodlens live exited before it was ready:\n" + "".join(session.stderr))

    def drain() -> None:
        assert session.process.stderr is not None
        for line in session.process.stderr:
            session.stderr.append(line)

    threading.Thread(target=drain, daemon=True).start()


def _feed(session: Session, media: Path, repeat: int, speed: float) -> None:
    from moodlens.sources import replay

    def sent(at: float, wall: float) -> None:
        if session.origin is None:
            session.origin = wall - at * (1 / speed if speed > 0 else 0)
        session.media_sent, session.last_sent = max(session.media_sent, at), wall

    assert session.process.stdin is not None
    try:
        replay(str(media), session.process.stdin.buffer, speed, repeat, sent=sent)
    finally:
        session.process.stdin.close()


def _watch_memory(sessions: list[Session], done: threading.Event) -> None:
    while not done.is_set():
        for s in sessions:
            rss = _rss_mb(s.process.pid)
            if rss is not None:
                s.memory.append((s.media_sent, rss))
        done.wait(1.0)


def run(media: Path, minutes: float, sessions: int, bf16: str, speed: float, modalities: str,
        partials: float | None = None) -> list[dict]:
    with av.open(str(media)) as container:
        length = float(container.duration or 0) / 1e6
    repeat = max(1, math.ceil(minutes * 60 / length))
    threads = max(1, (os.cpu_count() or 1) // sessions)
    with tempfile.TemporaryDirectory() as tmp:
        running = [_start(modalities, bf16, threads, Path(tmp) / str(i), partials) for i in range(sessions)]
        for s in running:
            _wait_ready(s)
        done = threading.Event()
        watcher = threading.Thread(target=_watch_memory, args=(running, done), daemon=True)
        watcher.start()
        feeders = [threading.Thread(target=_feed, args=(s, media, repeat, speed)) for s in running]
        for f in feeders:
            f.start()
        for f in feeders:
            f.join()
        for s in running:
            s.process.wait(timeout=600)
        done.set()
        watcher.join()
        time.sleep(0.2)  # the reader threads' last lines
    return [_measure(s, speed) for s in running]


def run_websocket(media: Path, minutes: float, sessions: int, bf16: str, speed: float, modalities: str,
                  partials: float | None = None) -> list[dict]:
    """N WebSocket sessions of one `moodlens serve` process, each sent the media's audio and frames."""
    import asyncio

    import cv2
    import httpx
    import numpy as np
    import websockets

    from moodlens.media import read_audio, sample_frames

    audio = (np.clip(read_audio(media), -1, 1) * 32767).astype("<i2")
    frames = [(f.time, cv2.imencode(".jpg", f.image[:, :, ::-1])[1].tobytes()) for f in sample_frames(media, 2.5, 640)]
    length = audio.size / 16000
    repeat = max(1, math.ceil(minutes * 60 / length))
    env = {**os.environ, **numeric_env(bf16)}
    with tempfile.TemporaryDirectory() as tmp:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "moodlens.cli", "serve", "--port", str(port), "--data-dir", tmp,
                   "--max-live-sessions", str(sessions)]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"ws://127.0.0.1:{port}/v1/live"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["ready"]:
                        break
                except (httpx.HTTPError, ValueError):
                    time.sleep(0.5)
            running = [Session(server) for _ in range(sessions)]

            async def one(session: Session, warm_only: bool = False) -> None:
                async with websockets.connect(url, max_size=None) as ws:
                    await ws.send(json.dumps({"type": "start", "audio": "pcm16", "video": not warm_only,
                                              "name": "bench", "partials": partials}))

                    async def receive() -> None:
                        async for message in ws:
                            session.events.append((time.monotonic(), json.loads(message)))

                    reader = asyncio.create_task(receive())
                    if not warm_only:
                        await _send_stream(ws, session, audio, frames, repeat, speed)
                    await ws.send(json.dumps({"type": "stop"}))
                    await reader

            asyncio.run(one(Session(server), warm_only=True))  # the live models load at the first session
            done = threading.Event()
            watcher = threading.Thread(target=_watch_memory, args=(running, done), daemon=True)
            watcher.start()

            async def together() -> None:
                await asyncio.gather(*(one(s) for s in running))

            asyncio.run(together())
            done.set()
            watcher.join()
        finally:
            server.terminate()
            server.wait(timeout=60)
    for s in running:
        s.process = _Exited()
    return [_measure(s, speed) for s in running]


class _Exited:
    returncode = 0


async def _send_stream(ws: object, session: Session, audio: object, frames: list[tuple[float, bytes]], repeat: int,
                       speed: float) -> None:
    import asyncio
    import struct

    step = 1600
    began = time.monotonic()
    session.origin = began
    length = audio.size / 16000
    for copy in range(repeat):
        shown = 0
        for i in range(0, audio.size, step):
            at = copy * length + i / 16000
            if speed > 0:
                await asyncio.sleep(max(0.0, began + at / speed - time.monotonic()))
            await ws.send(b"\x01" + audio[i:i + step].tobytes())
            session.media_sent, session.last_sent = at + min(step, audio.size - i) / 16000, time.monotonic()
            while shown < len(frames) and frames[shown][0] <= i / 16000:
                await ws.send(b"\x02" + struct.pack("<d", copy * length + frames[shown][0]) + frames[shown][1])
                shown += 1


def _measure(session: Session, speed: float) -> dict:
    assert session.origin is not None
    pace = 1 / speed if speed > 0 else 0.0
    latencies = [(e["end"], wall - (session.origin + e["end"] * pace)) for wall, e in session.events
                 if e["type"] == "utterance"]
    ends = [wall for wall, e in session.events if e["type"] == "end"]
    values = sorted(v for _, v in latencies)
    # a partial's words are as fresh as the last audio it read
    partials = sorted(wall - (session.origin + e["end"] * pace) for wall, e in session.events if e["type"] == "partial")
    first = [v for at, v in latencies if at <= 60]
    last = [v for at, v in latencies if at >= session.media_sent - 60]

    def peak(mark: float) -> float | None:
        seen = [rss for at, rss in session.memory if at <= mark]
        return round(max(seen), 1) if seen and session.media_sent >= mark * 0.95 else None

    def level(mark: float) -> float | None:
        """The median over the minute of media before `mark`: a leak raises it, a passing peak
        (one long utterance's buffers) does not."""
        seen = [rss for at, rss in session.memory if mark - 60.0 < at <= mark]
        return round(statistics.median(seen), 1) if seen and session.media_sent >= mark * 0.95 else None

    highest = max(session.memory, key=lambda sample: sample[1], default=None)

    return {
        "utterances": len(values),
        "p50": round(statistics.median(values), 3) if values else None,
        "p95": round(values[min(len(values) - 1, int(0.95 * len(values)))], 3) if values else None,
        "max": round(values[-1], 3) if values else None,
        "first_minute": round(statistics.mean(first), 3) if first else None,
        "last_minute": round(statistics.mean(last), 3) if last else None,
        "end_after_last_packet": round(ends[0] - session.last_sent, 3) if ends else None,
        "peak_mb": {f"{int(m // 60)} min": peak(m) for m in MARKS},
        "level_mb": {f"{int(m // 60)} min": level(m) for m in MARKS},
        "peak_at_min": round(highest[0] / 60, 1) if highest else None,
        "media_seconds": round(session.media_sent, 1),
        "partials": len(partials),
        "partial_p50": round(statistics.median(partials), 3) if partials else None,
        "partial_p95": round(partials[min(len(partials) - 1, int(0.95 * len(partials)))], 3) if partials else None,
        "exit": session.process.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEMO)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1])
    parser.add_argument("--bf16", nargs="+", default=["auto"], choices=("auto", "0", "1", "avx2"))
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--modalities", default="text,face,voice")
    parser.add_argument("--via", nargs="+", default=["stdin"], choices=("stdin", "websocket"))
    parser.add_argument("--partials", type=float, help="ask for partial events every this many seconds of speech")
    args = parser.parse_args()
    print(f"media {args.media.name}, {args.minutes:g} min at {args.speed:g}x real time, modalities "
          f"{args.modalities}, {os.cpu_count()} cores"
          + (f", partial events every {args.partials:g} s of speech" if args.partials else ""), flush=True)
    print("| via | sessions | bf16 | utterances | p50 s | p95 s | max s | first min s | last min s | end after s "
          "| peak MB (1 / 10 / 30 min) | level MB (1 / 10 / 30 min) | meets target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for via, bf16, sessions in itertools.product(args.via, args.bf16, args.sessions):
        measure = run if via == "stdin" else run_websocket
        results = measure(args.media, args.minutes, sessions, bf16, args.speed, args.modalities, args.partials)
        for r in results:
            meets = (r["p50"] is not None and r["p50"] <= P50_TARGET and r["p95"] <= P95_TARGET
                     and r["exit"] == 0)
            peaks, levels = (" / ".join("-" if v is None else f"{v:.0f}" for v in r[key].values())
                             for key in ("peak_mb", "level_mb"))
            print(f"| {via} | {sessions} | {bf16} | {r['utterances']} | {r['p50']} | {r['p95']} | {r['max']} "
                  f"| {r['first_minute']} | {r['last_minute']} | {r['end_after_last_packet']} | {peaks} | {levels} "
                  f"| {'yes' if meets else 'no'} |", flush=True)
            print(f"  (highest memory at {r['peak_at_min']} min of media)", flush=True)
            if r["partials"]:
                print(f"  ({via}, {sessions}, bf16 {bf16}: {r['partials']} partial events, each from the last audio "
                      f"it read: p50 {r['partial_p50']} s, p95 {r['partial_p95']} s)", flush=True)

if __name__ == "__main__":
    main()
