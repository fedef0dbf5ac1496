from __future__ import annotations

from pathlib import Path

import pytest

from moodlens.data.meld import MeldFormatError, dialogue_texts, normalize_text, read_meld_csv
from moodlens.labels import EMOTIONS, SENTIMENTS
from tests.conftest import SHARED


def test_reads_dev_split(meld_dir: Path) -> None:
    rows = read_meld_csv(meld_dir / "dev_sent_emo.csv")
    assert len(rows) == 1109
    assert rows[0].dialogue_id == 0 and rows[0].utterance_id == 0
    assert {EMOTIONS[r.emotion] for r in rows} == set(EMOTIONS)
    assert {SENTIMENTS[r.sentiment] for r in rows} == set(SENTIMENTS)
    assert all("’" not in r.text for r in rows)


def test_legacy_cp1252_file_reads_as_the_current_text(meld_dir: Path) -> None:
    legacy = SHARED / "data" / "meld" / "MELD_legacy_pre2020_cp1252" / "dev_sent_emo.csv"
    if not legacy.exists():
        pytest.skip(f"{legacy} is absent")
    old = read_meld_csv(legacy)
    new = read_meld_csv(meld_dir / "dev_sent_emo.csv")
    assert [r.text for r in old] == [r.text for r in new]


def test_normalize_text() -> None:
    assert normalize_text("I\x92m here\x85") == "I'm here..."
    assert normalize_text("“Hi”  —  you’re") == '"Hi" - you\'re'


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Utterance,Speaker,Emotion\nhi,Ross,joy\n", encoding="utf-8")
    with pytest.raises(MeldFormatError, match="missing column"):
        read_meld_csv(path)


def test_dialogue_histories_reset_per_dialogue(tmp_path: Path) -> None:
    path = tmp_path / "mini.csv"
    path.write_text(
        "Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
        "a,X,joy,positive,0,0\nb,Y,anger,negative,0,1\nc,X,neutral,neutral,1,0\n",
        encoding="utf-8")
    assert dialogue_texts(read_meld_csv(path)) == [["a"], ["a", "b"], ["c"]]
