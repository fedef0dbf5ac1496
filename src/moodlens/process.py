"""Settings for a process that moodlens owns (the CLI, a server worker, a benchmark)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import lru_cache

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
# 8 MB: as flat over video length as 1 MB (bench/memory_long_video.py), about 9 % faster (bench/stage_profile.py)
DEFAULT_THRESHOLD = 8 << 20


def limit_heap_growth(threshold_bytes: int | None = None) -> bool:
    """Serve allocations above `threshold_bytes` with mmap, and return them to the OS on free.

    glibc raises its mmap threshold each time a large block is freed, so the tensors of one
    batch are later recycled from a heap that only grows: a long video then costs more peak
    memory than a short one for no reason. A fixed threshold keeps the peak flat. This is a
    process-wide setting, so the library never calls it on its own. Returns False off glibc.
    """
    if threshold_bytes is None:  # MOODLENS_MMAP_THRESHOLD overrides, for measuring its cost
        threshold_bytes = int(os.environ.get("MOODLENS_MMAP_THRESHOLD", DEFAULT_THRESHOLD))
    libc = _glibc()
    if libc is None or threshold_bytes <= 0:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))


def return_freed_memory() -> bool:
    """Hand the memory that has been freed back to the OS (glibc's malloc_trim); False off glibc.

    A live stream allocates and frees in several threads for as long as it runs (ONNX Runtime,
    CTranslate2, torch), and glibc keeps each thread arena's freed pages until asked. Handing
    them back lowers the level between peaks; it has not made a 30-minute stream's peak the
    same from run to run (docs/live.md). Unlike limit_heap_growth it changes no setting, so a
    live session calls it itself."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


# oneDNN, inside torch and CTranslate2, keeps a compiled kernel for every input shape it has met,
# up to 1,024 of them, and utterances of every length are new shapes: a 30-minute live stream's
# memory level rose by 180 MB with them, 31 MB of it after the 10th minute. At 256 it rose by
# 83 MB, 9 after the 10th minute, and the demo's real-time factor did not change; at 64 the demo
# took a tenth longer, and with no cache a long stream a third longer (docs/live.md).
KERNEL_CACHE = 256
_KERNEL_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")


def limit_kernel_cache(capacity: int = KERNEL_CACHE) -> bool:
    """Keep at most `capacity` compiled oneDNN kernels, unless the user set
    ONEDNN_PRIMITIVE_CACHE_CAPACITY (or DNNL_…) already. oneDNN reads it when it first compiles
    a kernel, so call this before any model runs. Returns whether it was set here."""
    if any(name in os.environ for name in _KERNEL_CACHE_VARIABLES):
        return False
    os.environ[_KERNEL_CACHE_VARIABLES[0]] = str(capacity)
    return True


def keep_memory_flat() -> None:
    """What a process that reads media of any length sets first: a fixed mmap threshold
    (limit_heap_growth) and a bounded kernel cache (limit_kernel_cache)."""
    limit_heap_growth()
    limit_kernel_cache()


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
