"""How moodlens uses this machine: CPU threads and the CPU features that decide a numeric path.

Every model reads its thread count and its bf16 choice here, so one environment variable changes
them all: MOODLENS_THREADS (threads per process; the server and `batch` split the cores between
their workers with it) and MOODLENS_BF16 (0 or 1 forces float32 or bfloat16 on the CPU).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

# Each numeric library's own switch, read when it loads, that makes this machine's CPU act as an
# AVX2-only one (no AVX-512, no bf16), as many users' CPUs are; the benches' --cpu-isa avx2 sets
# them before importing anything. onnxruntime has no such switch and keeps its own dispatch.
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "CT2_FORCE_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2", "MOODLENS_BF16": "0"}


def threads() -> int:
    """Threads for the models of this process: MOODLENS_THREADS, else every core."""
    return int(os.environ.get("MOODLENS_THREADS", "0")) or (os.cpu_count() or 1)


def threads_per_worker(workers: int) -> int:
    """Each of `workers` processes' share of the cores, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread within it: an analysis's own products are small enough for one.

    numpy's OpenBLAS busy-waits on its other threads for about 0.1 s after each multithreaded
    product (the mel filterbank of every Whisper window is one), taking a core from torch,
    onnxruntime and CTranslate2 just when they start. Only within: the caller's numpy keeps its threads.
    """
    with _blas_libraries().limit(limits=1, user_api="blas"):
        yield


@lru_cache(maxsize=1)
def _blas_libraries() -> ThreadpoolController:
    from threadpoolctl import ThreadpoolController

    # found once: looking them up costs 3 ms a call
    return ThreadpoolController()


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
