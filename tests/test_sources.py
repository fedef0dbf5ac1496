"""Live sources: what each spec opens, a replayed stream read back whole, and one-line errors."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from moodlens.errors import SourceError
from moodlens.media import SAMPLE_RATE, Frame, probe
from moodlens.sources import AudioChunk, Ended, Source, SourceReader, parse_source, replay
from tests.conftest import DEMO, free_port


@pytest.mark.parametrize(("spec", "kind", "url", "format"), [
    ("-", "stdin", "pipe:0", None),
    ("alsa:default", "device", "default", "alsa"),
    ("v4l2:/dev/video0", "device", "/dev/video0", "video4linux2"),
    ("avfoundation:0:0", "device", "0:0", "avfoundation"),
    ("rtsp://camera.local/stream", "network", "rtsp://camera.local/stream", None),
    ("https://example.org/live.m3u8", "network", "https://example.org/live.m3u8", None),
    ("recording.mkv", "file", "file:recording.mkv", None),
])
def test_a_source_spec_names_what_ffmpeg_opens(spec: str, kind: str, url: str, format: str | None) -> None:
    source = parse_source(spec)
    assert (source.kind, source.url, source.format) == (kind, url, format)


def test_a_followed_file_keeps_reading_and_an_unknown_scheme_is_refused() -> None:
    assert parse_source("growing.ts", follow=True).options == {"follow": "1"}
    with pytest.raises(SourceError, match="unknown scheme"):
        parse_source("gopher://example.org/x")


def piped(write: callable) -> Source:
    """A source read from an OS pipe that `write(file)` fills on a thread of its own."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as sink, contextlib.suppress(BrokenPipeError):
            write(sink)

    threading.Thread(target=feed, daemon=True).start()
    return Source("pipe", f"pipe:{read_end}", None, "stdin")


def test_a_replayed_file_is_read_back_whole_audio_once_and_frames_at_the_rate_asked() -> None:
    reader = SourceReader(piped(lambda sink: replay(str(DEMO), sink, speed=0, repeat=2)), fps=2.0, max_side=320)
    opened = reader.open()
    assert opened.has_audio and opened.has_video
    audio, frames, end = [], [], None
    for item in reader.items():
        if isinstance(item, AudioChunk):
            audio.append(item)
        elif isinstance(item, Frame):
            frames.append(item)
        else:
            end = item
    assert isinstance(end, Ended) and end.error is None
    seconds = sum(c.samples.size for c in audio) / SAMPLE_RATE
    duration = probe(DEMO).duration
    assert abs(seconds - 2 * duration) < 0.5  # twice over, gaps between passes filled, nothing twice
    times = [c.time for c in audio]
    assert times == sorted(times) and times[0] < 0.2
    assert all(c.samples.dtype == np.float32 for c in audio)
    assert abs(len(frames) - 2 * duration * 2.0) <= 3
    assert max(f.image.shape[1] for f in frames) <= 320


def test_garbage_is_a_one_line_error_naming_the_source() -> None:
    reader = SourceReader(piped(lambda sink: sink.write(os.urandom(200_000))), open_timeout=20)
    with pytest.raises(SourceError) as caught:
        reader.open()
    assert str(caught.value).startswith("pipe: not a media stream") and "\n" not in str(caught.value)


def test_a_stream_that_stops_sending_ends_as_stalled() -> None:
    def start_then_stall(sink: object) -> None:
        replay(str(DEMO), _Cut(sink, 120_000), speed=0)

    reader = SourceReader(piped(start_then_stall), stall_timeout=1.0)
    reader.open()
    began = time.monotonic()
    last = list(reader.items())[-1]
    assert isinstance(last, Ended) and last.error is not None and last.error.startswith("stalled")
    assert time.monotonic() - began < 30


class _Cut:
    """A sink that takes `limit` bytes and then blocks, as a sender that stopped would."""

    def __init__(self, sink: object, limit: int) -> None:
        self.sink, self.left = sink, limit

    def write(self, data: bytes) -> int:
        if self.left <= 0:
            time.sleep(3600)
        self.left -= len(data)
        self.sink.write(data)
        self.sink.flush()
        return len(data)

    def flush(self) -> None:
        self.sink.flush()


@pytest.mark.parametrize(("spec", "message"), [
    ("alsa:no-such-card", "cannot open the device"),
    ("missing-recording.ts", "no such device or file"),
])
def test_a_source_that_cannot_be_opened_is_a_one_line_error(spec: str, message: str, tmp_path: Path) -> None:
    reader = SourceReader(parse_source(str(tmp_path / spec) if spec.endswith(".ts") else spec), open_timeout=20)
    with pytest.raises(SourceError, match=message):
        reader.open()


def test_a_url_that_does_not_answer_is_a_one_line_error() -> None:
    port = free_port()  # nothing listens there
    reader = SourceReader(parse_source(f"rtsp://127.0.0.1:{port}/live"), open_timeout=20, stall_timeout=5)
    began = time.monotonic()
    with pytest.raises(SourceError, match="the stream does not answer"):
        reader.open()
    assert time.monotonic() - began < 20
