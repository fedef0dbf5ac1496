"""MELD annotation CSVs and the MELD.Raw clip layout.

CSVs are read as UTF-8, with the legacy cp1252 C1 characters and curly quotes normalised.
MELD's own flaws (missing or unreadable clips, duplicate `Sr No.`, clips whose length doesn't
match their timestamps) are logged and skipped, never fatal.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from moodlens.errors import MoodlensError
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.transcripts import normalize_text, parse_timestamp

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
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
    serial: int | None = None  # `Sr No.`, where the CSV has it

    @property
    def clip_name(self) -> str:
        return f"dia{self.dialogue_id}_utt{self.utterance_id}"


def read_meld_csv(path: str | Path) -> list[MeldRow]:
    """All rows, sorted by (dialogue, utterance). Raises MeldFormatError on a bad file.

    A repeated (dialogue, utterance) key keeps its first row, and a repeated `Sr No.` is logged:
    both occur in MELD's releases and neither may stop a run.
    """
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
                    start=_time(record.get("StartTime"), path, line, "StartTime"),
                    end=_time(record.get("EndTime"), path, line, "EndTime"),
                    serial=_int(record.get("Sr No.")),
                )
            )
    rows.sort(key=lambda r: (r.dialogue_id, r.utterance_id))
    return _deduplicate(rows, path)


def _deduplicate(rows: list[MeldRow], path: Path) -> list[MeldRow]:
    kept: list[MeldRow] = []
    keys: set[tuple[int, int]] = set()
    serials: set[int] = set()
    repeated: list[str] = []
    for row in rows:
        if (row.dialogue_id, row.utterance_id) in keys:
            log.warning("%s: duplicate row for %s; keeping the first", path, row.clip_name)
            continue
        if row.serial is not None and row.serial in serials:
            repeated.append(f"{row.serial} ({row.clip_name})")
        keys.add((row.dialogue_id, row.utterance_id))
        if row.serial is not None:
            serials.add(row.serial)
        kept.append(row)
    if repeated:  # MELD train has 57: one line, not 57
        log.warning("%s: %d duplicate Sr No. values (first: %s); rows are keyed by dialogue and utterance",
                    path, len(repeated), repeated[0])
    return kept


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _time(value: str | None, path: Path, line: int, column: str) -> float | None:
    """A clip's timestamp; an unreadable one is logged and left unknown (it only checks clips)."""
    if not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        log.warning("%s: line %d: unreadable %s %r; the clip's length is not checked against it",
                    path, line, column, value[:40])
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


# MELD.Raw unpacks each split into its own folder; the CSVs sit at the top or inside the split.
SPLIT_FOLDERS = {"train": "train/train_splits", "dev": "dev/dev_splits_complete",
                 "test": "test/output_repeated_splits_test"}


@dataclass(frozen=True)
class MeldClip:
    split: str
    row: MeldRow
    path: Path


def split_csv(root: str | Path, split: str) -> Path:
    """`{split}_sent_emo.csv` in ROOT or ROOT/{split}/; a flat folder's only CSV for any split."""
    root = Path(root)
    for candidate in (root / f"{split}_sent_emo.csv", root / split / f"{split}_sent_emo.csv"):
        if candidate.is_file():
            return candidate
    found = sorted(root.glob("*.csv"))
    if len(found) == 1 and not any((root / f).is_dir() for f in SPLIT_FOLDERS.values()):
        return found[0]
    raise MeldFormatError(root, f"no {split}_sent_emo.csv (a MELD.Raw root, or a folder of clips with one CSV)")


def split_clips(root: str | Path, split: str) -> list[MeldClip]:
    """The rows of a split that have a clip. Missing clips are logged once, with a count."""
    root = Path(root)
    rows = read_meld_csv(split_csv(root, split))
    folder = root / SPLIT_FOLDERS[split] if (root / SPLIT_FOLDERS[split]).is_dir() else root
    clips, missing = [], []
    for row in rows:
        path = folder / f"{row.clip_name}.mp4"
        (clips if path.is_file() else missing).append(MeldClip(split, row, path))
    if missing:
        log.warning("%s: %d of %d rows have no clip in %s (first: %s); they are skipped",
                    split, len(missing), len(rows), folder, missing[0].row.clip_name)
    return clips
