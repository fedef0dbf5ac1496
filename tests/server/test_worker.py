"""The dispatcher and its process pool when things break: a killed worker, a job past its time
limit, a dispatcher error. Real worker processes, real analyses."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from moodlens.server.jobs import Job, JobStore
from moodlens.server.worker import AnalysisWorkers, job_folder
from tests.conftest import DEMO


def enqueue(store: JobStore, data: Path, source: Path) -> str:
    job_id = secrets.token_hex(16)
    folder = job_folder(data, job_id)
    folder.mkdir(parents=True)
    shutil.copyfile(source, folder / f"media{source.suffix}")
    store.create(source.name, source.stat().st_size, job_id)
    return job_id


def wait_for(check: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s")


def ended(store: JobStore, job_id: str) -> Job:
    wait_for(lambda: store.get(job_id).status in ("done", "failed"))
    return store.get(job_id)


@pytest.fixture
def pool(tmp_path: Path, database_url: str) -> Iterator[Callable[..., AnalysisWorkers]]:
    """Workers on a job store in SQLite, then in a real PostgreSQL."""
    made: list[AnalysisWorkers] = []

    def make(**options: object) -> AnalysisWorkers:
        store = JobStore(database_url)
        workers = AnalysisWorkers(store, tmp_path, **options)
        workers.start()
        made.append(workers)
        return workers

    yield make
    for workers in made:
        workers.stop()


def kill_workers(workers: AnalysisWorkers) -> None:
    for process in list(workers.pool._processes.values()):
        os.kill(process.pid, signal.SIGKILL)


def test_a_killed_worker_is_replaced_and_its_job_tried_again(pool: Callable[..., AnalysisWorkers],
                                                             tmp_path: Path) -> None:
    workers = pool(workers=1, max_attempts=2)
    wait_for(workers.ready.is_set)
    assert workers.health == "ready"
    job_id = enqueue(workers.store, tmp_path, DEMO)
    workers.notify()
    wait_for(lambda: workers.store.get(job_id).status == "running" and job_id in workers.running)
    first_pool = workers.pool
    kill_workers(workers)  # as the OOM killer would
    job = ended(workers.store, job_id)
    assert job.status == "done" and job.attempts == 2, job
    assert workers.pool is not first_pool
    # and the server goes on taking work on the new pool
    assert ended(workers.store, enqueue(workers.store, tmp_path, DEMO)).status == "done"


def test_a_file_that_keeps_killing_workers_fails_after_its_attempts(pool: Callable[..., AnalysisWorkers],
                                                                    tmp_path: Path) -> None:
    workers = pool(workers=1, max_attempts=1)
    wait_for(workers.ready.is_set)
    job_id = enqueue(workers.store, tmp_path, DEMO)
    workers.notify()
    wait_for(lambda: job_id in workers.running)
    kill_workers(workers)
    job = ended(workers.store, job_id)
    assert job.status == "failed" and "crashed" in job.error and "1 attempts" in job.error, job


def test_a_job_past_its_time_limit_fails_and_the_next_one_runs(pool: Callable[..., AnalysisWorkers],
                                                               tmp_path: Path) -> None:
    workers = pool(workers=1, job_timeout=1.0)
    wait_for(workers.ready.is_set)
    slow = enqueue(workers.store, tmp_path, DEMO)  # 22 s of video: well over a second to analyse
    workers.notify()
    job = ended(workers.store, slow)
    assert job.status == "failed" and job.error == "the analysis took longer than the 1 s limit", job
    wait_for(workers.ready.is_set)  # the replacement pool warms up, then the queue moves again
    assert workers.health == "ready"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread dies on purpose
def test_the_dispatcher_survives_errors_and_health_tells_when_it_is_gone(
        pool: Callable[..., AnalysisWorkers], tmp_path: Path, media_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    workers = pool(workers=1)
    wait_for(workers.ready.is_set)
    real_claim = workers.store.claim
    failures = [2]

    def flaky_claim() -> Job | None:
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("database is locked")
        return real_claim()

    monkeypatch.setattr(workers.store, "claim", flaky_claim)
    job_id = enqueue(workers.store, tmp_path, media_dir / "h264_aac.mp4")
    workers.notify()
    assert ended(workers.store, job_id).status == "done"
    assert failures == [0] and workers.thread.is_alive()

    def fatal() -> None:
        raise SystemExit("the thread ends")

    monkeypatch.setattr(workers, "_dispatch_one", fatal)
    wait_for(lambda: not workers.thread.is_alive(), timeout=10)
    assert workers.health == "degraded: the job dispatcher has stopped"


def test_jobs_interrupted_too_often_fail_on_restart(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    job_id = enqueue(store, tmp_path, DEMO)
    for _ in range(3):
        assert store.claim().id == job_id  # started, then the server died under it
        store.requeue_running(max_attempts=3)
    job = store.get(job_id)
    assert job.status == "failed" and job.attempts == 3
    assert "interrupted while running" in job.error and "gave up after 3 attempts" in job.error
