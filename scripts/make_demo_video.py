"""Build examples/demo.mp4: about 20 s of espeak-ng speech over a moving public-domain face.

    apt-get install espeak-ng
    python scripts/make_demo_video.py

The face is scikit-image's `astronaut` (Eileen Collins, NASA, public domain); the voice is
espeak-ng. Nothing comes from MELD or any other dataset, so the result is redistributable.
"""

from __future__ import annotations

import argparse
import fractions
import subprocess
import tempfile
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

LINES = (
    "Hi everyone, welcome back.",
    "I am so happy today, I love it!",
    "But I am really angry about what they did.",
    "It was disgusting, I hate it.",
    "I miss my old friends, and I feel sad.",
    "Wow! I did not expect that!",
)
SAMPLE_RATE = 22_050  # espeak-ng's native rate
GAP_SECONDS = 0.8
WIDTH, HEIGHT, FPS = 640, 360, 25


def speak(text: str, folder: Path) -> np.ndarray:
    path = folder / "line.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    with wave.open(str(path)) as handle:
        if handle.getframerate() != SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng wrote {handle.getframerate()} Hz, expected {SAMPLE_RATE}")
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def soundtrack() -> np.ndarray:
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        pieces = [gap]
        for line in LINES:
            pieces += [speak(line, Path(tmp)), gap]
    return np.concatenate(pieces)


def frame_at(t: float, face: np.ndarray) -> np.ndarray:
    """The photo drifting left and right and breathing in scale over a soft gradient."""
    canvas = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    canvas[:] = np.linspace(40, 90, WIDTH, dtype=np.uint8)[None, :, None]
    size = int(300 + 20 * np.sin(t * 0.9))
    photo = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    x = int((WIDTH - size) / 2 + 120 * np.sin(t * 0.5))
    y = (HEIGHT - size) // 2 + int(10 * np.sin(t * 1.3))
    top, left = max(0, y), max(0, x)
    bottom, right = min(HEIGHT, y + size), min(WIDTH, x + size)
    canvas[top:bottom, left:right] = photo[top - y : bottom - y, left - x : right - x]
    return canvas


def write_video(out: Path, audio: np.ndarray) -> None:
    duration = audio.size / SAMPLE_RATE
    face = skimage.data.astronaut()
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "30", "preset": "slow"}
        sound = container.add_stream("aac", rate=SAMPLE_RATE)
        sound.layout = "mono"
        for index in range(int(duration * FPS)):
            frame = av.VideoFrame.from_ndarray(frame_at(index / FPS, face), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        block = 1024
        for start in range(0, audio.size, block):
            chunk = audio[start : start + block]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
            container.mux(sound.encode(frame))
        container.mux(sound.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples/demo.mp4"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    audio = soundtrack()
    write_video(args.out, audio)
    print(f"wrote {args.out}: {audio.size / SAMPLE_RATE:.1f} s, {args.out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
