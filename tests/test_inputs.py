"""Inputs to results, one at a time: unique names, skipping what is done, a bad input as its record."""

from __future__ import annotations

import json
from pathlib import Path

from moodlens.inputs import ERROR_SUFFIX, Item, absolute, analyse_item, plan, summary_line
from moodlens.options import AnalyzeOptions
from moodlens.storage import Destination


def test_plan_skips_inputs_whose_results_all_exist(tmp_path: Path) -> None:
    dest = Destination(str(tmp_path))
    (tmp_path / "a.analysis.json").write_text("{}")
    (tmp_path / "a.srt").write_text("")
    (tmp_path / "b.analysis.json").write_text("{}")  # b lacks its srt: redone
    todo, skipped = plan(["x/a.mp4", "x/b.mp4", "y/a.mp4"], dest, ["json", "srt"], overwrite=False)
    assert [r.uri for r in skipped] == ["x/a.mp4"]
    assert todo == [Item("x/b.mp4", "b"), Item("y/a.mp4", "a-2")]  # its own name
    todo, skipped = plan(["x/a.mp4", "s3://b/v/a.mp4"], dest, ["json", "srt"])
    assert todo == [Item("x/a.mp4", "a"), Item("s3://b/v/a.mp4", "a-2")] and skipped == []


def test_workers_get_absolute_paths() -> None:
    # a Ray worker's working directory is not the driver's
    assert absolute("x/a.mp4") == str(Path("x/a.mp4").resolve()) and Path(absolute("x/a.mp4")).is_absolute()
    assert absolute("s3://b/v/a.mp4") == "s3://b/v/a.mp4"


def test_a_bad_input_becomes_its_error_record(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 2048)
    dest = Destination(str(tmp_path / "out"))
    record = analyse_item(Item(str(bad), "bad"), dest, ["json"], AnalyzeOptions(), error_files=True)
    assert record.status == "failed" and "\n" not in record.error and "bad.mp4" in record.error
    stored = json.loads((tmp_path / "out" / f"bad{ERROR_SUFFIX}").read_text(encoding="utf-8"))
    assert stored == {"input": str(bad), "error": record.error}
    assert not (tmp_path / "out" / "bad.analysis.json").exists()
    assert "1 failed" in summary_line([record], 1.0)


def test_without_error_files_a_failure_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    record = analyse_item(Item(str(bad), "bad"), Destination(str(tmp_path / "out")), ["json"], AnalyzeOptions())
    assert record.status == "failed" and record.analysis is None and "bad.mp4" in record.error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
