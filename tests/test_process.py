import os
import sys

import pytest

from moodlens.process import limit_heap_growth, return_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_limit_heap_growth_is_accepted_by_glibc() -> None:
    assert limit_heap_growth() is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_the_threshold_can_be_set_or_left_to_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    from moodlens.process import DEFAULT_THRESHOLD

    monkeypatch.setenv("MOODLENS_MMAP_THRESHOLD", "0")
    assert limit_heap_growth() is False  # 0: glibc keeps its own dynamic threshold
    monkeypatch.setenv("MOODLENS_MMAP_THRESHOLD", str(4 << 20))
    assert limit_heap_growth() is True
    assert limit_heap_growth(DEFAULT_THRESHOLD) is True  # as it was


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_memory_is_handed_back() -> None:
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # ~128 MB of heap blocks, below the mmap threshold
    del blocks
    assert return_freed_memory() is True
    assert return_freed_memory() is True  # harmless with nothing left to hand back


def test_the_kernel_cache_is_bounded_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    from moodlens.process import KERNEL_CACHE, limit_kernel_cache

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.delenv("DNNL_PRIMITIVE_CACHE_CAPACITY", raising=False)
    assert limit_kernel_cache() is True
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(KERNEL_CACHE)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "1024")
    assert limit_kernel_cache() is False and os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "1024"
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    monkeypatch.setenv("DNNL_PRIMITIVE_CACHE_CAPACITY", "8")  # the older name counts as a choice too
    assert limit_kernel_cache() is False and "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ
