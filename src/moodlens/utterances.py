"""Utterances: who says what, when; the unit every later stage reads.

They come from speech recognition (asr.py), a transcript file (transcripts.py), or, for media
without audio, fixed windows (below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

UtteranceSource = Literal["asr", "transcript", "window"]


@dataclass(frozen=True)
class Utterance:
    start: float
    end: float
    text: str
    speaker: str | None = None
    source: UtteranceSource = "asr"
    language: str | None = None  # what was heard (language.py); None: not told (transcripts, silence)
    language_probability: float | None = None  # Whisper's, where it was detected rather than given
    # The English that the text model reads, where the speech was in another language (Whisper's
    # translate task); None where `text` is already English.
    text_en: str | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def fixed_windows(duration: float, window: float = 5.0) -> list[Utterance]:
    """Speechless stretches for media with no audio: face-only analysis per window."""
    count = max(1, int(-(-duration // window)))
    return [
        Utterance(i * window, min(duration, (i + 1) * window), "", None, "window")
        for i in range(count)
    ]
