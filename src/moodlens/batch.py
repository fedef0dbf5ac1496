"""`moodlens batch`: many videos, on Ray, from and to folders or S3.

Each Ray actor loads the models once and analyses input after input; a local Ray starts when
no cluster address is given, and the same code runs on a cluster with one. Each input ends as
its result files, or as NAME.error.json with the one-line reason; one bad input never stops the
batch, and a re-run skips the inputs whose results are already there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from moodlens.errors import MoodlensError
from moodlens.inputs import Item, Record, analyse_item
from moodlens.options import AnalyzeOptions
from moodlens.runtime import threads_per_worker
from moodlens.storage import Destination


class BatchWorker:
    """A Ray actor: models loaded once in __init__, then one input per call."""

    def __init__(self, options: AnalyzeOptions, dest: str, formats: list[str]) -> None:
        from moodlens.pipeline import warm_up
        from moodlens.process import keep_memory_flat

        keep_memory_flat()  # as in analyze and the server's workers: a long video must not grow memory for good
        self.options, self.dest, self.formats = options, Destination(dest), formats
        warm_up(options)

    def analyse(self, item: Item) -> Record:
        # the Analysis stays here: the driver needs only the record, and it would cross the network
        return replace(analyse_item(item, self.dest, self.formats, self.options, error_files=True), analysis=None)

    def ping(self) -> bool:
        return True


def run_batch(items: Sequence[Item], dest: Destination, formats: Sequence[str], options: AnalyzeOptions,
              concurrency: int, address: str | None = None) -> Iterator[Record]:
    """Records as inputs finish, in the order they finish."""
    if not items:
        return
    import ray

    cores = os.cpu_count() or 1
    threads = threads_per_worker(concurrency)
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
             ignore_reinit_error=True, num_cpus=None if address else max(cores, concurrency),
             runtime_env={"env_vars": {"MOODLENS_THREADS": str(threads), "HF_HUB_OFFLINE":
                                       os.environ.get("HF_HUB_OFFLINE", "0"), "TRANSFORMERS_VERBOSITY": "error"}})
    try:
        workers = min(concurrency, len(items))
        gpus = gpu_share(ray.cluster_resources().get("GPU", 0.0), workers) if options.device == "cuda" else 0.0
        # an actor whose process dies (out of memory, a crash in native code) is restarted, and
        # only the input it was analysing fails: tasks are not retried, so such a file can't loop
        worker = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=-1, max_task_retries=0)(BatchWorker)
        idle = [worker.remote(options, dest.uri, list(formats)) for _ in range(workers)]
        queue = list(items)
        running: dict[object, tuple[Item, object]] = {}
        while queue or running:
            while idle and queue:
                actor, item = idle.pop(), queue.pop(0)
                running[actor.analyse.remote(item)] = (item, actor)
            if not running:  # every worker is gone for good
                for item in queue:
                    yield Record(item.uri, item.name, "failed", error=f"{item.uri}: no batch worker is left")
                return
            (finished,), _ = ray.wait(list(running), num_returns=1)
            item, actor = running.pop(finished)
            try:
                record = ray.get(finished)
                idle.append(actor)
            except ray.exceptions.RayError as err:
                # the worker died under this input: it fails (never retried, so a file that kills
                # workers can't loop), and its actor gets new work only once it is back and warm
                reason = str(err).strip().splitlines()[0][:200]
                record = Record(item.uri, item.name, "failed", error=f"{item.uri}: batch worker died ({reason})")
                if _revived(actor):
                    idle.append(actor)
            yield record
    finally:
        ray.shutdown()


def gpu_share(cluster_gpus: float, workers: int) -> float:
    """Each worker's share of the cluster's GPUs for `--device cuda`.

    Ray hides every GPU from an actor that asks for none (CUDA_VISIBLE_DEVICES=""), so the
    workers must ask. A share, not a whole GPU: one short file keeps neither a GPU nor many
    cores busy (ASR and face detection run on the CPU with the stock wheels), and on one H100
    with 16 cores, 8 processes analysed 2.8 times the files per minute that one did. At most 1
    GPU each; rounded down so that the shares fit the GPUs exactly.
    """
    if cluster_gpus <= 0:
        raise MoodlensError("device cuda asked for, but the Ray cluster has no GPU")
    return math.floor(min(1.0, cluster_gpus / workers) * 10_000) / 10_000


def _revived(actor: object, seconds: float = 300.0) -> bool:
    """Wait for a restarted actor to be up (its models loaded again); False if it never is."""
    import ray

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return bool(ray.get(actor.ping.remote(), timeout=max(1.0, deadline - time.monotonic())))
        except ray.exceptions.ActorUnavailableError:
            time.sleep(0.5)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return False
    return False
