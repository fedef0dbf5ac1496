"""moodlens.Analyzer: models loaded once, many files, a bad one reported and passed by."""

from __future__ import annotations

from pathlib import Path

import pandas
import pytest

import moodlens
from moodlens.analyzer import Analyzer, Outcome
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.pipeline import STAGES

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.mp4"


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return moodlens.Analyzer(modalities=("text", "voice"), language="en")


def test_many_files_go_on_past_a_bad_one(analyzer: Analyzer, tmp_path: Path, media_dir: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    seen: list[tuple[str, float]] = []
    outcomes = list(analyzer.analyze_many([DEMO, empty, media_dir / "tone.wav"],
                                          progress=lambda stage, done: seen.append((stage, done))))
    assert [o.path for o in outcomes] == [str(DEMO), str(empty), str(media_dir / "tone.wav")]
    first, bad, tone = outcomes
    assert first.error is None and first.analysis is not None and first.analysis.utterances
    assert bad.analysis is None and bad.error and "\n" not in bad.error and "empty.mp4" in bad.error
    assert tone.error is None and tone.analysis is not None
    assert {stage for stage, _ in seen} <= set(STAGES) and ("utterances", 1.0) in seen
    # the options are the analyzer's own, file after file
    assert first.analysis.settings.modalities == ["text", "voice"]
    assert not first.analysis.modalities["face"].available


def test_to_pandas_is_the_csv_table(analyzer: Analyzer) -> None:
    analysis = analyzer.analyze(DEMO)
    frame = analysis.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == len(analysis.utterances)
    assert list(frame["text"]) == [u.text for u in analysis.utterances]
    emotion = frame[[f"emotion_p_{e}" for e in EMOTIONS]].to_numpy()
    sentiment = frame[[f"sentiment_p_{s}" for s in SENTIMENTS]].to_numpy()
    assert abs(emotion.sum(axis=1) - 1).max() < 1e-3 and abs(sentiment.sum(axis=1) - 1).max() < 1e-3
    assert list(frame["emotion"]) == [EMOTIONS[i] for i in emotion.argmax(axis=1)]
    assert (frame["end"] >= frame["start"]).all()


def test_options_come_as_one_object_or_as_keywords() -> None:
    with pytest.raises(TypeError, match="not both"):
        Analyzer(moodlens.AnalyzeOptions(), fps=1.0)
    with pytest.raises(ValueError, match="fps"):
        Analyzer(fps=0)
    assert Outcome("x", None, "x: empty file").error == "x: empty file"
