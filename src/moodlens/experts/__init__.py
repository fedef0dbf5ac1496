"""The modality experts. Adding one is one new module and one line in EXPERTS."""

from __future__ import annotations

from collections.abc import Callable

from moodlens.experts.base import Expert, ExpertOutput, MediaContext
from moodlens.experts.face import FaceExpert
from moodlens.experts.text import TextExpert
from moodlens.experts.voice import VoiceExpert
from moodlens.options import MODALITIES, AnalyzeOptions

EXPERTS: dict[str, Callable[[AnalyzeOptions], Expert]] = {
    "text": TextExpert,
    "face": FaceExpert,
    "voice": VoiceExpert,
}

assert tuple(EXPERTS) == MODALITIES, "options.MODALITIES names the experts, in order"

__all__ = ["EXPERTS", "Expert", "ExpertOutput", "MediaContext"]
