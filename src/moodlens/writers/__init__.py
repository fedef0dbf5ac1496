"""Output writers, one registry. Each writer reads an Analysis and nothing else."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from moodlens.analysis import UTTERANCE_COLUMNS, Analysis, UtteranceResult

# (analysis, folder the file goes to) -> text; only the HTML page needs the folder, to point at the video
Render = Callable[[Analysis, Path | None], str]
PAGE = Path(__file__).resolve().parent / "page"


def render_json(analysis: Analysis, out_dir: Path | None = None) -> str:
    return analysis.to_json() + "\n"


def render_csv(analysis: Analysis, out_dir: Path | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(UTTERANCE_COLUMNS)
    for row in analysis.utterance_rows():
        writer.writerow([_csv_cell(name, row[name]) for name in UTTERANCE_COLUMNS])
    return buffer.getvalue()


def _csv_cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3f}" if column in ("start", "end") else f"{value:.4f}"
    return str(value)


def caption_label(u: UtteranceResult) -> str:
    if u.emotion is None or u.sentiment is None:
        return "[no prediction]"
    return (f"[{u.emotion.label} {u.emotion.score:.2f} · {u.sentiment.label} "
            f"{u.sentiment.score:.2f} · {'+'.join(u.modalities_used)}]")


def caption_timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render_captions(analysis: Analysis, out_dir: Path | None = None, vtt: bool = False,
                    english: bool = False) -> str:
    """SRT, or WebVTT with vtt=True: each caption is the line plus its emotion and sentiment, with
    the speaker as an "S1: " prefix (SRT) or a <v S1> voice tag (WebVTT). The line is as spoken;
    english=True gives the English the text model read where the speech was another language."""
    separator = "." if vtt else ","
    blocks = ["WEBVTT\n"] if vtt else []
    for number, u in enumerate(analysis.utterances, start=1):
        known = u.speaker and u.speaker != "unknown"
        speaker = (f"<v {u.speaker}>" if vtt else f"{u.speaker}: ") if known else ""
        text = (u.text_en if english and u.text_en is not None else u.text) or "(no speech)"
        blocks.append(
            f"{number}\n{caption_timestamp(u.start, separator)} --> {caption_timestamp(u.end, separator)}\n"
            f"{speaker}{text}\n{caption_label(u)}\n"
        )
    return "\n".join(blocks)


def page(body_script: str, nav: str = "") -> str:
    """The result page with its CSS and renderer inlined: one file, no network, no CDN."""
    html = (PAGE / "result.html").read_text(encoding="utf-8")
    style = "<style>\n" + (PAGE / "result.css").read_text(encoding="utf-8") + "</style>"
    script = "<script>\n" + (PAGE / "result.js").read_text(encoding="utf-8") + "\n" + body_script + "\n</script>"
    return html.replace("<!--STYLE-->", style).replace("<!--NAV-->", nav).replace("<!--SCRIPT-->", script)


def render_html(analysis: Analysis, out_dir: Path | None = None) -> str:
    """The same page `moodlens serve` shows, self-contained, with the video by relative path."""
    media = Path(analysis.media.path)
    source = Path(os.path.relpath(media.resolve(), Path(out_dir).resolve())).as_posix() if out_dir else media.name
    # "</" inside inlined JSON would end the script element early
    data = analysis.to_json().replace("</", "<\\/")
    return page(f"render({data}, {json.dumps(source)});")


# format name -> (file suffix after the media's name, renderer)
WRITERS: dict[str, tuple[str, Render]] = {
    "json": (".analysis.json", render_json),
    "csv": (".utterances.csv", render_csv),
    "srt": (".srt", render_captions),
    "vtt": (".vtt", lambda a, out_dir=None: render_captions(a, out_dir, vtt=True)),
    # the same captions in English: the translation where the speech was in another language
    "srt-en": (".en.srt", lambda a, out_dir=None: render_captions(a, out_dir, english=True)),
    "vtt-en": (".en.vtt", lambda a, out_dir=None: render_captions(a, out_dir, vtt=True, english=True)),
    "html": (".html", render_html),
}


def parse_formats(spec: str) -> list[str]:
    formats = [f.strip().lower() for f in spec.split(",") if f.strip()]
    unknown = [f for f in formats if f not in WRITERS]
    if unknown or not formats:
        raise ValueError(f"unknown format(s) {unknown or spec!r}; choose from {', '.join(WRITERS)}")
    return formats


def output_names(paths: Iterable[Path]) -> list[str]:
    """One output name per input: its stem, then stem-2, stem-3... where stems repeat.

    `analyze a/x.mp4 b/x.mp4 --out o` must not write b's results over a's.
    """
    names: list[str] = []
    taken: set[str] = set()
    for path in paths:
        name, number = path.stem, 1
        while name.lower() in taken:  # case-insensitive file systems collide on case too
            number += 1
            name = f"{path.stem}-{number}"
        taken.add(name.lower())
        names.append(name)
    return names


def write(analysis: Analysis, out: str | Path, formats: Iterable[str], name: str | None = None) -> list[str]:
    """Each format's file in a folder or under an s3:// prefix; returns where each went."""
    from moodlens.storage import Destination, is_s3

    destination = Destination(str(out))
    out_dir = None if is_s3(out) else Path(out)  # the HTML page points at the video relative to its folder
    return [destination.write_text(f"{name or analysis.name}{WRITERS[fmt][0]}", WRITERS[fmt][1](analysis, out_dir))
            for fmt in formats]
