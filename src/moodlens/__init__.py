"""moodlens: how a video feels, per utterance, from text, face and voice.

    import moodlens
    analysis = moodlens.analyze("ad.mp4")
    print(analysis.summary.dominant_emotion)

    analyzer = moodlens.Analyzer(language="en")    # models loaded once, for many files
    frame = analyzer.analyze("call.mp4").to_pandas()
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any


def _installed_version() -> str:
    # one source of truth: pyproject.toml's version, as the installed package's metadata says it
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moodlens")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _installed_version()

if TYPE_CHECKING:
    from moodlens.analysis import Analysis

__all__ = ["Analysis", "AnalyzeOptions", "Analyzer", "__version__", "analyze"]


def analyze(path: str | Path, **options: Any) -> Analysis:
    """Analyse one media file. Keyword options are AnalyzeOptions fields (fps, transcript, ...)."""
    from moodlens.pipeline import AnalyzeOptions
    from moodlens.pipeline import analyze as run

    return run(path, AnalyzeOptions(**options))


def __getattr__(name: str) -> Any:
    # Heavy imports (torch, transformers) wait until they are needed, so `moodlens --help` is quick.
    if name == "Analysis":
        from moodlens.analysis import Analysis

        return Analysis
    if name == "Analyzer":
        from moodlens.analyzer import Analyzer

        return Analyzer
    if name == "AnalyzeOptions":
        from moodlens.pipeline import AnalyzeOptions

        return AnalyzeOptions
    raise AttributeError(name)
