"""End to end in a real browser: `moodlens serve`, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# Without the background-networking flags, Chromium keeps calling Google on a closed network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"]
# ASR splits it in two or three, depending on the CPU's int8 kernels: the test asserts properties only
CLIP = "dia110_utt8.mp4"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get where it can)")
    pytest.importorskip("playwright", reason="playwright is not installed")
    port = _free_port()
    data = tmp_path_factory.mktemp("browser-serve")
    server = subprocess.Popen([sys.executable, "-m", "moodlens.cli", "serve", "--port", str(port),
                               "--data-dir", str(data)], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
                break
            except OSError:
                if server.poll() is not None:
                    raise AssertionError(server.stdout.read().decode()) from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_upload_wait_click_seek_screenshot(served: str, meld_clips: list[dict]) -> None:
    from playwright.sync_api import sync_playwright

    clip = next(Path(c["path"]) for c in meld_clips if Path(c["path"]).name == CLIP)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(served)
        page.set_input_files("#file", str(clip))
        page.wait_for_url("**/analyses/*", timeout=240_000)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        rows = page.locator(".utterance")
        count = rows.count()
        assert count >= 1, page.content()
        last = rows.nth(count - 1)
        start = float(last.get_attribute("data-start"))
        page.wait_for_function("document.getElementById('video').readyState >= 1", timeout=30_000)
        # park the player away from the row's start, so the click has to move it there
        page.evaluate(f"(() => {{ const v = document.getElementById('video');"
                      f" v.currentTime = {start} > 1 ? 0 : v.duration; }})()")
        page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {start}) > 0.5",
                               timeout=10_000)
        last.click()
        page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {start}) < 0.05",
                               timeout=10_000)
        assert "selected" in last.get_attribute("class")
        # the browser really decodes the upload: frames at the seek target, no media error
        page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=10_000)
        video = page.evaluate("(() => { const v = document.getElementById('video');"
                              " return {error: v.error && v.error.code, width: v.videoWidth}; })()")
        assert video["error"] is None and video["width"] > 0, video
        assert page.locator("#timeline rect").count() == count and page.locator("#sentiment polyline").count() == 1
        assert page.locator("#modalities h3").count() >= 2  # fused + at least the text expert
        # one timeline lane per speaker, each band in its speaker's lane, and the speaker table
        lanes = page.locator(".lane-label").evaluate_all("labels => labels.map(l => l.dataset.speaker)")
        bands = page.locator("#timeline rect").evaluate_all("rects => rects.map(r => r.dataset.speaker)")
        assert lanes and all(b in lanes or lanes[-1] in ("unknown", "all") for b in bands), (lanes, bands)
        assert page.locator("table.speakers tr").count() == 1 + len([n for n in lanes if n not in ("unknown", "all")])
        page.screenshot(path=str(ARTIFACTS / "result-page.png"), full_page=True)
        browser.close()


def fake_capture(folder: Path) -> tuple[Path, Path]:
    """The demo as Chromium's fake microphone (WAV) and camera (Y4M)."""
    import av
    import numpy as np

    from moodlens.media import read_audio, sample_frames
    from tests.conftest import DEMO

    wav, y4m = folder / "demo.wav", folder / "demo.y4m"
    samples = (np.clip(read_audio(DEMO), -1, 1) * 32767).astype(np.int16)
    with av.open(str(wav), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None], format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(y4m), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for still in sample_frames(DEMO, 10.0, 640):
            for packet in stream.encode(av.VideoFrame.from_ndarray(still.image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return wav, y4m


def test_the_live_page_shows_utterances_as_they_come_and_keeps_the_job(served: str, tmp_path: Path) -> None:
    import json

    from playwright.sync_api import sync_playwright

    wav, y4m = fake_capture(tmp_path)
    flags = [*FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}", f"--use-file-for-fake-video-capture={y4m}"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(f"{served}/live")
        page.click("#start")
        page.wait_for_selector("body[data-live='1']", timeout=30_000)
        # utterances appear, each with its emotion, while the stream runs
        judged = "document.querySelectorAll('.utterance[data-emotion]:not([data-emotion=\"\"])').length >= 2"
        page.wait_for_function(judged, timeout=90_000)
        # and the words of speech still going on, before its utterance is judged
        page.wait_for_function("Number(document.body.dataset.partials || 0) >= 1", timeout=60_000)
        assert page.locator("body[data-live='1']").count() == 1  # still live: they came before the end
        page.wait_for_selector("#facebox[data-emotion]", state="attached", timeout=30_000)
        assert page.locator(".lane").count() >= 1
        shown = page.locator(".utterance").count()
        page.click("#stop")
        link = page.wait_for_selector("#result-link", timeout=60_000)
        job_page = link.get_attribute("href")
        page.screenshot(path=str(ARTIFACTS / "live-page.png"), full_page=True)
        browser.close()
    job_id = job_page.rsplit("/", 1)[-1]
    job = json.loads(urllib.request.urlopen(f"{served}/v1/analyses/{job_id}", timeout=10).read())
    assert job["status"] == "done" and job["stage"] == "done", job
    result = json.loads(urllib.request.urlopen(f"{served}/v1/analyses/{job_id}/result", timeout=10).read())
    assert len(result["utterances"]) >= shown and result["settings"]["live"]["complete"]
    assert result["media"]["has_video"] and "face" in result["settings"]["modalities"]
