"""Analyzer: the models loaded once, then any number of files analysed with them.

    analyzer = moodlens.Analyzer(modalities=("text", "voice"), language="en")
    analysis = analyzer.analyze("call.mp4", progress=lambda stage, done: print(stage, done))
    for outcome in analyzer.analyze_many(["a.mp4", "b.mp4"]):
        print(outcome.path, outcome.error or outcome.analysis.summary.dominant_emotion)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moodlens.analysis import Analysis
from moodlens.errors import MoodlensError
from moodlens.options import AnalyzeOptions
from moodlens.pipeline import Progress, analyze, warm_up


@dataclass(frozen=True)
class Outcome:
    """One input of `analyze_many`: its Analysis, or the one-line reason it has none."""

    path: str
    analysis: Analysis | None
    error: str | None = None


class Analyzer:
    """Loads every model its options need when made (`warm_up`), so each file pays only for itself."""

    def __init__(self, options: AnalyzeOptions | None = None, **fields: Any) -> None:
        if options is not None and fields:
            raise TypeError("give an AnalyzeOptions or its fields as keywords, not both")
        self.options = options or AnalyzeOptions(**fields)
        warm_up(self.options)

    def analyze(self, path: str | Path, progress: Progress | None = None) -> Analysis:
        """One file; a MoodlensError subclass, with a one-line message, on bad input.
        `progress(stage, done)` is called as each stage (pipeline.STAGES) moves from 0 to 1."""
        return analyze(path, self.options, progress)

    def analyze_many(self, paths: Iterable[str | Path], progress: Progress | None = None) -> Iterator[Outcome]:
        """Each path in turn, lazily; a bad file yields its error and the rest go on."""
        for path in paths:
            try:
                yield Outcome(str(path), self.analyze(path, progress))
            except MoodlensError as err:
                yield Outcome(str(path), None, str(err))
