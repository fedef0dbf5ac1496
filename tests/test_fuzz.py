"""A small seeded fuzz run through `moodlens analyze` (bench/fuzz_media.py): damaged real
clips must give an analysis or one clear error line, never a traceback, a hang or a crash."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_thirty_mutated_clips_give_no_traceback_hang_or_crash() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz_media.py"), "30", "--seed", "11", "--slice", "30",
         "--file-timeout", "60", "--json"],
        capture_output=True, text=True, timeout=1200, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["files"] == 30
    assert summary["tracebacks"] == 0 and summary["hangs"] == 0 and summary["crashes"] == 0, summary["problems"]
    assert summary["internal_errors"] == 0, summary["problems"]
    assert summary["analysed"] + summary["one_line_errors"] == 30, summary
    assert summary["analysed"] >= 5  # damage that leaves media readable must still be analysed
