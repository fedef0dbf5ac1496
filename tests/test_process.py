import sys

import pytest

from moodlens.process import limit_heap_growth


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_limit_heap_growth_is_accepted_by_glibc() -> None:
    assert limit_heap_growth() is True
