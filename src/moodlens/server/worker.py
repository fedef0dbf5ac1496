"""Background analysis: a dispatcher thread hands queued jobs to a pool of worker processes.

Processes, not threads: each keeps its own models (loaded once), the tokenizers and decoders
are never shared between concurrent analyses, and a crash in one file takes down one worker,
not the server. At most `workers` analyses run at once; the rest wait in the job store.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from pathlib import Path

from moodlens.server.jobs import JobStore

log = logging.getLogger(__name__)
RESULT_FORMATS = ("json", "csv", "srt")
RESULT_NAME = "result"


def job_folder(data_dir: Path, job_id: str) -> Path:
    return data_dir / "jobs" / job_id


def media_file(data_dir: Path, job_id: str) -> Path | None:
    found = sorted(job_folder(data_dir, job_id).glob("media*"))
    return found[0] if found else None


def _init_worker(workers: int) -> None:
    from moodlens.process import limit_heap_growth

    limit_heap_growth()  # a long upload must not grow the worker's memory for good
    os.environ.setdefault("MOODLENS_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


@lru_cache(maxsize=1)
def _store(url: str) -> JobStore:
    return JobStore(url)


def run_job(job_id: str, media: str, out_dir: str, database_url: str) -> str | None:
    """Analyse one upload in a worker process; None on success, else a one-line error."""
    from moodlens.errors import MoodlensError
    from moodlens.pipeline import STAGES, analyze
    from moodlens.writers import write

    store = _store(database_url)
    last = [0.0]

    def report(stage: str, done: float) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or done >= 1.0:  # a write per half second is plenty for a progress bar
            last[0] = now
            store.progress(job_id, stage, (STAGES.index(stage) + min(done, 1.0)) / len(STAGES))

    try:
        analysis = analyze(media, progress=report)
        write(analysis, out_dir, RESULT_FORMATS, name=RESULT_NAME)
    except MoodlensError as err:
        return str(err)
    except Exception as err:  # one bad file must never stop the server
        log.exception("job %s failed", job_id)
        return f"analysis failed ({type(err).__name__}: {err})"
    return None


class AnalysisWorkers:
    def __init__(self, store: JobStore, data_dir: Path, workers: int = 1) -> None:
        self.store = store
        self.data_dir = data_dir
        self.workers = workers
        self.slots = threading.BoundedSemaphore(workers)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.pool = self._new_pool()
        self.thread = threading.Thread(target=self._dispatch, name="moodlens-dispatch", daemon=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.workers,))

    def start(self) -> None:
        self.thread.start()

    def notify(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        """Stop taking jobs and end the worker processes now. A job cut short stays `running` in
        the store and is queued again when the server next starts."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=5)
        # The executor has no public way to end busy workers, and left alone they outlive us.
        processes = list(getattr(self.pool, "_processes", {}).values())
        # With no job running, the executor's exit sentinels end each worker cleanly, and a worker
        # that exits by itself unlinks its semaphores (a killed one leaves them to the resource
        # tracker, which warns). A running job holds the sentinels back, so then workers are killed.
        idle = all(self.slots.acquire(blocking=False) for _ in range(self.workers))
        if not idle:
            for process in processes:
                process.terminate()
        # shutdown(wait=True) joins the executor's manager thread, which joins the workers and lets
        # go of the queues; it runs beside us so that a worker stuck on exit cannot hang the server
        closer = threading.Thread(target=self.pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
        closer.start()
        closer.join(timeout=15)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)
        closer.join(timeout=5)
        # uvicorn re-raises SIGTERM after a graceful shutdown, so no exit handler will unlink the
        # executor's named semaphores; freeing the executor now lets its finalizers do it
        del self.pool, processes  # a spawned Process keeps its arguments, the queues among them
        gc.collect()

    def _dispatch(self) -> None:
        while not self.stopping.is_set():
            if not self.slots.acquire(timeout=0.5):
                continue
            job = None
            try:
                job = self.store.claim()
            except Exception:  # the database may be briefly locked; try again shortly
                log.exception("claiming a job failed")
            if job is None:
                self.slots.release()
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            media = media_file(self.data_dir, job.id)
            if media is None:
                self.store.finish(job.id, "the uploaded file is gone")
                self.slots.release()
                continue
            future = self.pool.submit(run_job, job.id, str(media), str(job_folder(self.data_dir, job.id)),
                                      self.store.url)
            future.add_done_callback(lambda f, job_id=job.id: self._done(job_id, f))

    def _done(self, job_id: str, future: Future) -> None:
        if self.stopping.is_set() and (future.cancelled() or future.exception() is not None):
            return  # cut short by shutdown: left `running`, so the next start queues it again
        try:
            error = future.result()
        except BrokenProcessPool:
            error = "the analysis worker crashed on this file"
            self.pool = self._new_pool()
        except Exception as err:
            error = f"analysis failed ({type(err).__name__}: {err})"
        try:
            self.store.finish(job_id, error)
        finally:
            self.slots.release()
            self.wake.set()
