"""Inputs as users name them (files, folders, globs, lists, s3:// prefixes) to results in a
destination, one at a time; a bad input is recorded with its one-line reason and never stops the
rest. `moodlens analyze` runs the items here, one after another; `moodlens batch` on Ray workers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from moodlens.errors import MoodlensError
from moodlens.options import AnalyzeOptions
from moodlens.storage import Destination, input_stem, is_s3, local_copy
from moodlens.writers import WRITERS, output_names, write

if TYPE_CHECKING:
    from moodlens.analysis import Analysis

Status = Literal["analysed", "skipped", "failed"]
Progress = Callable[[str, float], None]
ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True)
class Item:
    uri: str
    name: str  # what its results are called in the destination: its stem, made unique


@dataclass(frozen=True)
class Record:
    uri: str
    name: str
    status: Status
    written: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    analysis: Analysis | None = None  # kept for the caller in this process; Ray workers drop it


def absolute(uri: str) -> str:
    """A local path as a worker must be given it: absolute, because a Ray worker's working
    directory is not the driver's (on a cluster started with `ray start`, it is Ray's session
    folder). On several machines the path must name shared storage; s3:// URIs go anywhere."""
    return uri if is_s3(uri) else str(Path(uri).resolve())


def plan(inputs: Sequence[str], dest: Destination, formats: Sequence[str],
         overwrite: bool = True) -> tuple[list[Item], list[Record]]:
    """The inputs still to do, each with a unique name, and those skipped because all their
    results exist (only when not overwrite)."""
    names = output_names(PurePosixPath(input_stem(u) + ".x") for u in inputs)
    todo: list[Item] = []
    skipped: list[Record] = []
    for uri, name in zip(inputs, names, strict=True):
        if not overwrite and all(dest.exists(name + WRITERS[f][0]) for f in formats):
            skipped.append(Record(uri, name, "skipped"))
        else:
            todo.append(Item(uri, name))
    return todo, skipped


def analyse_item(item: Item, dest: Destination, formats: Sequence[str], options: AnalyzeOptions,
                 progress: Progress | None = None, error_files: bool = False, reraise: bool = False) -> Record:
    """One input to its results, or to a failed Record; never raises for a bad input (unless
    reraise, for --debug, and then only for what is not a MoodlensError). error_files: a failure
    also leaves NAME.error.json in the destination, and a success removes an earlier one."""
    from moodlens.pipeline import analyze

    started = time.monotonic()
    try:
        with local_copy(item.uri) as path:
            media_name = PurePosixPath(item.uri).name if is_s3(item.uri) else None
            analysis = analyze(path, replace(options, media_name=media_name), progress)
        written = write(analysis, dest.uri, formats, name=item.name)
        if not analysis.incomplete:
            if error_files:
                dest.remove(item.name + ERROR_SUFFIX)  # an earlier failure is now resolved
            return Record(item.uri, item.name, "analysed", written, seconds=time.monotonic() - started,
                          analysis=analysis)
        # damaged media: the partial results are kept, and the input still counts as failed
        reason = f"{item.uri}: {analysis.incomplete[0]}; partial results written"
        return _failed(item, dest, reason, started, error_files, written, analysis)
    except MoodlensError as err:
        reason = str(err)
    except Exception as err:  # one bad input must not end the run: its record says why
        if reraise:
            raise
        first = str(err).splitlines()[0] if str(err) else ""
        reason = f"{item.uri}: analysis failed ({type(err).__name__}: {first})"
    return _failed(item, dest, reason, started, error_files)


def _failed(item: Item, dest: Destination, reason: str, started: float, error_files: bool,
            written: list[str] | None = None, analysis: Analysis | None = None) -> Record:
    record = Record(item.uri, item.name, "failed", written or [], reason, time.monotonic() - started, analysis)
    if not error_files:
        return record
    try:
        dest.write_text(item.name + ERROR_SUFFIX, json.dumps({"input": item.uri, "error": reason}) + "\n")
    except MoodlensError as err:
        record = replace(record, error=f"{reason}; and its error record could not be written ({err})")
    return record


def summary_line(records: Sequence[Record], seconds: float) -> str:
    counts = {s: sum(r.status == s for r in records) for s in ("analysed", "skipped", "failed")}
    analysed = counts["analysed"]
    rate = f"; {60 * analysed / seconds:.1f} videos/min" if analysed and seconds > 0 else ""
    return (f"{len(records)} input(s): {analysed} analysed, {counts['skipped']} skipped (results already there), "
            f"{counts['failed']} failed, in {seconds:.1f} s{rate}")
