"""Load test for `moodlens serve`: N concurrent uploads of one short clip, each polled to its result.

    .venv/bin/python bench/server_load.py [--uploads 20] [--workers 2] [CLIP]

It starts the real server (uvicorn, SQLite, worker processes) on a free port, fires all
uploads at once from N threads, polls each job, and fetches every result. It prints how many
completed, failed or were lost, and the p50 / p95 / max time from upload to result.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "meld" / "media" / "test" / "dia12_utt12.mp4"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one(url: str, clip: Path, results: list, index: int) -> None:
    began = time.perf_counter()
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            answer = client.post("/v1/analyses", files={"file": (clip.name, clip.read_bytes(), "video/mp4")})
            if answer.status_code != 202:
                results[index] = ("refused", answer.status_code, time.perf_counter() - began)
                return
            job_id = answer.json()["id"]
            while True:
                job = client.get(f"/v1/analyses/{job_id}").json()
                if job["status"] in ("done", "failed"):
                    break
                time.sleep(0.2)
            if job["status"] == "done":
                analysis = client.get(f"/v1/analyses/{job_id}/result").json()
                ok = bool(analysis.get("utterances"))
                results[index] = ("done" if ok else "empty", job_id, time.perf_counter() - began)
            else:
                results[index] = ("failed", job["error"], time.perf_counter() - began)
    except Exception as err:  # counted as lost, never hidden
        results[index] = ("lost", repr(err), time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path, default=CLIP)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not args.clip.exists():
        raise SystemExit(f"{args.clip} is absent: give a short clip to upload")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "moodlens.cli", "serve", "--port", str(port), "--data-dir",
                                   data, "--workers", str(args.workers)], env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            for _ in range(240):  # until the workers have loaded their models
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).json()["ready"]:
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.5)
            results: list = [None] * args.uploads
            began = time.perf_counter()
            threads = [threading.Thread(target=_one, args=(url, args.clip, results, i)) for i in range(args.uploads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - began
            counts = httpx.get(f"{url}/healthz").json()["jobs"]
        finally:
            server.terminate()
            server.wait(timeout=30)
    outcomes = [r[0] if r else "lost" for r in results]
    times = sorted(r[2] for r in results if r and r[0] == "done")
    print(f"{args.uploads} concurrent uploads of {args.clip.name}, {args.workers} worker processes, "
          f"{os.cpu_count()} cores")
    print({k: outcomes.count(k) for k in ("done", "failed", "refused", "empty", "lost")}, "server jobs:", counts)
    if times:
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"time to result: p50 {statistics.median(times):.1f} s, p95 {p95:.1f} s, max {times[-1]:.1f} s; "
              f"all {args.uploads} in {wall:.1f} s")
    for r in results:
        if r and r[0] != "done":
            print("  ", r)


if __name__ == "__main__":
    main()
