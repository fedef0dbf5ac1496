"""`moodlens batch` on a real local Ray, reading from and writing to a real S3 API (moto's server)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moodlens.batch import gpu_share
from moodlens.errors import MoodlensError
from moodlens.inputs import Item
from moodlens.options import AnalyzeOptions
from moodlens.storage import Destination, s3_client, split_s3
from tests.conftest import free_port

MOODLENS = Path(sys.executable).parent / "moodlens"


def batch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MOODLENS), "batch", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})


def test_batch_over_s3_with_a_broken_object_then_a_rerun(bucket: str, media_dir: Path) -> None:
    """Two good clips and one broken object: both clips analysed, the broken one recorded, exit 1;
    the re-run skips what is done and tries the broken one again."""
    pytest.importorskip("ray", reason="Ray is not installed: `make test` installs the scale extra")
    name = split_s3(bucket)[0]
    client = s3_client()
    client.put_object(Bucket=name, Key="videos/one.mp4", Body=(media_dir / "h264_aac.mp4").read_bytes())
    client.put_object(Bucket=name, Key="videos/two.wav", Body=(media_dir / "tone.wav").read_bytes())
    client.put_object(Bucket=name, Key="videos/broken.mp4", Body=(media_dir / "h264_aac.mp4").read_bytes()[:3000])

    first = batch(f"{bucket}/videos/", "--out", f"{bucket}/results/", "--format", "json,csv", "--concurrency", "2")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    assert "3 input(s): 2 analysed, 0 skipped (results already there), 1 failed" in first.stdout
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="results/")["Contents"])
    assert keys == ["results/broken.error.json", "results/one.analysis.json", "results/one.utterances.csv",
                    "results/two.analysis.json", "results/two.utterances.csv"]
    analysis = json.loads(client.get_object(Bucket=name, Key="results/one.analysis.json")["Body"].read())
    assert analysis["media"]["path"] == "one.mp4" and analysis["schema_version"]  # named as in S3, not the spool
    error = json.loads(client.get_object(Bucket=name, Key="results/broken.error.json")["Body"].read())
    assert error["input"] == f"{bucket}/videos/broken.mp4" and "\n" not in error["error"]
    assert error["error"] in first.stderr.replace("\n", "") or "broken.mp4" in first.stderr

    again = batch(f"{bucket}/videos/", "--out", f"{bucket}/results/", "--format", "json,csv")
    assert "3 input(s): 0 analysed, 2 skipped (results already there), 1 failed" in again.stdout, again.stdout
    assert again.returncode == 1


def test_batch_refuses_what_it_cannot_start(tmp_path: Path) -> None:
    result = batch(str(tmp_path / "nothing-here-*.mp4"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "no files match" in result.stderr and "Traceback" not in result.stderr
    result = batch(str(tmp_path), "--out", str(tmp_path / "out"), "--format", "pdf")
    assert result.returncode == 2 and "unknown format" in result.stderr


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended while we looked
        return b""


def test_a_worker_that_dies_fails_only_the_input_it_held(tmp_path: Path, media_dir: Path) -> None:
    """The OOM killer's case: the worker process is killed mid-analysis. That input fails with the
    reason, the actor is restarted, and the next input is analysed."""
    pytest.importorskip("ray", reason="Ray is not installed: `make test` installs the scale extra")
    import signal
    import threading
    import time

    from moodlens.batch import run_batch
    from tests.conftest import DEMO

    def kill_the_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pids = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline")
                    if b"ray::BatchWorker.analyse" in _read(p)]
            if pids:
                time.sleep(0.3)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_busy_worker, daemon=True)
    killer.start()
    items = [Item(str(DEMO), "demo"), Item(str(media_dir / "tone.wav"), "tone")]
    records = list(run_batch(items, Destination(str(tmp_path)), ["json"], AnalyzeOptions(), concurrency=1))
    killer.join(5)
    by_name = {r.name: r for r in records}
    assert by_name["demo"].status == "failed" and "batch worker died" in by_name["demo"].error
    assert by_name["tone"].status == "analysed" and (tmp_path / "tone.analysis.json").is_file(), by_name["tone"]


@pytest.mark.parametrize(("gpus", "workers", "share"), [(1, 1, 1.0), (1, 4, 0.25), (1, 3, 0.3333), (2, 4, 0.5),
                                                        (4, 2, 1.0), (0.5, 2, 0.25)])
def test_gpu_workers_share_the_gpus(gpus: float, workers: int, share: float) -> None:
    """Ray hides the GPUs from an actor that asks for none, so --device cuda workers ask for a share."""
    assert gpu_share(gpus, workers) == share
    assert share * workers <= gpus  # the shares fit, so every worker starts


def test_gpu_workers_on_a_cluster_without_gpus_stop_the_batch_with_a_reason() -> None:
    with pytest.raises(MoodlensError, match="the Ray cluster has no GPU"):
        gpu_share(0.0, 2)


@pytest.fixture
def two_node_ray() -> Iterator[tuple[str, dict[str, str]]]:
    """A real Ray cluster of two nodes on this machine, one CPU each, started as docs/deployment.md
    says: `ray start --head`, then `ray start --address` as a second node, with token auth."""
    pytest.importorskip("ray", reason="Ray is not installed: `make test` installs the scale extra")
    ray = Path(sys.executable).parent / "ray"
    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    token = folder / "token"
    token.write_text(secrets.token_hex(32), encoding="utf-8")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"}
    address = f"127.0.0.1:{free_port()}"
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        head = ["--head", "--port", address.split(":")[1], "--include-dashboard=false", "--temp-dir", str(folder / "t")]
        subprocess.run([str(ray), "start", *head, *common], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([str(ray), "start", "--address", address, *common], env=env, check=True,
                       capture_output=True, timeout=120)
        yield address, env
    finally:
        subprocess.run([str(ray), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def test_batch_on_a_two_node_cluster_with_relative_paths(two_node_ray: tuple[str, dict[str, str]],
                                                         tmp_path: Path, media_dir: Path) -> None:
    """Two workers of one CPU each on two one-CPU nodes: one worker per node. Inputs and --out
    are relative to the driver, whose working directory the workers do not share."""
    address, env = two_node_ray
    deadline = time.monotonic() + 60
    while True:  # the head reports a node that joined a moment later
        status = subprocess.run([str(Path(sys.executable).parent / "ray"), "status", "--address", address],
                                env=env, capture_output=True, text=True, timeout=120).stdout
        if status.count(" node_") == 2 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert status.count(" node_") == 2 and "/2.0 CPU" in status
    for name in ("one.mp4", "two.wav"):
        shutil.copy(media_dir / ("h264_aac.mp4" if name == "one.mp4" else "tone.wav"), tmp_path / name)
    result = subprocess.run([str(MOODLENS), "batch", "one.mp4", "two.wav", "--out", "results", "--address", address,
                             "--concurrency", "2", "--format", "json", "--modalities", "text"],
                            cwd=tmp_path, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 input(s): 2 analysed" in result.stdout
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["one.analysis.json", "two.analysis.json"]


def test_a_cluster_that_wants_a_token_is_named_in_one_line(two_node_ray: tuple[str, dict[str, str]],
                                                           media_dir: Path, tmp_path: Path) -> None:
    address, env = two_node_ray
    without = {k: v for k, v in env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    result = subprocess.run([str(MOODLENS), "batch", str(media_dir / "tone.wav"), "--out", str(tmp_path / "r"),
                             "--address", address],
                            env={**without, "HOME": str(tmp_path), "COLUMNS": "200"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert "asks for its token" in result.stderr and "Traceback" not in result.stderr
