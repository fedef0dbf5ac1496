"""The whole-video summary: where the time went, emotionally, and how sentiment moved."""

from __future__ import annotations

from collections.abc import Sequence

from moodlens.analysis import SentimentPoint, SpeakerSummary, Summary, UtteranceResult
from moodlens.labels import EMOTIONS


def sentiment_score(probabilities: dict[str, float]) -> float:
    """P(positive) - P(negative), in [-1, 1]."""
    return probabilities["positive"] - probabilities["negative"]


def summarize(utterances: Sequence[UtteranceResult]) -> Summary:
    predicted = [u for u in utterances if u.emotion is not None and u.sentiment is not None]
    # A zero-length utterance still happened; give it a sliver of time so it counts.
    durations = [max(u.end - u.start, 1e-3) for u in predicted]
    total = sum(durations)
    share = dict.fromkeys(EMOTIONS, 0.0)
    for u, d in zip(predicted, durations, strict=True):
        share[u.emotion.label] += d / total
    timeline = [
        SentimentPoint(u.start, u.end, round(sentiment_score(u.sentiment.probabilities), 6))
        for u in predicted
    ]
    overall = (
        round(sum(p.score * d for p, d in zip(timeline, durations, strict=True)) / total, 6)
        if predicted else None
    )
    return Summary(
        utterance_count=len(utterances),
        speaking_time=round(sum(u.end - u.start for u in utterances if u.source != "window"), 3),
        emotion_share={k: round(v, 6) for k, v in share.items()},
        dominant_emotion=max(share, key=share.__getitem__) if predicted else None,
        sentiment_score=overall,
        sentiment_timeline=timeline,
    )


def summarize_speakers(utterances: Sequence[UtteranceResult], names: Sequence[str] = ()) -> list[SpeakerSummary]:
    """Per speaker, in order of first appearance: talk time, utterances, emotion shares, mean
    sentiment and the face tracks seen talking. `names` are the ids a transcript gave; "unknown"
    and undiarized utterances belong to no speaker."""
    by_speaker: dict[str, list[UtteranceResult]] = {}
    for u in sorted(utterances, key=lambda u: (u.start, u.index)):
        if u.speaker and u.speaker != "unknown":
            by_speaker.setdefault(u.speaker, []).append(u)
    speakers = []
    for speaker, said in by_speaker.items():
        summary = summarize(said)
        tracks = sorted({u.speaker_detail["face_track"] for u in said if "face_track" in u.speaker_detail},
                        key=lambda t: int(t[1:]) if t[1:].isdigit() else 0)
        speakers.append(SpeakerSummary(
            id=speaker, name=speaker if speaker in names else None,
            talk_time=round(sum(u.end - u.start for u in said), 3), utterance_count=len(said),
            emotion_share=summary.emotion_share, dominant_emotion=summary.dominant_emotion,
            sentiment_score=summary.sentiment_score, face_tracks=tracks))
    return speakers
