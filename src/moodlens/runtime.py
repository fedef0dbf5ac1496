"""How moodlens uses this machine: CPU threads and the CPU features that decide a numeric path.

Every model reads its thread count and its bf16 choice here, so one environment variable changes
them all: MOODLENS_THREADS (threads per process; the server and `batch` split the cores between
their workers with it) and MOODLENS_BF16 (0 or 1 forces float32 or bfloat16 on the CPU).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


def threads() -> int:
    """Threads for the models of this process: MOODLENS_THREADS, else every core."""
    return int(os.environ.get("MOODLENS_THREADS", "0")) or (os.cpu_count() or 1)


def threads_per_worker(workers: int) -> int:
    """Each of `workers` processes' share of the cores, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def use_torch_threads() -> None:
    import torch

    torch.set_num_threads(threads())


@lru_cache(maxsize=1)
def fast_bf16() -> bool:
    """Whether this CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX); MOODLENS_BF16=0/1 overrides.

    There, bf16 autocast runs MPNet 2.4x faster for a 0.001 change in dev weighted F1; elsewhere it
    would be emulated and slower, so float32 stays.
    """
    forced = os.environ.get("MOODLENS_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
