"""What every modality expert is: a name, the input it needs, and one `predict` per file."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

import numpy as np

from moodlens.analysis import ModalityInfo, ModalityResult
from moodlens.media import AudioSpool, DecodeDamage, MediaInfo
from moodlens.models.weights import shipped
from moodlens.options import AnalyzeOptions
from moodlens.utterances import Utterance

Need = Literal["text", "audio", "video"]
Progress = Callable[[str, float], None]


@dataclass
class MediaContext:
    """The file an expert reads, and where it reports what it met on the way."""

    info: MediaInfo
    options: AnalyzeOptions
    notes: list[str]
    damage: DecodeDamage
    report: Progress
    audio: AudioSpool | None = None  # the file's audio, decoded once for every pass that reads it


@dataclass(frozen=True)
class ExpertOutput:
    results: list[ModalityResult | None]  # one per utterance; None: no input for it at all
    info: ModalityInfo


class Expert(Protocol):
    name: str  # the Analysis slot it fills: text, face or voice
    needs: Need

    def describe(self) -> ModalityInfo:
        """What it is and what trained it, with `reason` set when it can't run at all."""
        ...

    def reading_ahead(self, media: MediaContext) -> AbstractContextManager[None]:
        """Work that needs no utterances, begun on a thread of its own while speech recognition
        runs in the block (it leaves part of a core idle); `predict` takes it over."""
        ...

    def predict(self, media: MediaContext, utterances: Sequence[Utterance]) -> ExpertOutput:
        ...


def unavailable(info: ModalityInfo, reason: str, count: int) -> ExpertOutput:
    return ExpertOutput([None] * count, ModalityInfo(False, info.model, info.trained_on, reason))


def finished(info: ModalityInfo, results: list[ModalityResult | None], reason: str) -> ExpertOutput:
    """Available if it predicted anything for this file; else unavailable with `reason`."""
    used = any(r is not None and r.emotion is not None for r in results)
    return ExpertOutput(results, ModalityInfo(used, info.model, info.trained_on, None if used else reason))


@lru_cache(maxsize=1)
def _sentiment_given_emotion() -> np.ndarray:
    document = json.loads(shipped("sentiment_given_emotion_meld_train.json").read_text(encoding="utf-8"))
    return np.array(document["matrix"])


def sentiment_from_emotion(emotion: np.ndarray) -> np.ndarray:
    """For experts that see emotion only (face, voice): P(sentiment | emotion) counted on MELD train."""
    return np.asarray(emotion) @ _sentiment_given_emotion()
