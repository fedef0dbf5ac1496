"""Real media, made with PyAV for tests: every container and codec the decoder must handle."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import cv2
import numpy as np

RATE = 16_000


def face_image() -> np.ndarray:
    """A public-domain face photo (NASA's astronaut portrait, shipped in scikit-image)."""
    import skimage.data

    return skimage.data.astronaut()


def frame(t: float, width: int, height: int, face: np.ndarray | None) -> np.ndarray:
    canvas = np.full((height, width, 3), 60, dtype=np.uint8)
    if face is not None:
        size = int(min(width, height) * 0.9)
        photo = cv2.resize(face, (size, size))
        x = (width - size) // 2 + int(10 * np.sin(t))
        y = (height - size) // 2
        canvas[y : y + size, max(0, x) : max(0, x) + size] = photo[:, : width - max(0, x)]
    return canvas


def tone(seconds: float, hz: float = 220.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_media(
    path: Path,
    seconds: float = 2.0,
    video_codec: str | None = "libx264",
    audio_codec: str | None = "aac",
    audio: np.ndarray | None = None,
    audio_rate: int = RATE,
    face: bool = True,
    size: tuple[int, int] = (320, 240),
    fps: int = 10,
    rotation: int = 0,
    faststart: bool = False,
) -> Path:
    """Write a file with a video stream, an audio stream, or both."""
    samples = tone(seconds, rate=audio_rate) if audio is None else audio
    photo = face_image() if face else None
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        video = None
        if video_codec:
            video = container.add_stream(video_codec, rate=fps)
            video.width, video.height = size
            video.pix_fmt = "yuv420p"
            if rotation:
                video.set_display_rotation(rotation)
        sound = None
        if audio_codec:
            sound = container.add_stream(audio_codec, rate=audio_rate)
            sound.layout = "mono"
        if video is not None:
            for index in range(int(seconds * fps)):
                image = frame(index / fps, *size, photo)
                container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(video.encode())
        if sound is not None:
            mux_audio(container, sound, samples, audio_rate)
    return path


def mux_audio(container: av.container.OutputContainer, sound: av.audio.stream.AudioStream,
              samples: np.ndarray, rate: int) -> None:
    """Encode mono float samples; PyAV resamples them to the codec's format and frame size."""
    for start in range(0, samples.size, 1024):
        aframe = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="flt",
                                            layout="mono")
        aframe.sample_rate = rate
        aframe.pts = start
        aframe.time_base = fractions.Fraction(1, rate)
        container.mux(sound.encode(aframe))
    container.mux(sound.encode())


def truncate(source: Path, target: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def write_mp3_with_cover(path: Path, seconds: float = 2.0) -> Path:
    """An mp3 whose album art shows up as an `attached_pic` video stream."""
    samples = tone(seconds)
    with av.open(str(path), "w") as container:
        sound = container.add_stream("libmp3lame", rate=RATE)
        sound.layout = "mono"
        cover = container.add_stream("mjpeg", rate=1)
        cover.width = cover.height = 64
        cover.pix_fmt = "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        art = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        container.mux(cover.encode(art))
        container.mux(cover.encode())
        mux_audio(container, sound, samples, RATE)
    return path


def join_clips(paths: list[Path], target: Path, size: tuple[int, int] = (640, 360), fps: int = 12,
               video: bool = True) -> list[tuple[float, float]]:
    """Re-encode clips one after another into one mp4 (H.264 + AAC, 16 kHz mono; AAC alone with
    video=False), as an editor would cut them together; returns each clip's (start, end)."""
    from moodlens.media import iter_audio, sample_frames

    spans = []
    audio_parts = []
    index = 0
    with av.open(str(target), "w") as container:
        stream = container.add_stream("libx264", rate=fps) if video else None
        if stream is not None:
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=RATE)
        sound.layout = "mono"
        for path in paths:
            samples = np.concatenate([s for _, s in iter_audio(path, 60.0, [])])
            frames = [f.image for f in sample_frames(path, fps, max(size), [])] if stream else []
            count = max(1, round(samples.size / RATE * fps))  # the clip's frames at the joined rate
            for k in range(count if stream else 0):
                image = cv2.resize(frames[min(k * len(frames) // count, len(frames) - 1)], size)
                vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                vframe.pts = index + k
                container.mux(stream.encode(vframe))
            length = count * RATE // fps  # audio cut or padded to the clip's frames, so both stay in step
            audio_parts.append(np.pad(samples[:length], (0, max(0, length - samples.size))))
            spans.append((index / fps, (index + count) / fps))
            index += count
        if stream is not None:
            container.mux(stream.encode())
        mux_audio(container, sound, np.concatenate(audio_parts), RATE)
    return spans


def voiced_part(path: Path) -> np.ndarray:
    """A RAVDESS clip without the second of silence either side of its line."""
    from moodlens.media import iter_audio

    samples = np.concatenate([s for _, s in iter_audio(path, 60.0, [])])
    level = np.sqrt(np.mean(samples[: samples.size // 320 * 320].reshape(-1, 320) ** 2, axis=1))
    loud = np.flatnonzero(level > 0.1 * level.max())
    return samples[loud[0] * 320:(loud[-1] + 1) * 320]


def lines_joined(paths: list[Path], pause: float = 0.8) -> np.ndarray:
    """Each file's 16 kHz audio followed by `pause` seconds of silence, one after another."""
    from moodlens.media import iter_audio

    gap = np.zeros(int(pause * 16_000), np.float32)
    return np.concatenate([part for p in paths for part in (*(s for _, s in iter_audio(p, 60.0, [])), gap)])
