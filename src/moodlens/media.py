"""Media input: probe a file, stream its audio as 16 kHz mono, stream frames at N fps.

Everything here streams: neither the audio nor the frames of a whole video are ever held
in memory, so a two-hour file costs what a two-minute one does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from moodlens.errors import INCOMPLETE_MEDIA, InvalidMediaError, NoMediaError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
MEDIA_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".wmv", ".mpg", ".mpeg", ".ts",
     ".3gp", ".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".wma"}
)
# FFmpeg opens still images as one-frame "videos"; they are not something to analyse.
_IMAGE_FORMATS = frozenset({"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "gif", "webp_pipe",
                            "tiff_pipe", "svg_pipe", "gif_pipe"})


@dataclass(frozen=True)
class MediaInfo:
    path: str
    container: str
    duration: float
    size_bytes: int
    has_audio: bool
    has_video: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    rotation: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None


@dataclass(frozen=True)
class Frame:
    """One sampled video frame: RGB uint8, already rotated for display."""

    time: float
    image: np.ndarray


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InvalidMediaError(path, "file not found")
    if path.is_dir():
        raise InvalidMediaError(path, "is a folder, not a media file")
    if not path.is_file():
        raise InvalidMediaError(path, "is not a regular file (a device, pipe or socket)")
    if path.stat().st_size == 0:
        raise InvalidMediaError(path, "file is empty")


def _open(path: Path) -> av.container.InputContainer:
    _check_file(path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as err:
        raise InvalidMediaError(path, f"not a readable media file ({ffmpeg_reason(err)})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidMediaError(path, f"cannot be opened ({err})") from err
    if container.format.name in _IMAGE_FORMATS:
        container.close()
        raise InvalidMediaError(path, "is a still image, not audio or video")
    return container


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream: cover art in an audio file is a 'video' stream too, and a
    stream whose codec FFmpeg can't name (damaged headers) has no decoder at all."""
    still = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    return next((s for s in container.streams.video
                 if not s.disposition & still and s.codec_context is not None), None)


def audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    return next((s for s in container.streams.audio if s.codec_context is not None), None)


def ffmpeg_reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return text.split(":")[0].strip() if text else type(err).__name__


def probe(path: str | Path) -> MediaInfo:
    """Read container and stream metadata without decoding. Raises InvalidMediaError."""
    path = Path(path)
    with _open(path) as container:
        video = video_stream(container)
        audio = audio_stream(container)
        if video is None and audio is None:
            raise InvalidMediaError(path, "has no audio or video stream")
        duration = _duration(container)
        if duration <= 0:
            raise InvalidMediaError(path, "has no decodable duration (truncated or corrupt?)")
        info = MediaInfo(
            path=str(path),
            container=container.format.name,
            duration=duration,
            size_bytes=path.stat().st_size,
            has_audio=audio is not None,
            has_video=video is not None,
            width=video.codec_context.width if video else None,
            height=video.codec_context.height if video else None,
            fps=float(video.average_rate) if video and video.average_rate else None,
            rotation=_stream_rotation(video) if video else 0,
            video_codec=video.codec_context.name if video else None,
            audio_codec=audio.codec_context.name if audio else None,
            audio_sample_rate=audio.rate if audio else None,
            audio_channels=audio.channels if audio else None,
        )
    return info


def _duration(container: av.container.InputContainer) -> float:
    if container.duration:
        return container.duration / av.time_base
    best = 0.0
    for stream in container.streams:
        if stream.duration and stream.time_base:
            best = max(best, float(stream.duration * stream.time_base))
    return best


def _stream_rotation(stream: av.video.stream.VideoStream) -> int:
    # The rotation lives in the display matrix, which PyAV exposes on decoded frames only.
    try:
        frame = next(iter(stream.container.decode(stream)))
    except (StopIteration, av.error.FFmpegError):
        return 0
    return round(getattr(frame, "rotation", 0) or 0)


# Decoding goes on past damaged data, as FFmpeg-based players do: an undecodable packet is
# skipped and counted. It gives up on a stream only when nothing decodes for this long (in
# stream time), because by then the rest is not media: a wrong file glued on, or zeros.
GIVE_UP_SECONDS = 30.0
# Streams without timestamps count packets instead; a failing demuxer counts its retries.
GIVE_UP_PACKETS = 3000
GIVE_UP_DEMUX_ERRORS = 50


@dataclass
class DecodeDamage:
    """What decoding had to skip. Filled in while streaming; reported in notes and `media`."""

    audio_packets: int = 0
    audio_seconds: float = 0.0  # filled with silence, so later utterances keep their times
    video_packets: int = 0
    demux_errors: int = 0

    @property
    def any(self) -> bool:
        return bool(self.audio_packets or self.video_packets or self.demux_errors)

    def describe(self) -> str:
        lost = []
        if self.audio_packets:
            lost.append(f"{self.audio_seconds:.2f} s of audio")
        if self.video_packets:
            lost.append(f"{self.video_packets} frame{'s' if self.video_packets != 1 else ''}")
        if self.demux_errors:
            lost.append(f"{self.demux_errors} unreadable stretch{'es' if self.demux_errors != 1 else ''}")
        return " and ".join(lost) + " could not be decoded (skipped; the rest was analysed)"

    def merge(self, other: DecodeDamage) -> None:
        """Take in what another pass over the same file met. Every pass (speech recognition,
        voice, speakers) decodes the same packets, so a stretch two passes skipped is one
        stretch: each count is the larger of the two, not their sum."""
        self.audio_packets = max(self.audio_packets, other.audio_packets)
        self.audio_seconds = max(self.audio_seconds, other.audio_seconds)
        self.video_packets = max(self.video_packets, other.video_packets)
        self.demux_errors = max(self.demux_errors, other.demux_errors)

    def to_dict(self) -> dict[str, float | int]:
        return {"audio_packets": self.audio_packets, "audio_seconds": round(self.audio_seconds, 3),
                "video_packets": self.video_packets, "demux_errors": self.demux_errors}


class _GaveUp(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _packet_time(packet: av.Packet) -> float | None:
    if packet.pts is None or packet.time_base is None:
        return None
    return float(packet.pts * packet.time_base)


def _decode_concealing(
    container: av.container.InputContainer,
    stream: av.stream.Stream,
    on_skip: Callable[[av.Packet | None], None],
    before_decode: Callable[[float | None], None] | None = None,
) -> Iterator[av.AudioFrame | av.VideoFrame]:
    """Frames of one stream; a packet the demuxer or decoder rejects is skipped via on_skip.

    `before_decode` is told each packet's stream time just before it is decoded.

    Raises _GaveUp when nothing decodes for GIVE_UP_SECONDS of stream time (or GIVE_UP_PACKETS
    packets, or GIVE_UP_DEMUX_ERRORS demuxer errors in a row).
    """
    last_good: float | None = None  # stream time of the last packet that decoded
    bad_run = 0
    demux_errors_in_row = 0
    first_error = ""
    while True:
        try:
            for packet in container.demux(stream):
                demux_errors_in_row = 0
                time = _packet_time(packet)
                if before_decode is not None:
                    before_decode(time)
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as err:
                    first_error = first_error or ffmpeg_reason(err)
                    bad_run += 1
                    on_skip(packet)
                    stalled = (time - last_good if time is not None and last_good is not None
                               else None)
                    if (stalled is not None and stalled > GIVE_UP_SECONDS) or bad_run > GIVE_UP_PACKETS:
                        raise _GaveUp(f"nothing decodes after {last_good or 0.0:.1f} s "
                                      f"({first_error})") from None
                    continue
                if frames:
                    bad_run = 0
                    last_good = time if time is not None else last_good
                yield from frames
            return
        except av.error.FFmpegError as err:
            # The demuxer lost its place; asking again resumes after the bad data where it can.
            first_error = first_error or ffmpeg_reason(err)
            demux_errors_in_row += 1
            on_skip(None)
            if demux_errors_in_row > GIVE_UP_DEMUX_ERRORS:
                raise _GaveUp(f"the container cannot be read past this point ({first_error})") from None


def iter_audio(
    path: str | Path,
    chunk_seconds: float = 300.0,
    notes: list[str] | None = None,
    damage: DecodeDamage | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (offset_seconds, samples) chunks of 16 kHz mono float32 audio.

    Undecodable packets are skipped and replaced by silence of the same length, so the
    timeline stays true; `damage` counts them. If decoding gives up (see GIVE_UP_SECONDS)
    the stream ends with an INCOMPLETE_MEDIA note; if nothing at all decodes, it is an
    InvalidMediaError.
    """
    path = Path(path)
    damage = damage if damage is not None else DecodeDamage()
    chunk_len = int(chunk_seconds * SAMPLE_RATE)
    with _open(path) as container:
        stream = audio_stream(container)
        if stream is None:
            raise InvalidMediaError(path, "has no audio stream")
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pending: list[np.ndarray] = []
        pending_len = 0
        offset = 0
        start: float | None = None  # stream time of the first decoded sample
        skipped = [0.0]  # seconds of packets skipped since the last decoded frame
        # Input seconds consumed (decoded plus filled), counted before the resampler, whose
        # filter delay would otherwise read as a gap.
        consumed = [0.0]

        def on_skip(packet: av.Packet | None) -> None:
            if packet is None:
                damage.demux_errors += 1
                return
            damage.audio_packets += 1
            if packet.duration and packet.time_base:
                skipped[0] += float(packet.duration * packet.time_base)

        def samples_of(frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1)

        def gap_before(frame: av.AudioFrame) -> np.ndarray | None:
            """Silence standing in for skipped packets, sized by the timestamps where they exist."""
            if not skipped[0]:
                return None
            lost = skipped[0]
            if frame.time is not None and start is not None:
                lost = max(0.0, float(frame.time) - start - consumed[0])
            skipped[0] = 0.0
            damage.audio_seconds += lost
            consumed[0] += lost
            return np.zeros(round(lost * SAMPLE_RATE), dtype=np.float32) if lost > 0 else None

        def add(piece: np.ndarray) -> Iterator[tuple[float, np.ndarray]]:
            nonlocal pending, pending_len, offset
            pending.append(piece)
            pending_len += piece.size
            while pending_len >= chunk_len:
                joined = np.concatenate(pending)
                yield offset / SAMPLE_RATE, joined[:chunk_len]
                offset += chunk_len
                rest = joined[chunk_len:]
                pending, pending_len = ([rest], rest.size) if rest.size else ([], 0)

        try:
            for frame in _decode_concealing(container, stream, on_skip):
                if start is None and frame.time is not None:
                    start = float(frame.time)
                silence = gap_before(frame)
                if silence is not None:
                    yield from add(silence)
                consumed[0] += frame.samples / frame.sample_rate
                for samples in samples_of(frame):
                    yield from add(samples)
            for samples in samples_of(None):
                yield from add(samples)
            damage.audio_seconds += skipped[0]  # lost at the very end: nothing after it to time it by
        except _GaveUp as err:
            damage.audio_seconds += skipped[0]
            if not offset and not pending_len:
                raise InvalidMediaError(path, f"audio cannot be decoded ({err.reason})") from None
            _note(notes, f"{INCOMPLETE_MEDIA}: audio decoding gave up at "
                         f"{(offset + pending_len) / SAMPLE_RATE:.1f} s: {err.reason}")
        else:
            if not offset and not pending_len and damage.audio_packets:
                raise InvalidMediaError(path, "audio cannot be decoded (every packet was rejected)")
            _check_extent(stream, "audio", (offset + pending_len) / SAMPLE_RATE, 0.5, notes)
        if pending:
            yield offset / SAMPLE_RATE, np.concatenate(pending).astype(np.float32, copy=False)


class AudioSpool:
    """A file's audio decoded once for every pass over it (speech recognition, the voice expert,
    the speakers): the first pass decodes it (iter_audio) and writes the 16 kHz float32 samples
    to a temporary file as they go by; later passes read them back from there. Memory stays flat;
    the disk holds 64 KB per second of audio until `close`."""

    def __init__(self, path: str | Path, notes: list[str] | None = None, damage: DecodeDamage | None = None) -> None:
        self.path, self.notes, self.damage = Path(path), notes, damage
        self.file: Any = None
        self.samples = 0
        self.complete = False

    def chunks(self, chunk_seconds: float = 60.0) -> Iterator[tuple[float, np.ndarray]]:
        """(offset_seconds, samples) as iter_audio yields them: decoded by the first pass to
        read to the end, read back from the spool by every later one."""
        if not self.complete:
            yield from self._decode(chunk_seconds)
            return
        size = int(chunk_seconds * SAMPLE_RATE)
        for start in range(0, self.samples, size):
            self.file.seek(start * 4)
            yield start / SAMPLE_RATE, np.fromfile(self.file, np.float32, min(size, self.samples - start))

    def _decode(self, chunk_seconds: float) -> Iterator[tuple[float, np.ndarray]]:
        import tempfile

        self.close()
        self.file = tempfile.TemporaryFile(prefix="moodlens-audio-")  # noqa: SIM115 - held until close()
        for offset, samples in iter_audio(self.path, chunk_seconds, self.notes, self.damage):
            samples = np.ascontiguousarray(samples, np.float32)
            self.file.write(samples.tobytes())
            self.samples += samples.size
            yield offset, samples
        self.complete = True

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.file, self.samples, self.complete = None, 0, False

    def __enter__(self) -> AudioSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_audio(path: str | Path) -> np.ndarray:
    """The whole audio track as 16 kHz mono float32. For short clips and tests only."""
    chunks = [samples for _, samples in iter_audio(path)]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def sample_frames(
    path: str | Path,
    fps: float = 2.0,
    max_side: int = 640,
    notes: list[str] | None = None,
    also_at: Sequence[float] = (),
    damage: DecodeDamage | None = None,
) -> Iterator[Frame]:
    """Yield frames at about `fps` per second, scaled so the longer side is <= max_side.

    `also_at` names extra moments that must each get a frame (the first one at or after it),
    so a moment shorter than the sampling interval is not skipped. Undecodable packets are
    skipped and counted in `damage`, as in iter_audio.
    """
    if fps <= 0:
        raise ValueError("fps must be positive")
    path = Path(path)
    damage = damage if damage is not None else DecodeDamage()
    step = 1.0 / fps
    with _open(path) as container:
        stream = video_stream(container)
        if stream is None:
            raise InvalidMediaError(path, "has no video stream")
        stream.thread_type = "AUTO"
        extra = iter(sorted(also_at))
        wanted = next(extra, None)
        next_time = 0.0
        last_time = 0.0
        produced = False
        index = 0
        rate = float(stream.average_rate) if stream.average_rate else 25.0

        def on_skip(packet: av.Packet | None) -> None:
            if packet is None:
                damage.demux_errors += 1
            else:
                damage.video_packets += 1

        def skip_unwanted(packet_time: float | None) -> None:
            # A frame that no other frame refers to (most B-frames) need not be decoded unless it
            # could be the one taken: the first at or after the next wanted moment. Its packet's
            # time is its own, so every frame at or after that moment still decodes, and the same
            # frames are taken as without skipping, for 30 % less decoding on H.264.
            target = next_time if wanted is None else min(next_time, wanted)
            early = packet_time is not None and packet_time < target - 1.0 / rate
            context.skip_frame = "NONREF" if early else "DEFAULT"

        context = stream.codec_context
        try:
            for frame in _decode_concealing(container, stream, on_skip, skip_unwanted):
                time = float(frame.time) if frame.time is not None else index / rate
                index += 1
                last_time = time
                take = time + 1e-6 >= next_time
                while wanted is not None and time + 1e-6 >= wanted:
                    take, wanted = True, next(extra, None)
                if not take:
                    continue
                next_time = time + step
                produced = True
                yield Frame(time=time, image=to_rgb(frame, max_side))
        except _GaveUp as err:
            if not produced:
                raise InvalidMediaError(path, f"video cannot be decoded ({err.reason})") from None
            _note(notes, f"{INCOMPLETE_MEDIA}: video decoding gave up at {last_time:.1f} s: {err.reason}")
        else:
            if not index and damage.video_packets:
                raise InvalidMediaError(path, "video cannot be decoded (every packet was rejected)")
            _check_extent(stream, "video", last_time, max(1.0, 2 * step), notes)


def _check_extent(stream: av.stream.Stream, kind: str, decoded: float, slack: float,
                  notes: list[str] | None) -> None:
    """A file whose index survives but whose data is cut decodes without error, then stops.

    Each stream is held to its own duration: audio often runs a little past the video.
    """
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    else:
        duration = _duration(stream.container)
    if duration and decoded < duration - slack:
        _note(notes, f"{INCOMPLETE_MEDIA}: {kind} ends at {decoded:.1f} s of {duration:.1f} s "
                     "(truncated file?)")


def to_rgb(frame: av.VideoFrame, max_side: int) -> np.ndarray:
    scale = min(1.0, max_side / max(frame.width, frame.height))
    width = max(2, round(frame.width * scale / 2) * 2)
    height = max(2, round(frame.height * scale / 2) * 2)
    image = frame.to_ndarray(width=width, height=height, format="rgb24")
    quarter_turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    if quarter_turns:
        image = np.ascontiguousarray(np.rot90(image, k=quarter_turns))
    return image


def _note(notes: list[str] | None, message: str) -> None:
    # the caller shows notes; without a list to take it, the log is the only place it can go
    (log.info if notes is not None else log.warning)(message)
    if notes is not None:
        notes.append(message)


def expand_path(path: str | Path) -> list[Path]:
    """A file stays itself; a folder becomes its media files, or raises NoMediaError.

    A named file passes through whatever its suffix, so the decoder, not the name, decides.
    """
    path = Path(path)
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if not found:
        raise NoMediaError(path)
    return found
