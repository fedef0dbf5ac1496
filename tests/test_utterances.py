"""The Utterance unit and the windows that stand in for speech in media without audio."""

from __future__ import annotations

from moodlens.utterances import fixed_windows


def test_fixed_windows_cover_the_duration() -> None:
    windows = fixed_windows(12.0, 5.0)
    assert [(w.start, w.end) for w in windows] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]
    assert all(w.source == "window" and w.text == "" for w in windows)
