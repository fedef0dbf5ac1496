from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torchvision", reason="the multimodal extra is not installed")

from moodlens.data.cache import prepare_split, read_index
from moodlens.errors import MoodlensError


def test_prepared_split_holds_every_readable_clip(meld_cache: Path, meld_raw: tuple[Path, dict]) -> None:
    _, cases = meld_raw
    index = read_index(meld_cache / "train")
    clips = {c["clip"]: c for c in index["clips"]}
    assert len(clips) == 9  # 7 real + no-audio + mismatch; the unreadable and missing ones are not
    assert cases["unreadable"][0] not in clips and cases["missing"][0] not in clips
    assert any(cases["unreadable"][0] in p and "unreadable" in p for p in index["problems"])
    assert clips[cases["no_audio"][0]]["has_audio"] is False
    assert any("timestamps span 8.0 s" in n for n in clips[cases["mismatch"][0]]["notes"])
    text = np.load(meld_cache / "train" / "text.npy")
    assert text.shape == (9, index["text_dim"]) and index["text_encoder"] == "all-MiniLM-L6-v2"
    with np.load(meld_cache / "train" / "dia11_utt2.npz") as cached:
        assert cached["video"].shape == (16, 112, 112, 3) and cached["video"].dtype == np.uint8
        assert cached["mel"].shape == (64, 300) and cached["mel"].dtype == np.float16
        assert cached["video"].std() > 10  # real pixels, not padding
    dev = read_index(meld_cache / "dev")
    assert {c["clip"]: c["has_video"] for c in dev["clips"]}[cases["audio_only"][0]] is False


def test_prepare_resumes_without_decoding_again(meld_cache: Path, meld_raw: tuple[Path, dict],
                                                tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(meld_cache, copy)
    before = {p.name: p.stat().st_mtime_ns for p in (copy / "dev").glob("*.npz")}
    prepare_split(meld_raw[0], "dev", copy, workers=1)
    after = {p.name: p.stat().st_mtime_ns for p in (copy / "dev").glob("*.npz")}
    assert before == after and len(after) == 5
    assert read_index(copy / "dev")["clips"] == read_index(meld_cache / "dev")["clips"]


def test_unprepared_cache_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MoodlensError, match="run `moodlens prepare-meld` first"):
        read_index(tmp_path)
