"""Text expert: the shipped MELD text model over each utterance with its dialogue context."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from moodlens.analysis import ModalityInfo, ModalityResult, Prediction
from moodlens.experts.base import ExpertOutput, MediaContext, finished
from moodlens.features import text_with_context
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.text import TextModel, load_text_expert
from moodlens.options import AnalyzeOptions
from moodlens.utterances import Utterance


class TextExpert:
    name = "text"
    needs = "text"

    def __init__(self, options: AnalyzeOptions) -> None:
        self.model: TextModel = load_text_expert(options.text_weights, options.device)

    def describe(self) -> ModalityInfo:
        dev = self.model.metadata.get("dev", {})
        return ModalityInfo(
            available=True, model=self.model.description,
            trained_on=(f"MELD train text; dev weighted-F1 emotion {dev.get('emotion_weighted_f1')}, "
                        f"sentiment {dev.get('sentiment_weighted_f1')}"))

    def reading_ahead(self, media: MediaContext) -> AbstractContextManager[None]:
        return nullcontext()  # every step needs the utterances

    def predict(self, media: MediaContext, utterances: Sequence[Utterance]) -> ExpertOutput:
        media.report(self.name, 0.0)
        results = self.judge(utterances)
        media.report(self.name, 1.0)
        reason = "no speech found" if media.info.has_audio else "no audio stream and no transcript"
        return finished(self.describe(), results, reason)

    def judge(self, utterances: Sequence[Utterance], only: Sequence[int] | None = None) -> list[ModalityResult | None]:
        """Each utterance read with the turns before it as context; `only`: just these indices (a
        live utterance's earlier turns are context, already judged), the others None."""
        # the English of speech in another language (language.py): the model was trained on English
        texts = [u.text_en if u.text_en is not None else u.text for u in utterances]
        spoken = [i for i, text in enumerate(texts) if text and (only is None or i in only)]
        turns = self.model.config.context_turns
        pairs = [text_with_context([t for t in texts[: i + 1] if t], turns) for i in spoken]
        emotion, sentiment = self.model.predict([p[0] for p in pairs], [p[1] for p in pairs])
        results: list[ModalityResult | None] = [None] * len(utterances)
        for row, index in enumerate(spoken):
            results[index] = ModalityResult(
                Prediction.from_probabilities(EMOTIONS, emotion[row]),
                Prediction.from_probabilities(SENTIMENTS, sentiment[row]),
                coverage=1.0, detail={"context_turns": min(index, turns)})
        return results
