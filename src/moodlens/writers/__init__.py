"""Output writers, one registry. Each writer reads an Analysis and nothing else."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from pathlib import Path

from moodlens.analysis import Analysis, UtteranceResult
from moodlens.labels import EMOTIONS, SENTIMENTS

Render = Callable[[Analysis], str]


def render_json(analysis: Analysis) -> str:
    return analysis.to_json() + "\n"


def render_csv(analysis: Analysis) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["index", "start", "end", "speaker", "text", "emotion", "emotion_score", "sentiment",
         "sentiment_score", "modalities_used"]
        + [f"p_{e}" for e in EMOTIONS] + [f"p_{s}" for s in SENTIMENTS]
    )
    for u in analysis.utterances:
        emotion = u.emotion.probabilities if u.emotion else {}
        sentiment = u.sentiment.probabilities if u.sentiment else {}
        writer.writerow(
            [u.index, f"{u.start:.3f}", f"{u.end:.3f}", u.speaker or "", u.text,
             u.emotion.label if u.emotion else "", f"{u.emotion.score:.4f}" if u.emotion else "",
             u.sentiment.label if u.sentiment else "",
             f"{u.sentiment.score:.4f}" if u.sentiment else "", "+".join(u.modalities_used)]
            + [f"{emotion[e]:.4f}" if emotion else "" for e in EMOTIONS]
            + [f"{sentiment[s]:.4f}" if sentiment else "" for s in SENTIMENTS]
        )
    return buffer.getvalue()


def caption_label(u: UtteranceResult) -> str:
    if u.emotion is None or u.sentiment is None:
        return "[no prediction]"
    return (f"[{u.emotion.label} {u.emotion.score:.2f} · {u.sentiment.label} "
            f"{u.sentiment.score:.2f} · {'+'.join(u.modalities_used)}]")


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render_captions(analysis: Analysis, vtt: bool = False) -> str:
    """SRT, or WebVTT with vtt=True: each caption is the line plus its emotion and sentiment."""
    separator = "." if vtt else ","
    blocks = ["WEBVTT\n"] if vtt else []
    for number, u in enumerate(analysis.utterances, start=1):
        speaker = f"{u.speaker}: " if u.speaker else ""
        text = u.text or "(no speech)"
        blocks.append(
            f"{number}\n{_timestamp(u.start, separator)} --> {_timestamp(u.end, separator)}\n"
            f"{speaker}{text}\n{caption_label(u)}\n"
        )
    return "\n".join(blocks)


# format name -> (file suffix after the media's name, renderer)
WRITERS: dict[str, tuple[str, Render]] = {
    "json": (".analysis.json", render_json),
    "csv": (".utterances.csv", render_csv),
    "srt": (".srt", render_captions),
    "vtt": (".vtt", lambda a: render_captions(a, vtt=True)),
}


def parse_formats(spec: str) -> list[str]:
    formats = [f.strip().lower() for f in spec.split(",") if f.strip()]
    unknown = [f for f in formats if f not in WRITERS]
    if unknown or not formats:
        raise ValueError(f"unknown format(s) {unknown or spec!r}; choose from {', '.join(WRITERS)}")
    return formats


def write(analysis: Analysis, out_dir: str | Path, formats: Iterable[str],
          name: str | None = None) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        suffix, render = WRITERS[fmt]
        path = out / f"{name or analysis.name}{suffix}"
        path.write_text(render(analysis), encoding="utf-8")
        written.append(path)
    return written
