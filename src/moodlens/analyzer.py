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
from moodlens.errors import ModelNotFoundError, MoodlensError
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


def check_models(options: AnalyzeOptions, device: str | None = None) -> None:
    """Load each model file that the options name once, so that a missing or corrupt one fails
    with a one-line MoodlensError before any input is read. `device`: where to load them; a
    batch driver checks on the CPU the files that its cluster's GPU workers will use."""
    from moodlens.models.voice import load_voice_head
    from moodlens.models.weights import resolve_asr_model

    device = device or options.device
    if options.model is not None:
        try:
            from moodlens.feature_level import load_feature_model
        except ImportError as err:
            raise ModelNotFoundError(f"--model needs the multimodal extra ({err.name} is missing): "
                                     "pip install 'moodlens[multimodal]'") from None
        try:
            load_feature_model(options.model, device)
        except ValueError as err:
            raise ModelNotFoundError(str(err)) from None
    if options.transcript is None:
        resolve_asr_model(options.asr_model)
    if options.model is None and "voice" in options.modalities:
        load_voice_head(options.voice_weights)
    if options.face_weights and options.model is None and "face" in options.modalities:
        from moodlens.models.face import load_face_expert

        try:
            load_face_expert(options.face_weights, device)
        except Exception as err:  # onnxruntime and safetensors raise their own types
            raise ModelNotFoundError(f"{options.face_weights}: not a face model "
                                     f"({str(err).splitlines()[0][:200]})") from None
