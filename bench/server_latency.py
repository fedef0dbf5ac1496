"""Cold and warm time to result on `moodlens serve`, one clip at a time.

    .venv/bin/python bench/server_latency.py [CLIP] [--repeat 3]

It starts the real server and prints:
- start to ready: from launching `moodlens serve` until /healthz says ready (the worker
  processes have loaded every model);
- upload at start: a clip uploaded the moment the server accepts connections, to its result
  (what a client that doesn't wait for /healthz sees);
- first job once ready: the first upload after ready, to its result; with warm workers this
  costs what a warm job does, since no job loads models;
- warm: the median of --repeat later uploads.

With no CLIP it joins two MELD test clips from ../shared (dia110_utt8 + dia245_utt4) into one
4.9 s clip, re-encoded with PyAV, so the figure is for a typical short testimonial.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import httpx

ROOT = Path(__file__).resolve().parent.parent
MELD = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
PARTS = (MELD / "dia110_utt8.mp4", MELD / "dia245_utt4.mp4")


def join_clips(parts: tuple[Path, ...], target: Path) -> Path:
    """Decode the parts and encode them one after the other (h264 + aac, 25 fps, 16 kHz)."""
    with av.open(str(target), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        audio = out.add_stream("aac", rate=16_000)
        audio.layout = "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16_000)
        frames = samples = 0
        for part in parts:
            with av.open(str(part)) as source:
                for frame in source.decode(source.streams.video[0]):
                    image = frame.reformat(width=640, height=360, format="yuv420p")
                    image.pts, frames = frames, frames + 1
                    out.mux(video.encode(image))
            with av.open(str(part)) as source:
                for frame in source.decode(source.streams.audio[0]):
                    for chunk in resampler.resample(frame):
                        chunk.pts, samples = samples, samples + chunk.samples
                        out.mux(audio.encode(chunk))
        out.mux(video.encode())
        out.mux(audio.encode())
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_result(url: str, clip: Path) -> float:
    began = time.perf_counter()
    with httpx.Client(base_url=url, timeout=300) as client:
        answer = client.post("/v1/analyses", files={"file": (clip.name, clip.read_bytes(), "video/mp4")})
        answer.raise_for_status()
        job_id = answer.json()["id"]
        while (job := client.get(f"/v1/analyses/{job_id}").json())["status"] not in ("done", "failed"):
            time.sleep(0.05)
        if job["status"] != "done":
            raise SystemExit(f"the analysis failed: {job['error']}")
        client.get(f"/v1/analyses/{job_id}/result").raise_for_status()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        clip = args.clip
        if clip is None:
            if not all(p.exists() for p in PARTS):
                raise SystemExit("give a CLIP: the MELD clips in ../shared are absent")
            clip = join_clips(PARTS, Path(temp) / "joined.mp4")
        with av.open(str(clip)) as container:
            duration = container.duration / av.time_base
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        began = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "moodlens.cli", "serve", "--port", str(port),
                                   "--data-dir", str(Path(temp) / "data")],
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            at_start = time_to_result(url, clip)
            while not httpx.get(f"{url}/healthz").json()["ready"]:
                time.sleep(0.05)
            ready = time.perf_counter() - began
            first = time_to_result(url, clip)
            warm = [time_to_result(url, clip) for _ in range(args.repeat)]
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{clip.name}, {duration:.1f} s, one worker, {os.cpu_count()} cores")
    print(f"start to ready (models loaded): {ready:.1f} s")
    print(f"upload at start, to result:     {at_start:.1f} s")
    print(f"first job once ready:           {first:.1f} s")
    print(f"warm (median of {args.repeat}):           {statistics.median(warm):.1f} s")


if __name__ == "__main__":
    main()
