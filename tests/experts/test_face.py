"""The face expert: reading ahead while speech recognition runs, and which frames each utterance reads."""

from __future__ import annotations

import os
import threading
import time

import pytest

from moodlens.experts.base import ExpertOutput, MediaContext
from moodlens.experts.face import FaceExpert
from moodlens.media import DecodeDamage, probe, sample_frames
from moodlens.options import AnalyzeOptions
from moodlens.utterances import Utterance
from tests.conftest import DEMO

# the demo's speech, roughly; one utterance far shorter than the half-second sampling step
UTTERANCES = [Utterance(0.4, 3.6, "one"), Utterance(4.0, 7.4, "two"), Utterance(8.5, 8.6, "Yeah."),
              Utterance(12.0, 16.0, "three")]


def context(notes: list[str] | None = None) -> MediaContext:
    return MediaContext(probe(DEMO), AnalyzeOptions(), [] if notes is None else notes, DecodeDamage(),
                        lambda stage, done: None)


def summary(output: ExpertOutput) -> list[list[float] | None]:
    """Each utterance's frame count, then its emotion probabilities."""
    return [None if r is None or r.emotion is None else [r.detail["frames"], *r.emotion.probabilities.values()]
            for r in output.results]


def test_reading_ahead_gives_what_reading_afterwards_gives() -> None:
    """Frames read on the thread while the block runs count as if predict had read them."""
    ahead = FaceExpert(AnalyzeOptions())
    media = context()
    niceness = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None
    with ahead.reading_ahead(media):
        time.sleep(1.0)  # speech recognition would run here
    if niceness is not None:  # the reading thread lowers its own priority, not the caller's
        assert os.getpriority(os.PRIO_PROCESS, 0) == niceness
    assert ahead.reader is not None and ahead.reader.read, "the thread read no frame in a second"
    assert not [t for t in threading.enumerate() if t.name == "moodlens-faces"]
    found = ahead.predict(media, UTTERANCES)
    expected = FaceExpert(AnalyzeOptions()).predict(context(), UTTERANCES)
    assert all(r is not None for r in summary(found))
    for ours, theirs in zip(summary(found), summary(expected), strict=True):
        assert ours == pytest.approx(theirs, abs=1e-4)


def test_a_short_utterance_between_two_samples_reads_the_nearest_frame() -> None:
    output = FaceExpert(AnalyzeOptions()).predict(context(), UTTERANCES)
    short = output.results[2]
    assert short is not None and short.detail["frames"] == 1
    times = [f.time for f in sample_frames(DEMO, AnalyzeOptions().fps)]
    assert not any(8.5 <= t <= 8.6 for t in times)  # no sample falls inside it
    assert min(abs(t - 8.55) for t in times) <= 0.5 / AnalyzeOptions().fps
    long = output.results[0]
    assert long is not None and long.detail["frames"] == sum(0.4 <= t <= 3.6 for t in times)


def test_a_failure_while_reading_ahead_stops_the_thread() -> None:
    expert = FaceExpert(AnalyzeOptions())
    with pytest.raises(RuntimeError, match="speech recognition failed"), expert.reading_ahead(context()):
        raise RuntimeError("speech recognition failed")
    assert not [t for t in threading.enumerate() if t.name == "moodlens-faces"]
    assert expert.reader is None
