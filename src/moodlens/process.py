"""Settings for a process that moodlens owns (the CLI, a server worker, a benchmark)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

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
    if not sys.platform.startswith("linux") or threshold_bytes <= 0:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
    except (OSError, AttributeError):
        return False
