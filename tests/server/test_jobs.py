"""The job store on SQLite and on a real PostgreSQL: the same rules, and claims that never collide
when several processes take jobs from one queue."""

from __future__ import annotations

import multiprocessing

import pytest

from moodlens.server.jobs import JobStore


def test_the_lifecycle_of_a_job(database_url: str) -> None:
    store = JobStore(database_url)
    first = store.create("a.mp4", 10)
    second = store.create("b.mp4", 20)
    assert store.counts()["queued"] == 2
    claimed = store.claim()
    assert claimed.id == first.id and claimed.status == "running" and claimed.attempts == 1
    store.progress(first.id, "text", 0.5)
    assert store.get(first.id).progress == 0.5 and store.get(first.id).stage == "text"
    store.finish(first.id)
    store.finish(first.id, "too late")  # only once
    assert store.get(first.id).status == "done" and store.get(first.id).error is None
    assert store.claim().id == second.id
    assert store.retry(second.id, 2, "worker died") and store.get(second.id).status == "queued"
    store.claim()
    assert not store.retry(second.id, 2, "worker died again")
    failed = store.get(second.id)
    assert failed.status == "failed" and failed.error == "worker died again; gave up after 2 attempts"
    jobs, total = store.page(0, 1)
    assert total == 2 and len(jobs) == 1
    assert store.delete(first.id) and not store.delete(first.id) and store.get(first.id) is None


def test_running_jobs_are_requeued_after_a_restart(database_url: str) -> None:
    store = JobStore(database_url)
    job = store.create("a.mp4", 1)
    store.claim()
    assert JobStore(database_url).requeue_running(3) == 1  # a new server process, the same database
    assert store.get(job.id).status == "queued"


def _claim_all(url: str, found: multiprocessing.Queue) -> None:
    store = JobStore(url)
    while (job := store.claim()) is not None:
        found.put(job.id)
        store.finish(job.id)
    found.put(None)


@pytest.mark.timeout(120)
def test_concurrent_claims_take_each_job_exactly_once(database_url: str) -> None:
    store = JobStore(database_url)
    ids = {store.create(f"{i}.mp4", i).id for i in range(60)}
    context = multiprocessing.get_context("spawn")
    found = context.Queue()
    claimers = [context.Process(target=_claim_all, args=(database_url, found)) for _ in range(4)]
    for process in claimers:
        process.start()
    taken, finished = [], 0
    while finished < len(claimers):
        item = found.get(timeout=100)
        if item is None:
            finished += 1
        else:
            taken.append(item)
    for process in claimers:
        process.join(30)
    assert sorted(taken) == sorted(ids)  # every job once: none lost, none run twice
    assert store.counts()["done"] == 60
