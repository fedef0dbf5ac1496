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


def test_meld_raw_layout_skips_and_logs_its_problems(meld_raw: tuple[Path, dict[str, list[str]]],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from moodlens.data.meld import split_clips

    root, cases = meld_raw
    with caplog.at_level("WARNING"):
        train = split_clips(root, "train")
    names = [c.row.clip_name for c in train]
    assert cases["missing"][0] not in names and "1 of 11 rows have no clip" in caplog.text
    assert "1 duplicate Sr No. values (first: 107" in caplog.text
    no_audio = next(c for c in train if c.row.clip_name == cases["no_audio"][0])
    assert no_audio.row.text == "I don't hear anything."  # the cp1252 apostrophe, repaired
    assert all(c.path.parent.name == "train_splits" for c in train)
    assert [c.row.clip_name for c in split_clips(root, "dev")][-1] == cases["audio_only"][0]


def test_flat_folder_with_one_csv(tmp_path: Path, meld_clips: list[dict[str, str]]) -> None:
    import shutil

    from moodlens.data.meld import split_clips

    source = Path(meld_clips[0]["path"]).parent
    shutil.copy(source / "labels.csv", tmp_path / "labels.csv")
    for clip in meld_clips:
        (tmp_path / Path(clip["path"]).name).symlink_to(clip["path"])
    assert len(split_clips(tmp_path, "test")) == len(meld_clips) == 11


def test_no_csv_is_a_clear_error(tmp_path: Path) -> None:
    from moodlens.data.meld import split_clips

    with pytest.raises(MeldFormatError, match=r"no dev_sent_emo\.csv"):
        split_clips(tmp_path, "dev")


def test_an_unreadable_timestamp_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    csv_path = tmp_path / "dev_sent_emo.csv"
    csv_path.write_text("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,StartTime,EndTime\n"
                        "1,Hi.,Ross,joy,positive,0,0,\"00:00:01,000\",half past\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="moodlens"):
        rows = read_meld_csv(csv_path)
    assert rows[0].end is None
    assert "line 2: unreadable EndTime 'half past'" in caplog.text
