"""Settings for a process that moodlens owns (the CLI, a server worker, a benchmark)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def limit_heap_growth(threshold_bytes: int = 1 << 20) -> bool:
    """Serve allocations above `threshold_bytes` with mmap, and return them to the OS on free.

    glibc raises its mmap threshold each time a large block is freed, so the tensors of one
    batch are later recycled from a heap that only grows: a long video then costs more peak
    memory than a short one for no reason. A fixed threshold keeps the peak flat. This is a
    process-wide setting, so the library never calls it on its own. Returns False off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
    except (OSError, AttributeError):
        return False
