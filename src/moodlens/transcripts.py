"""Transcript files (SRT, WebVTT, MELD-style CSV) read as Utterances, in place of speech recognition."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from moodlens.errors import TranscriptError
from moodlens.utterances import Utterance

_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[,.](\d{1,3})")


def parse_timestamp(value: str) -> float:
    """SRT `01:02:03,456`, VTT `02:03.456` or MELD `0:09:57,431` to seconds."""
    match = _TIME.fullmatch(value.strip())
    if not match:
        raise ValueError(f"not a timestamp: {value!r}")
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000


def read_transcript(path: str | Path, duration: float | None = None) -> list[Utterance]:
    """Read SRT, VTT or a MELD-style CSV (Utterance, Speaker, StartTime, EndTime).

    MELD times are positions in the episode, not the clip; when they run past the media's
    duration they are shifted so the first utterance starts at 0.
    """
    path = Path(path)
    if not path.is_file():
        raise TranscriptError(path, "transcript file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise TranscriptError(path, "transcript is not UTF-8 text") from err
    suffix = path.suffix.lower()
    if suffix in (".srt", ".vtt"):
        utterances = _read_cues(text, path)
    elif suffix == ".csv":
        utterances = _read_csv(text, path)
    else:
        raise TranscriptError(path, "transcript must be .srt, .vtt or .csv")
    if not utterances:
        raise TranscriptError(path, "transcript has no timed lines")
    if duration is not None and max(u.end for u in utterances) > duration + 1.0:
        shift = min(u.start for u in utterances)
        utterances = [
            Utterance(u.start - shift, min(u.end - shift, duration), u.text, u.speaker, u.source)
            for u in utterances
        ]
    return sorted(utterances, key=lambda u: u.start)


_SPEAKER_TAG = re.compile(r"^<v(?:\.[^ >]*)?\s+([^>]+)>")


def _read_cues(text: str, path: Path) -> list[Utterance]:
    utterances = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        arrow = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if arrow is None:
            continue
        start_raw, end_raw = lines[arrow].split("-->")
        try:
            start = parse_timestamp(start_raw)
            end = parse_timestamp(end_raw.strip().split()[0])
        except ValueError as err:
            raise TranscriptError(path, f"bad cue time in {lines[arrow]!r}") from err
        body = " ".join(lines[arrow + 1 :]).strip()
        speaker = None
        tag = _SPEAKER_TAG.match(body)
        if tag:
            speaker = tag.group(1).strip()
        body = re.sub(r"<[^>]+>", "", body).strip()
        if body:
            utterances.append(Utterance(start, end, body, speaker, "transcript"))
    return utterances


_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-", "…": "...",
                         "\u00a0": " "})


def normalize_text(text: str) -> str:
    """Undo cp1252-as-latin-1 C1 characters, then fold typographic quotes to ASCII.

    ASR writes straight quotes, so training text must look the same as what inference sees.
    """
    fixed = "".join(
        ch.encode("latin-1").decode("cp1252", errors="ignore") if "\x80" <= ch <= "\x9f" else ch
        for ch in text
    )
    return " ".join(fixed.translate(_QUOTES).split())


def _read_csv(text: str, path: Path) -> list[Utterance]:
    # not text.splitlines(): it also breaks at U+0085, which MELD's cp1252-damaged CSVs hold mid-line
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    needed = {"Utterance", "StartTime", "EndTime"}
    if not rows or not needed <= set(rows[0]):
        raise TranscriptError(path, f"CSV transcript needs the columns {sorted(needed)}")
    utterances = []
    for number, row in enumerate(rows, start=2):
        try:
            start, end = parse_timestamp(row["StartTime"]), parse_timestamp(row["EndTime"])
        except ValueError as err:
            raise TranscriptError(path, f"line {number}: {err}") from err
        utterances.append(
            # the same text MELD training saw: cp1252 repaired, typographic quotes folded
            Utterance(start, end, normalize_text(row["Utterance"]), normalize_text(row.get("Speaker") or "") or None,
                      "transcript")
        )
    return utterances
