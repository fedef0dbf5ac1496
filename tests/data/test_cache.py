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


def test_cached_features_equal_streamed_ones(meld_cache: Path, meld_clips: list[dict]) -> None:
    """What training reads from the cache is exactly what `analyze --model` computes from the file."""
    from moodlens.features import FeatureSpec, utterance_features
    from moodlens.media import probe

    index = read_index(meld_cache / "train")
    spec = FeatureSpec.from_dict(index["feature_spec"])
    real = {Path(row["path"]).name: Path(row["path"]) for row in meld_clips}
    checked = 0
    for entry in index["clips"]:
        path = real.get(f"{entry['clip']}.mp4")
        if path is None:
            continue  # the fixture's generated clips
        duration = probe(path).duration
        streamed = {kind: features for kind, _, features in utterance_features(path, [(0.0, duration)], spec, [])}
        with np.load(meld_cache / "train" / f"{entry['clip']}.npz") as cached:
            assert np.array_equal(cached["video"], streamed["video"])
            assert cached["mel"].dtype == np.dtype(spec.mel_dtype)
            assert np.array_equal(cached["mel"].astype(np.float32), streamed["audio"])
        checked += 1
    assert checked >= 5


def test_a_cache_made_with_other_features_is_refused(meld_cache: Path, meld_raw: tuple[Path, dict],
                                                     tmp_path: Path) -> None:
    import shutil
    from dataclasses import replace

    from moodlens.features import FeatureSpec
    from moodlens.models.multimodal import MultimodalConfig
    from moodlens.training.multimodal import CachedClips

    index = read_index(meld_cache / "train")
    assert FeatureSpec.from_dict(index["feature_spec"]).text_encoder == index["text_encoder"]
    config = replace(MultimodalConfig(), text_encoder=index["text_encoder"], text_dim=index["text_dim"])
    assert len(CachedClips(meld_cache / "train", config)) == len(index["clips"])
    with pytest.raises(MoodlensError, match=r"features differ from the model's \(clip_frames: 16 vs 8\)"):
        CachedClips(meld_cache / "train", replace(config, clip_frames=8))
    copy = tmp_path / "cache"
    shutil.copytree(meld_cache, copy)
    with pytest.raises(MoodlensError, match=r"prepared with other features \(fps: 8.0 vs 4.0\)"):
        prepare_split(meld_raw[0], "dev", copy, FeatureSpec(fps=4.0), workers=1)
