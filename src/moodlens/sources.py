"""Live sources: a capture device, a network stream, standard input or a file still being written.

One demuxing pass on a thread of its own decodes the audio once, to 16 kHz mono, and samples the
video at N fps; both go, in arrival order, into a bounded queue that the analysis reads. When the
analysis falls behind a source that will not wait (a camera, a network stream), camera frames are
dropped and counted; audio never is.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import av
import av.error
import numpy as np

from moodlens.errors import SourceError
from moodlens.media import SAMPLE_RATE, Frame, audio_stream, ffmpeg_reason, to_rgb, video_stream

STDIN = "-"
# FFmpeg's capture formats, named as `FORMAT:DEVICE` (v4l2:/dev/video0, alsa:default, pulse:default,
# avfoundation:0:0, dshow:video=Camera); lavfi builds a test signal (lavfi:sine=frequency=440)
DEVICE_FORMATS = frozenset({"v4l2", "video4linux2", "alsa", "pulse", "oss", "jack", "avfoundation", "dshow",
                            "gdigrab", "x11grab", "fbdev", "lavfi", "sndio", "openal", "kmsgrab"})
NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "hls", "srt", "udp", "tcp", "rtp"})
OPEN_TIMEOUT_SECONDS = 15.0
STALL_TIMEOUT_SECONDS = 10.0
QUEUE_ITEMS = 1024  # decoded pieces held (audio arrives some 40 pieces a second)
FRAME_BACKLOG = 32  # a source that will not wait: camera frames are dropped past this many queued items
PROBE_BYTES = "65536"  # FFmpeg reads this much before it starts (5 MB by default: minutes of a live stream)
GAP_SECONDS = 0.05  # audio that resumes later than this after where it left off: the gap is filled
PROBE_MICROSECONDS = "500000"  # and reads for at most this much media time


@dataclass(frozen=True)
class Source:
    """What the user named, and how FFmpeg opens it."""

    name: str
    url: str
    format: str | None
    kind: str  # device, network, stdin or file
    options: dict[str, str] = field(default_factory=dict)
    stream: Any = None  # a file object to read instead of `url` (a WebSocket's WebM, say)

    @property
    def waits(self) -> bool:
        """Whether it waits for a slow reader (a file, or a pipe whose writer blocks) rather
        than losing what it produces in the meantime (a device, a network stream)."""
        return self.kind in ("file", "stdin")


@dataclass(frozen=True)
class AudioChunk:
    time: float  # seconds from the stream's first packet to this chunk's first sample
    samples: np.ndarray  # 16 kHz mono float32


@dataclass(frozen=True)
class Opened:
    has_audio: bool
    has_video: bool
    container: str
    width: int | None
    height: int | None
    fps: float | None
    audio_codec: str | None
    video_codec: str | None


@dataclass(frozen=True)
class Ended:
    error: str | None = None  # None: the stream ended as streams do


def parse_source(spec: str, follow: bool = False) -> Source:
    """`-` (standard input), FORMAT:DEVICE, a URL, or a path (`follow`: keep reading as it grows)."""
    spec = spec.strip()
    if not spec:
        raise SourceError("(empty)", "no source given")
    if spec == STDIN:
        return Source("standard input", "pipe:0", None, "stdin")
    head, sep, rest = spec.partition(":")
    if sep and head.lower() in DEVICE_FORMATS:
        return Source(spec, rest, "video4linux2" if head.lower() == "v4l2" else head.lower(), "device")
    if sep and rest.startswith("//") and head.lower() in NETWORK_SCHEMES:
        return Source(spec, spec, None, "network")
    if sep and rest.startswith("//"):
        raise SourceError(spec, f"unknown scheme {head}: (use rtsp, rtmp, http(s), srt, udp or tcp)")
    options = {"follow": "1"} if follow else {}
    return Source(spec, f"file:{spec}", None, "file", options)


class SourceReader:
    """Open a source and read it on a thread of its own; `items()` yields what it decoded."""

    def __init__(self, source: Source, fps: float = 2.0, max_side: int = 640,
                 open_timeout: float = OPEN_TIMEOUT_SECONDS, stall_timeout: float = STALL_TIMEOUT_SECONDS) -> None:
        self.source = source
        self.fps, self.max_side = fps, max_side
        self.open_timeout, self.stall_timeout = open_timeout, stall_timeout
        self.queue: queue.Queue[AudioChunk | Frame | Opened | Ended] = queue.Queue(QUEUE_ITEMS)
        self.stopping = threading.Event()
        self.dropped_frames = 0
        self.bad_packets = 0
        self.bytes_read = 0
        self.thread = threading.Thread(target=self._run, name="moodlens-source", daemon=True)

    def open(self) -> Opened:
        """Start reading; what the source holds, once FFmpeg has opened it. SourceError when it
        cannot be, or says nothing within `open_timeout` (the thread is left to die with its read)."""
        self.thread.start()
        try:
            first = self.queue.get(timeout=self.open_timeout)
        except queue.Empty:
            self.stopping.set()
            raise SourceError(self.source.name, f"nothing readable arrived within {self.open_timeout:g} s") from None
        if isinstance(first, Ended):
            raise SourceError(self.source.name, first.error or "ended before anything could be read")
        assert isinstance(first, Opened)
        return first

    def stop(self) -> None:
        self.stopping.set()

    def items(self, interrupted: Callable[[], bool] = lambda: False) -> Iterator[AudioChunk | Frame | Ended]:
        """What the thread decoded, in order, until the stream ends, fails, stalls (an Ended with
        the reason), or `interrupted()` turns true (then it returns)."""
        last = time.monotonic()
        while not interrupted():
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() - last > self.stall_timeout:
                    self.stopping.set()
                    yield Ended(f"stalled: nothing arrived for {self.stall_timeout:g} s")
                    return
                continue
            last = time.monotonic()
            if isinstance(item, Opened):
                continue
            yield item
            if isinstance(item, Ended):
                return

    def _put(self, item: AudioChunk | Frame | Opened | Ended) -> bool:
        """Queue it, waiting while the queue is full; False once told to stop."""
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            container = self._open_container()
        except SourceError as err:
            self._put(Ended(err.reason))
            return
        try:
            self._read(container)
        except av.error.FFmpegError as err:
            self._put(Ended(f"reading failed ({ffmpeg_reason(err)})"))
        except Exception as err:  # a decoder bug must end the stream with its reason, not hang the reader
            self._put(Ended(f"reading failed ({type(err).__name__}: {err})"))
        finally:
            container.close()

    def _open_container(self) -> av.container.InputContainer:
        source = self.source
        options = {"probesize": PROBE_BYTES, "analyzeduration": PROBE_MICROSECONDS, **source.options}
        if source.kind == "network":
            options.setdefault("rw_timeout", str(int(self.stall_timeout * 1e6)))
        try:
            target = source.stream if source.stream is not None else source.url
            container = av.open(target, mode="r", format=source.format, options=options,
                                timeout=(self.open_timeout, self.stall_timeout) if source.kind == "network" else None,
                                metadata_errors="ignore")
        except av.error.FileNotFoundError:
            raise SourceError(source.name, "no such device or file") from None
        except av.error.FFmpegError as err:
            what = {"device": "cannot open the device", "network": "the stream does not answer",
                    "stdin": "not a media stream", "file": "not a readable media stream"}[source.kind]
            raise SourceError(source.name, f"{what} ({ffmpeg_reason(err)})") from None
        except (OSError, ValueError) as err:
            raise SourceError(source.name, f"cannot be opened ({err})") from None
        audio, video = audio_stream(container), video_stream(container)
        if audio is None and video is None:
            container.close()
            raise SourceError(source.name, "has no audio or video stream")
        return container

    def _read(self, container: av.container.InputContainer) -> None:
        audio, video = audio_stream(container), video_stream(container)
        if not self._put(Opened(
                audio is not None, video is not None, container.format.name,
                video.codec_context.width if video else None, video.codec_context.height if video else None,
                float(video.average_rate) if video and video.average_rate else None,
                audio.codec_context.name if audio else None, video.codec_context.name if video else None)):
            return
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        origin: float | None = None  # the first packet's time: media time 0
        audio_start: float | None = None
        audio_samples = 0
        next_frame = 0.0
        step = 1.0 / self.fps
        for packet in container.demux([s for s in (audio, video) if s is not None]):
            if self.stopping.is_set():
                return
            self.bytes_read += packet.size
            if origin is None and packet.pts is not None and packet.time_base:
                origin = float(packet.pts * packet.time_base)
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                self.bad_packets += 1
                continue
            for frame in frames:
                if frame.time is None:
                    continue
                at = float(frame.time) - (origin or 0.0)
                if isinstance(frame, av.AudioFrame):
                    if audio_start is None:
                        audio_start = max(0.0, at)
                    gap = at - (audio_start + audio_samples / SAMPLE_RATE)
                    if gap > GAP_SECONDS:  # lost or missing audio: silence keeps the clock true
                        silence = AudioChunk(audio_start + audio_samples / SAMPLE_RATE,
                                             np.zeros(round(gap * SAMPLE_RATE), np.float32))
                        audio_samples += silence.samples.size
                        if not self._put(silence):
                            return
                    for out in resampler.resample(frame):
                        samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                        chunk = AudioChunk(audio_start + audio_samples / SAMPLE_RATE, samples)
                        audio_samples += samples.size
                        if not self._put(chunk):
                            return
                elif at + 1e-6 >= next_frame:
                    next_frame = max(next_frame + step, at - step / 2)
                    if not self.source.waits and self.queue.qsize() >= FRAME_BACKLOG:
                        self.dropped_frames += 1
                        continue
                    if not self._put(Frame(max(0.0, at), to_rgb(frame, self.max_side))):
                        return
        if audio is not None:
            for out in resampler.resample(None):
                self._put(AudioChunk((audio_start or 0.0) + audio_samples / SAMPLE_RATE,
                                     out.to_ndarray().reshape(-1).astype(np.float32, copy=False)))
        self._put(Ended())


def replay(path: str, sink: BinaryIO, speed: float = 1.0, repeat: int = 1, container_format: str = "mpegts",
           sent: Callable[[float, float], None] | None = None) -> float:
    """Write the media file `path` to `sink` as a live stream would arrive: each packet remuxed (not
    re-encoded) into `container_format` and flushed at once, in decoding-time order, at `speed` times
    real time (0: as fast as the sink takes it), the whole file `repeat` times over.
    `sent(media_time, monotonic_time)` is told after each packet; returns the media seconds sent.
    For tests, benchmarks and demos: `moodlens live -` reads what it writes.

    MPEG-TS by default: it writes each packet as it comes, where Matroska holds a cluster back."""
    began = time.monotonic()
    offset = 0.0
    with av.open(sink, "w", format=container_format, options={"flush_packets": "1"}) as target:
        outputs: dict[int, av.stream.Stream] = {}
        for _ in range(repeat):
            with av.open(path) as source:
                streams = [s for s in (audio_stream(source), video_stream(source)) if s is not None]
                if not outputs:
                    outputs = {s.index: target.add_stream_from_template(s) for s in streams}
                first = _earliest(path)
                length = 0.0
                for at, packet in _by_decoding_time(source.demux(streams)):
                    base = packet.time_base
                    length = max(length, float(packet.pts * base) - first + float((packet.duration or 0) * base))
                    if speed > 0:
                        time.sleep(max(0.0, began + (offset + at - first) / speed - time.monotonic()))
                    shift = round((offset - first) / base)
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    packet.stream = outputs[packet.stream.index]
                    target.mux(packet)
                    if sent is not None:
                        sent(offset + at - first, time.monotonic())
            offset += length
    return offset


REORDER_SECONDS = 3.0  # how far a file's interleaving may run one stream ahead of another


def _by_decoding_time(packets: Iterator[av.Packet]) -> Iterator[tuple[float, av.Packet]]:
    """(dts in seconds, packet) in dts order across streams. A file may store one stream's packets
    a second or more ahead of another's; sent in file order, the later stream would arrive that
    much late."""
    held: list[tuple[float, int, av.Packet]] = []
    for count, packet in enumerate(packets):
        if packet.dts is None or packet.pts is None:
            continue
        at = float(packet.dts * packet.time_base)
        heapq.heappush(held, (at, count, packet))
        while held and at - held[0][0] > REORDER_SECONDS:
            first, _, out = heapq.heappop(held)
            yield first, out
    while held:
        first, _, out = heapq.heappop(held)
        yield first, out


def _earliest(path: str) -> float:
    """The earliest timestamp of any stream's first packets (AAC's priming begins before 0, which
    the container's start time does not say), so a replay's next pass never goes back in time."""
    seen: dict[int, float] = {}
    with av.open(path) as source:
        streams = [s for s in (audio_stream(source), video_stream(source)) if s is not None]
        for packet in source.demux(streams):
            if packet.pts is not None and packet.dts is not None:
                at = float(min(packet.pts, packet.dts) * packet.time_base)
                seen[packet.stream.index] = min(at, seen.get(packet.stream.index, at))
            if len(seen) == len(streams) and packet.stream.type == "audio" and len(seen) > 0:
                break
    return min(seen.values(), default=0.0)
