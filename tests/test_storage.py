"""Inputs and outputs on disk and on S3 (a real moto server, through boto3's standard configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moodlens.storage import Destination, StorageError, expand_inputs, input_stem, local_copy, split_s3


def test_local_inputs_from_files_folders_globs_and_lists(tmp_path: Path, media_dir: Path) -> None:
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# two files\n{media_dir / 'h264_aac.mp4'}\n\ns3://bucket/clip.mp4\n", encoding="utf-8")
    found, problems = expand_inputs([str(media_dir / "tone.wav"), str(media_dir / "*.webm"), f"@{listing}",
                                     str(media_dir / "h264_aac.mp4")])
    assert found == [str(media_dir / "tone.wav"), str(media_dir / "vp9_opus.webm"), str(media_dir / "h264_aac.mp4"),
                     "s3://bucket/clip.mp4"]  # repeats are analysed once
    assert problems == []
    whole, _ = expand_inputs([str(media_dir)])
    assert len(whole) >= 8 and all(Path(p).is_file() for p in whole)
    (tmp_path / "empty").mkdir()
    found, problems = expand_inputs([str(tmp_path / "nothing-*.mp4"), str(tmp_path / "empty")])
    assert found == [] and len(problems) == 2
    assert "no files match" in problems[0] and "no media files" in problems[1]


def test_s3_names() -> None:
    assert split_s3("s3://b/a/c.mp4") == ("b", "a/c.mp4") and split_s3("s3://b") == ("b", "")
    assert input_stem("s3://b/a/clip.one.mp4") == "clip.one"
    with pytest.raises(StorageError, match="no bucket"):
        split_s3("s3:///key")


def test_s3_prefix_listing_spooling_and_writing(bucket: str, media_dir: Path) -> None:
    from moodlens.storage import s3_client

    name = split_s3(bucket)[0]
    data = (media_dir / "h264_aac.mp4").read_bytes()
    s3_client().put_object(Bucket=name, Key="in/a.mp4", Body=data)
    s3_client().put_object(Bucket=name, Key="in/deeper/b.wav", Body=(media_dir / "tone.wav").read_bytes())
    s3_client().put_object(Bucket=name, Key="in/readme.txt", Body=b"not media")
    found, problems = expand_inputs([f"{bucket}/in/"])
    assert found == [f"{bucket}/in/a.mp4", f"{bucket}/in/deeper/b.wav"] and problems == []

    with local_copy(f"{bucket}/in/a.mp4") as path:
        assert path.suffix == ".mp4" and path.read_bytes() == data
    assert not path.exists()  # the spooled copy is removed

    out = Destination(f"{bucket}/results/")
    assert not out.exists("a.analysis.json")
    where = out.write_text("a.analysis.json", "{}\n")
    assert where == f"{bucket}/results/a.analysis.json" and out.exists("a.analysis.json")
    out.remove("a.analysis.json")
    assert not out.exists("a.analysis.json")


def test_s3_failures_are_one_line(bucket: str) -> None:
    with pytest.raises(StorageError, match="no such S3 object"), local_copy(f"{bucket}/missing.mp4"):
        pass
    with pytest.raises(StorageError, match="no such S3 bucket"):
        Destination("s3://no-such-bucket-here/x/").write_text("a", "b")
    found, problems = expand_inputs([f"{bucket}/empty/"])
    assert found == [] and problems == [f"{bucket}/empty/: no media objects under this S3 prefix"]


def test_local_destination_writes_whole_files(tmp_path: Path) -> None:
    out = Destination(str(tmp_path / "deep" / "out"))
    path = out.write_text("x.analysis.json", "{}\n")
    assert Path(path).read_text(encoding="utf-8") == "{}\n" and out.exists("x.analysis.json")
    assert not list((tmp_path / "deep" / "out").glob("*.part"))
