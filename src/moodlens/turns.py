"""Turns: the unit emotion is judged on.

Speech recognition cuts one spoken turn into fragments ("Oh God! | Oh, honey... | Oh, that's
OK."), and a fragment judged alone loses what the rest of the turn says: each of those three
reads as surprise, the whole line as sadness. MELD, which trained the text model, labels whole
subtitle lines, often of several sentences. So consecutive segments with a short gap between
them, of the same speaker where one is known and in the same voice where the voice can tell
(people answer as quickly as they pause inside a line), are joined into a turn, the experts judge the
turn, and every segment of it keeps its own timing and text for captions, with the turn's
emotion and its index (`UtteranceResult.turn`), so a reader sees why two captions share one.

The gap is measured (bench/spoken_dialogues.py and the MELD clips; TURN_GAP_SECONDS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from moodlens.analysis import UtteranceResult
from moodlens.utterances import Utterance

# The longest silence inside one turn. Chosen on the spoken MELD dev dialogues (docs/turns.md,
# bench/spoken_dialogues.py): shorter leaves fragments of one line apart, longer joins different people's lines.
TURN_GAP_SECONDS = 0.2
# A turn never grows past this, however short its pauses: a monologue is still judged line by line.
MAX_TURN_SECONDS = 20.0


@dataclass(frozen=True)
class Turn:
    """Consecutive segments of one speaker, judged as one utterance."""

    index: int
    members: tuple[int, ...]  # indices of the segments it joins, in order
    utterance: Utterance  # what the experts read: first start to last end, texts joined


def group_turns(segments: Sequence[Utterance], max_gap: float = TURN_GAP_SECONDS,
                max_seconds: float = MAX_TURN_SECONDS, voices: Sequence[str | None] | None = None) -> list[Turn]:
    """Join each speech-recognition segment to the turn before it when the silence between them
    is at most `max_gap`, both have the same speaker (None for both counts as the same: unknown
    yet), the segment's voice is the turn's (`voices`, per segment: whom it sounds like, None
    where the voice cannot say; a turn is one voice's) and the turn stays within `max_seconds`.
    A transcript's cues are the user's own units and stay apart, as do the fixed windows of a
    silent video. `max_gap` 0 keeps every segment a turn of its own."""
    groups: list[list[int]] = []
    order = sorted(range(len(segments)), key=lambda i: (segments[i].start, i))
    for i in order:
        segment = segments[i]
        if groups:
            last = segments[groups[-1][-1]]
            first = segments[groups[-1][0]]
            voice = voices[i] if voices is not None else None
            turn_voice = next((voices[j] for j in groups[-1] if voices[j] is not None), None) if voices else None
            if (max_gap > 0 and segment.source == "asr" and last.source == "asr"
                    and segment.speaker == last.speaker and segment.start - last.end <= max_gap
                    and (voice is None or turn_voice is None or voice == turn_voice)
                    and segment.end - first.start <= max_seconds):
                groups[-1].append(i)
                continue
        groups.append([i])
    return [Turn(k, tuple(g), join_segments([segments[i] for i in g])) for k, g in enumerate(groups)]


def describe_turns(segments: Sequence[Utterance], max_gap: float, by_voice: bool) -> str:
    """What a file's turns are made of, for Analysis.settings.turns.unit."""
    if not any(s.source == "asr" for s in segments):
        return "each segment alone (a transcript's cues, or a silent video's windows)"
    if max_gap <= 0:
        return "each recognised segment alone"
    voice = ", within one voice (CAM++)" if by_voice else " (no voice to tell speakers apart)"
    return f"recognised segments joined across pauses of up to {max_gap:g} s{voice}"


def join_segments(parts: Sequence[Utterance]) -> Utterance:
    if len(parts) == 1:
        return parts[0]
    text = " ".join(p.text.strip() for p in parts if p.text.strip())
    english = None
    if any(p.text_en is not None for p in parts):
        english = " ".join((p.text_en if p.text_en is not None else p.text).strip() for p in parts).strip()
    return replace(parts[0], end=max(p.end for p in parts), text=text, text_en=english)


def per_segment(turns: Sequence[Turn], segments: Sequence[Utterance],
                results: Sequence[UtteranceResult]) -> list[UtteranceResult]:
    """One result per segment, in time order: its turn's judgement with its own time and text."""
    out: list[UtteranceResult] = []
    for turn, result in zip(turns, results, strict=True):
        for i in turn.members:
            segment = segments[i]
            out.append(replace(result, index=len(out), start=round(segment.start, 3), end=round(segment.end, 3),
                               text=segment.text, text_en=segment.text_en, language=segment.language,
                               language_probability=segment.language_probability, turn=turn.index))
    return out
