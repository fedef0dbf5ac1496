"""A MELD.Raw-format fixture: the 11 real test clips as a tiny train/dev split, plus one
generated clip (or CSV row) for each known MELD problem."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.media_factory import write_media

COLUMNS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
           "Season", "Episode", "StartTime", "EndTime"]
DEV_CLIPS = 4  # the last 4 real clips are dev; the first 7 train


def _row(serial: int, text: str, emotion: str, sentiment: str, dialogue: int, start: str, end: str
         ) -> dict[str, object]:
    return {"Sr No.": serial, "Utterance": text, "Speaker": "Test", "Emotion": emotion,
            "Sentiment": sentiment, "Dialogue_ID": dialogue, "Utterance_ID": 0, "Season": 1,
            "Episode": 1, "StartTime": start, "EndTime": end}


def build_meld_raw(root: Path, clips: list[dict[str, str]]) -> dict[str, list[str]]:
    """Writes ROOT in MELD.Raw layout; returns what each edge case is called, by problem."""
    train_dir, dev_dir = root / "train" / "train_splits", root / "dev" / "dev_splits_complete"
    train_dir.mkdir(parents=True)
    dev_dir.mkdir(parents=True)
    train_rows: list[dict[str, object]] = []
    dev_rows: list[dict[str, object]] = []
    for i, clip in enumerate(clips):
        dev = i >= len(clips) - DEV_CLIPS
        folder = dev_dir if dev else train_dir
        (folder / Path(clip["path"]).name).symlink_to(clip["path"])  # read from ../shared, never copied
        (dev_rows if dev else train_rows).append({k: clip[k] for k in COLUMNS})

    write_media(train_dir / "dia900_utt0.mp4", seconds=2.0, audio_codec=None)
    (train_dir / "dia901_utt0.mp4").write_bytes(b"\x00\x01 not a video" * 100)
    write_media(train_dir / "dia903_utt0.mp4", seconds=2.0)
    write_media(dev_dir / "dia904_utt0.mp4", seconds=2.0, video_codec=None)
    first_serial = train_rows[0]["Sr No."]
    train_rows += [
        # duplicate Sr No., and a cp1252 apostrophe read as latin-1 (MELD's legacy encoding)
        _row(int(first_serial), "I don\x92t hear anything.", "neutral", "neutral", 900, "0:00:01,000",
             "0:00:03,000"),
        _row(9001, "This one will not decode.", "anger", "negative", 901, "0:00:01,000", "0:00:03,000"),
        _row(9002, "My clip is missing.", "joy", "positive", 902, "0:00:01,000", "0:00:03,000"),
        _row(9003, "My timestamps say eight seconds.", "surprise", "positive", 903, "0:00:01,000",
             "0:00:09,000"),
    ]
    dev_rows.append(_row(9004, "Only my voice is here.", "sadness", "negative", 904, "0:00:01,000",
                         "0:00:03,000"))
    for name, rows in (("train_sent_emo.csv", train_rows), ("dev_sent_emo.csv", dev_rows)):
        with (root / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return {"no_audio": ["dia900_utt0"], "unreadable": ["dia901_utt0"], "missing": ["dia902_utt0"],
            "mismatch": ["dia903_utt0"], "audio_only": ["dia904_utt0"]}
