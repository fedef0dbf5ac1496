"""Background analysis: a dispatcher thread hands queued jobs to a pool of worker processes.

Processes, not threads: each keeps its own models (loaded once, when it starts), the
tokenizers and decoders are never shared between concurrent analyses, and a crash in one
file takes down one pool, not the server. At most `workers` analyses run at once; the rest
wait in the job store.

What can go wrong, and what happens then:
- a worker process dies (a crash in native code, the OOM killer): every job that pool was
  running goes back to the queue, up to `max_attempts` times, then fails; the pool is
  replaced once, under a lock, by whichever callback sees it broken first;
- a job runs past `job_timeout` seconds: the pool is ended, that job fails with the reason,
  and the others it was running go back to the queue;
- the dispatcher itself hits an error: it logs it, fails the job in hand if there is one,
  and goes on; `/healthz` reports a dispatcher that has stopped anyway.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import re
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from moodlens.options import AnalyzeOptions
from moodlens.runtime import threads_per_worker
from moodlens.server.jobs import Job, JobStore

log = logging.getLogger(__name__)
RESULT_FORMATS = ("json", "csv", "srt")
RESULT_NAME = "result"
JOB_ID = re.compile(r"[0-9a-f]{32}")


def job_folder(data_dir: Path, job_id: str) -> Path:
    if not JOB_ID.fullmatch(job_id):  # ids become paths: nothing but our own hex ids may
        raise ValueError(f"not a job id: {job_id!r}")
    return data_dir / "jobs" / job_id


def media_file(data_dir: Path, job_id: str) -> Path | None:
    found = sorted(job_folder(data_dir, job_id).glob("media*"))
    return found[0] if found else None


_warm_barrier: threading.Barrier | None = None  # set in each worker process by _init_worker


def _init_worker(workers: int, barrier: threading.Barrier | None) -> None:
    global _warm_barrier
    from moodlens.process import keep_memory_flat

    keep_memory_flat()  # a long upload must not grow the worker's memory for good
    os.environ.setdefault("MOODLENS_THREADS", str(threads_per_worker(workers)))
    _warm_barrier = barrier  # locks reach a process only through its start arguments


def warm_worker(options: AnalyzeOptions | None = None) -> int:
    """Load the models in this worker process. The pool's barrier makes each process hold one
    warm-up task at the same time, so each of them gets one."""
    from moodlens.pipeline import warm_up

    warm_up(options)
    if _warm_barrier is not None:
        _warm_barrier.wait(timeout=600)
    return os.getpid()


@lru_cache(maxsize=1)
def _store(url: str) -> JobStore:
    return JobStore(url)


JOB_OPTIONS = "options.json"  # in the job folder: what the upload's form chose (app.job_fields)


def run_job(job_id: str, media: str, filename: str, out_dir: str, database_url: str,
            options: AnalyzeOptions | None = None) -> str | None:
    """Analyse one upload in a worker process; None on success, else a one-line error.

    Neither the server's paths nor exception text reach the client: errors name the upload
    by its own filename, and an unexpected failure is logged here and reported by job id.
    """
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

    chosen = Path(out_dir) / JOB_OPTIONS
    own = json.loads(chosen.read_text(encoding="utf-8")) if chosen.is_file() else {}
    try:
        analysis = analyze(media, replace(options or AnalyzeOptions(), media_name=filename, **own), progress=report)
        write(analysis, out_dir, RESULT_FORMATS, name=RESULT_NAME)
    except MoodlensError as err:
        return str(err).replace(media, filename)
    except Exception:  # one bad file must never stop the server
        log.exception("job %s failed", job_id)
        return f"analysis failed: internal error (logged on the server under job {job_id})"
    return None


@dataclass
class _Running:
    job: Job
    pool: ProcessPoolExecutor
    started: float
    timed_out: bool = False


class AnalysisWorkers:
    def __init__(self, store: JobStore, data_dir: Path, workers: int = 1, job_timeout: float = 3600.0,
                 max_attempts: int = 3, warm: bool = True, options: AnalyzeOptions | None = None) -> None:
        self.store = store
        self.options = options or AnalyzeOptions()
        self.data_dir = data_dir
        self.workers = workers
        self.job_timeout = job_timeout
        self.max_attempts = max_attempts
        self.warm = warm
        self.slots = threading.BoundedSemaphore(workers)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.warm_error: str | None = None
        self.lock = threading.Lock()  # guards pool and running: callbacks come from other threads
        self.running: dict[str, _Running] = {}
        self.pool = self._new_pool()
        self.thread = threading.Thread(target=self._dispatch, name="moodlens-dispatch", daemon=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(self.workers) if self.warm and self.workers > 1 else None
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                   initargs=(self.workers, barrier))
        if self.warm:
            self._warm(pool)
        return pool

    def _warm(self, pool: ProcessPoolExecutor) -> None:
        """Start every worker process now and load its models, so no job pays for that."""
        futures = [pool.submit(warm_worker, self.options) for _ in range(self.workers)]
        remaining = [len(futures)]

        def done(future: Future) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None and not self.stopping.is_set():
                self.warm_error = f"{type(error).__name__}: {error}"
                log.error("warming the analysis workers failed: %s", self.warm_error)
            remaining[0] -= 1
            if remaining[0] == 0 and error is None:
                self.ready.set()

        for future in futures:
            future.add_done_callback(done)

    @property
    def health(self) -> str:
        """ready, starting (models loading) or degraded (say why)."""
        if not self.thread.is_alive() and not self.stopping.is_set():
            return "degraded: the job dispatcher has stopped"
        if self.warm_error:
            return f"degraded: the analysis workers could not load their models ({self.warm_error})"
        return "ready" if self.ready.is_set() or not self.warm else "starting"

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
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        with self.lock:
            pool = self.pool
        # The executor has no public way to end busy workers, and left alone they outlive us.
        processes = list(getattr(pool, "_processes", {}).values())
        # With no job running, the executor's exit sentinels end each worker cleanly, and a worker
        # that exits by itself unlinks its semaphores (a killed one leaves them to the resource
        # tracker, which warns). A running job (or a warm-up) holds the sentinels back, so then
        # workers are killed.
        idle = self.ready.is_set() and all(self.slots.acquire(blocking=False) for _ in range(self.workers))
        if not idle:
            for process in processes:
                process.terminate()
        # shutdown(wait=True) joins the executor's manager thread, which joins the workers and lets
        # go of the queues; it runs beside us so that a worker stuck on exit cannot hang the server
        closer = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
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
        with self.lock:
            del self.pool
        del pool, processes  # a spawned Process keeps its arguments, the queues among them
        gc.collect()

    def _dispatch(self) -> None:
        while not self.stopping.is_set():
            try:
                self._dispatch_one()
            except Exception:  # never let one bad moment stop the queue
                log.exception("the job dispatcher hit an error; it goes on")
                time.sleep(0.5)

    def _dispatch_one(self) -> None:
        self._enforce_time_limit()
        if self.warm and not self.warm_error and not self.ready.wait(timeout=0.5):
            return  # jobs wait for warm workers, so their time limit counts analysis alone
        if not self.slots.acquire(timeout=0.5):
            return
        job = None
        try:
            job = self.store.claim()
            if job is None:
                self.slots.release()
                self.wake.wait(1.0)
                self.wake.clear()
                return
            media = media_file(self.data_dir, job.id)
            if media is None:
                self.store.finish(job.id, "the uploaded file is gone")
                self.slots.release()
                return
            with self.lock:
                pool = self.pool
                future = pool.submit(run_job, job.id, str(media), job.filename,
                                     str(job_folder(self.data_dir, job.id)), self.store.url, self.options)
                self.running[job.id] = _Running(job, pool, time.monotonic())
            future.add_done_callback(lambda f, job_id=job.id: self._done(job_id, f))
        except BaseException as err:
            # claimed but not handed over: give the slot back and let the retry rules decide
            self.slots.release()
            if job is not None:
                with self.lock:
                    self.running.pop(job.id, None)
                self.store.retry(job.id, self.max_attempts, "the job could not be started")
            if isinstance(err, BrokenProcessPool):
                self._replace_pool(self.pool)
            raise

    def _enforce_time_limit(self) -> None:
        now = time.monotonic()
        with self.lock:
            late = [r for r in self.running.values() if not r.timed_out and now - r.started > self.job_timeout]
            for run in late:
                run.timed_out = True
            pools = {id(r.pool): r.pool for r in late}
        for pool in pools.values():
            # A process pool can't cancel one running task: end its processes. Their other jobs
            # go back to the queue (see _done), and the pool is replaced.
            log.warning("a job ran past the %.0f s limit; ending its worker processes", self.job_timeout)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()

    def _done(self, job_id: str, future: Future) -> None:
        with self.lock:
            run = self.running.pop(job_id, None)
        try:
            if self.stopping.is_set() and (future.cancelled() or future.exception() is not None):
                return  # cut short by shutdown: left `running`, so the next start queues it again
            try:
                error = future.result()
            except BrokenProcessPool:
                self._replace_pool(run.pool if run else None)
                if run is not None and run.timed_out:
                    error = f"the analysis took longer than the {self.job_timeout:g} s limit"
                else:
                    # Which of the pool's jobs killed it is unknown: each is tried again, and a file
                    # that keeps killing workers fails once it has used its attempts.
                    self.store.retry(job_id, self.max_attempts, "the analysis worker crashed on this file")
                    return
            except Exception as err:
                log.error("job %s: %s: %s", job_id, type(err).__name__, err)
                error = "analysis failed: internal error (see the server log)"
            self.store.finish(job_id, error)
        except Exception:
            log.exception("recording the end of job %s failed", job_id)
        finally:
            self.slots.release()
            self.wake.set()

    def _replace_pool(self, broken: ProcessPoolExecutor | None) -> None:
        """Several callbacks see the same broken pool; only the first replaces it."""
        with self.lock:
            if self.stopping.is_set() or broken is None or broken is not self.pool:
                return
            self.ready.clear()
            self.pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)
