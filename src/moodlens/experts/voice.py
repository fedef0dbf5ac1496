"""Voice expert: how it sounds. Whisper tiny.en encoder states of each utterance's audio,
mean+std pooled, centred per file, and a linear head trained on acted emotional speech
(`moodlens train-voice`; the shipped head: RAVDESS, CC BY-NC-SA 4.0, non-commercial)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np

from moodlens.analysis import ATYPICALITY, PITCH_JITTER, ModalityInfo, ModalityResult, Prediction
from moodlens.asr import cpu_fallback_note
from moodlens.experts.base import ExpertOutput, MediaContext, finished, sentiment_from_emotion, unavailable
from moodlens.features import padded_spans, utterance_audio
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.media import SAMPLE_RATE, iter_audio
from moodlens.models.voice import (
    CONTEXT_SECONDS,
    MAX_CLIP_SECONDS,
    MIN_CLIP_SECONDS,
    VoiceHead,
    encoder_for,
    full_distribution,
    load_voice_head,
)
from moodlens.options import AnalyzeOptions
from moodlens.pitch import pitch_jitter
from moodlens.utterances import Utterance

SILENCE_RMS = 10 ** (-50 / 20)  # -50 dBFS: nothing to hear


class VoiceExpert:
    name = "voice"
    needs = "audio"

    def __init__(self, options: AnalyzeOptions) -> None:
        self.head: VoiceHead = load_voice_head(options.voice_weights)
        self.encoder = encoder_for(self.head, options.device)

    def describe(self) -> ModalityInfo:
        evaluation = self.head.metadata.get("evaluation", {})
        held = evaluation.get("heldout_accuracy")
        score = (f"; held-out speakers {', '.join(evaluation.get('heldout_speakers', []))}: accuracy {held} "
                 f"(chance {evaluation.get('chance')})") if held is not None else ""
        cross = "".join(f"; cross-corpus {name}: accuracy {s['accuracy']} (chance {s['chance']})"
                        for name, s in evaluation.get("cross_corpus", {}).items())
        return ModalityInfo(
            available=True,
            model=f"Whisper {self.head.config.encoder} encoder states, mean+std pooled, speaker-centred, "
                  f"+ linear head over {len(self.head.config.classes)} emotions",
            trained_on=str(self.head.metadata.get("trained_on", "unknown data")) + score + cross)

    def reading_ahead(self, media: MediaContext) -> AbstractContextManager[None]:
        return nullcontext()  # every step needs the utterances

    def predict(self, media: MediaContext, utterances: Sequence[Utterance]) -> ExpertOutput:
        if not media.info.has_audio:
            return unavailable(self.describe(), "no audio stream", len(utterances))
        media.report(self.name, 0.0)
        if note := cpu_fallback_note(self.head.config.encoder, media.options.device, "the voice encoder"):
            media.notes.append(note)
        results: list[ModalityResult | None] = [None] * len(utterances)
        spans = [(u.start, u.end) for u in utterances]
        read = padded_spans(spans, CONTEXT_SECONDS)
        chunks = (media.audio.chunks(60.0) if media.audio is not None
                  else iter_audio(media.info.path, 60.0, media.notes, media.damage))
        features: dict[int, np.ndarray] = {}
        seconds: dict[int, float] = {}
        jitters: dict[int, float | None] = {}
        for i, samples in utterance_audio(chunks, read, seconds=MAX_CLIP_SECONDS):
            lead = round((spans[i][0] - read[i][0]) * SAMPLE_RATE)
            own = samples[lead:lead + round(utterances[i].duration * SAMPLE_RATE)]
            results[i] = self.inaudible(own)
            if results[i] is None:
                features[i], seconds[i] = self.features(samples), samples.size / SAMPLE_RATE
                jitters[i] = pitch_jitter(own)
                media.report(self.name, min(1.0, utterances[i].end / max(media.info.duration, 1e-6)))
        order = sorted(features)
        judged = self.judge([features[i] for i in order], [seconds[i] for i in order], [jitters[i] for i in order])
        for i, result in zip(order, judged, strict=True):
            results[i] = result
        media.report(self.name, 1.0)
        return finished(self.describe(), results, "no utterance long and loud enough for the voice")

    @staticmethod
    def inaudible(samples: np.ndarray) -> ModalityResult | None:
        """A skipped result for a clip too short or too quiet for the voice; None where it can be heard."""
        seconds = samples.size / SAMPLE_RATE
        if seconds < MIN_CLIP_SECONDS:
            return _skipped(f"too short ({seconds:.2f} s < {MIN_CLIP_SECONDS} s)", seconds)
        if float(np.sqrt(np.mean(np.square(samples)))) < SILENCE_RMS:
            return _skipped("silent (below -50 dBFS)", seconds)
        return None

    def features(self, samples: np.ndarray) -> np.ndarray:
        """The pooled encoder states of one clip (at most MAX_CLIP_SECONDS of it): the utterance
        with up to CONTEXT_SECONDS of the audio around it, as the head was trained."""
        return next(iter(self.encoder.pooled([(0, samples)])))[1]

    def judge(self, features: Sequence[np.ndarray], seconds: Sequence[float], jitters: Sequence[float | None],
              rows: Sequence[int] | None = None) -> list[ModalityResult]:
        """Results for the clips of ONE file or stream, whose features are centred together (for
        those at `rows` only: a live stream judges its newest clip against all so far); `seconds`:
        the audio each clip read, its context included; `jitters`: the pitch_jitter of each
        utterance's own audio, which fusion reads (fusion.Trust.voice)."""
        if not len(features):
            return []
        stacked = np.stack(features)
        rows = range(len(stacked)) if rows is None else rows
        probabilities = self.head.predict(stacked)
        atypical = self.head.atypicality(stacked)
        results = []
        for row in rows:
            emotion = full_distribution(self.head.config.classes, probabilities[row], EMOTIONS)
            results.append(ModalityResult(
                Prediction.from_probabilities(EMOTIONS, emotion),
                Prediction.from_probabilities(SENTIMENTS, sentiment_from_emotion(emotion)),
                coverage=1.0,
                detail={"seconds_read": round(min(seconds[row], MAX_CLIP_SECONDS), 3),
                        ATYPICALITY: round(float(atypical[row]), 4),
                        PITCH_JITTER: None if jitters[row] is None else round(float(jitters[row]), 4),
                        "classes": list(self.head.config.classes),
                        "sentiment_from": "emotion, via P(sentiment | emotion) on MELD train"}))
        return results


def _skipped(reason: str, seconds: float) -> ModalityResult:
    return ModalityResult(None, None, 0.0, {"skipped": reason, "seconds": round(seconds, 3)})
