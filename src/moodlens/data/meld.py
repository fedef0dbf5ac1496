"""MELD annotation CSVs: UTF-8, with the legacy cp1252 C1 characters and curly quotes normalised."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from moodlens.errors import MoodlensError
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.utterances import parse_timestamp

REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-", "…": "...",
                         "\u00a0": " "})


class MeldFormatError(MoodlensError):
    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class MeldRow:
    dialogue_id: int
    utterance_id: int
    speaker: str
    text: str
    emotion: int
    sentiment: int
    start: float | None = None
    end: float | None = None

    @property
    def clip_name(self) -> str:
        return f"dia{self.dialogue_id}_utt{self.utterance_id}"


def normalize_text(text: str) -> str:
    """Undo cp1252-as-latin-1 C1 characters, then fold typographic quotes to ASCII.

    ASR writes straight quotes, so training text must look the same as what inference sees.
    """
    fixed = "".join(
        ch.encode("latin-1").decode("cp1252", errors="ignore") if "\x80" <= ch <= "\x9f" else ch
        for ch in text
    )
    return " ".join(fixed.translate(_QUOTES).split())


def read_meld_csv(path: str | Path) -> list[MeldRow]:
    """All rows, sorted by (dialogue, utterance). Raises MeldFormatError on a bad file."""
    path = Path(path)
    if not path.is_file():
        raise MeldFormatError(path, "MELD CSV not found")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MeldFormatError(path, f"missing column(s) {', '.join(missing)}")
        rows = []
        for line, record in enumerate(reader, start=2):
            emotion = record["Emotion"].strip().lower()
            sentiment = record["Sentiment"].strip().lower()
            if emotion not in EMOTIONS or sentiment not in SENTIMENTS:
                raise MeldFormatError(path, f"line {line}: unknown label {emotion!r}/{sentiment!r}")
            rows.append(
                MeldRow(
                    dialogue_id=int(record["Dialogue_ID"]),
                    utterance_id=int(record["Utterance_ID"]),
                    speaker=normalize_text(record["Speaker"]),
                    text=normalize_text(record["Utterance"]),
                    emotion=EMOTIONS.index(emotion),
                    sentiment=SENTIMENTS.index(sentiment),
                    start=_time(record.get("StartTime")),
                    end=_time(record.get("EndTime")),
                )
            )
    rows.sort(key=lambda r: (r.dialogue_id, r.utterance_id))
    return rows


def _time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def dialogue_texts(rows: list[MeldRow]) -> list[list[str]]:
    """For each row, the texts of its dialogue up to and including it (for context)."""
    histories: list[list[str]] = []
    current: list[str] = []
    last_dialogue = None
    for row in rows:
        if row.dialogue_id != last_dialogue:
            current, last_dialogue = [], row.dialogue_id
        current.append(row.text)
        histories.append(list(current))
    return histories
