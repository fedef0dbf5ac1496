"""The command line: outputs, one-line errors, exit codes, and a batch that survives bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from moodlens.cli import app
from tests.conftest import DEMO
from tests.media_factory import truncate, write_media

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def test_analyze_writes_files_and_prints_the_table(tmp_path: Path) -> None:
    result = invoke("analyze", DEMO, "--out", tmp_path, "--fps", "1")
    assert result.exit_code == 0, result.output
    for header in ("start", "end", "speaker", "text", "emotion (p)", "sentiment (p)", "modalities", "talk time"):
        assert header in result.stdout
    assert "text+face+voice" in result.stdout and "dominant emotion" in result.stdout
    assert "speakers (voice (CAM++) + talking-face tracks)" in result.stdout
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["demo.analysis.json", "demo.srt", "demo.utterances.csv"]
    data = json.loads((tmp_path / "demo.analysis.json").read_text(encoding="utf-8"))
    assert data["schema_version"] == "1.4" and data["utterances"]
    assert data["language"]["code"] == "en" and all(u["language"] == "en" for u in data["utterances"])
    assert data["speakers"] and all(u["speaker"] for u in data["utterances"])


def bad_inputs(tmp_path: Path, media_dir: Path) -> dict[str, Path]:
    (tmp_path / "empty.mp4").touch()
    (tmp_path / "notes.mp4").write_text("not a video\n" * 10)
    corrupt = bytearray((media_dir / "h264_aac.mp4").read_bytes())
    corrupt[:48] = b"\xff" * 48
    (tmp_path / "corrupt.mp4").write_bytes(bytes(corrupt))
    (tmp_path / "no_media").mkdir()
    (tmp_path / "no_media" / "a.txt").write_text("x")
    return {
        "missing file": tmp_path / "missing.mp4",
        "empty file": tmp_path / "empty.mp4",
        "not media": tmp_path / "notes.mp4",
        "truncated mp4": truncate(media_dir / "h264_aac.mp4", tmp_path / "cut.mp4", 0.6),
        "corrupt header": tmp_path / "corrupt.mp4",
        "folder with no media": tmp_path / "no_media",
    }


@pytest.mark.parametrize("case", ["missing file", "empty file", "not media", "truncated mp4",
                                  "corrupt header", "folder with no media"])
def test_bad_input_one_line_error_and_nonzero_exit(tmp_path: Path, media_dir: Path,
                                                   case: str) -> None:
    path = bad_inputs(tmp_path, media_dir)[case]
    result = invoke("analyze", path, "--out", tmp_path / "out")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_batch_keeps_going_past_bad_files(tmp_path: Path, media_dir: Path) -> None:
    bad = bad_inputs(tmp_path, media_dir)
    result = invoke("analyze", bad["empty file"], media_dir / "h264_aac.mp4", bad["not media"],
                    "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == 1
    assert (tmp_path / "out" / "h264_aac.analysis.json").exists()
    assert "2 of 3 input(s) failed" in result.stderr


def test_truncated_but_readable_file_fails_and_keeps_partial_results(tmp_path: Path) -> None:
    whole = write_media(tmp_path / "whole.mp4", seconds=4.0, faststart=True)
    cut = truncate(whole, tmp_path / "cut.mp4", 0.5)
    result = invoke("analyze", cut, "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(cut) in errors[0] and "incomplete media" in errors[0]
    data = json.loads((tmp_path / "out" / "cut.analysis.json").read_text(encoding="utf-8"))
    assert any(n.startswith("incomplete media") for n in data["notes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "pdf"], "unknown format"),
        (["--fps", "0"], "fps must be in (0, 60]"),
        (["--device", "tpu"], "device must be cpu or cuda"),
        (["--fusion-weights", "smell=1"], "unknown modality"),
        (["--asr-model", "large-v3"], "is not packaged here and the hub is off"),
        (["--speakers", "two"], "--speakers must be auto, off or a number of speakers"),
        (["--speakers", "0"], "speakers must be between 1 and 32"),
        (["--face-selection", "loudest"], "face_selection must be active or largest"),
        (["--modalities", "text,lips"], "modalities must be distinct names among text, face, voice"),
        (["--modalities", ","], "got none"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("analyze", DEMO, "--out", tmp_path, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output


def test_cuda_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present; this checks the message when there is none")
    result = invoke("analyze", DEMO, "--out", tmp_path, "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA GPU is available" in result.stderr


def test_a_batch_for_a_ray_cluster_leaves_the_gpu_to_its_workers(capfd: pytest.CaptureFixture[str]) -> None:
    """`batch --address ... --device cuda` from a machine without a GPU: the cluster's workers
    have the GPUs (each refuses at warm_up if it has none); the driver only checks the files."""
    import torch

    from moodlens.cli.analyze import command_options

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present; this checks a driver that has none")
    common = {"fps": 2.0, "device": "cuda", "asr_model": "tiny.en", "fusion_weights": "",
              "text_weights": None, "voice_weights": None}
    assert command_options(**common, runs_here=False).device == "cuda"
    capfd.readouterr()
    with pytest.raises(typer.Exit) as refused:  # what `analyze --device cuda` meets here
        command_options(**common)
    assert refused.value.exit_code == 2 and "no CUDA GPU is available" in capfd.readouterr().err


def test_bad_transcript_is_reported(tmp_path: Path, media_dir: Path) -> None:
    srt = tmp_path / "bad.srt"
    srt.write_text("nothing timed here", encoding="utf-8")
    result = invoke("analyze", media_dir / "h264_aac.mp4", "--transcript", srt, "--out", tmp_path)
    assert result.exit_code == 1 and "no timed lines" in result.stderr


def test_inputs_with_the_same_name_do_not_overwrite_each_other(tmp_path: Path, media_dir: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.mp4").write_bytes((media_dir / "h264_aac.mp4").read_bytes())
    result = invoke("analyze", tmp_path / "a" / "x.mp4", tmp_path / "b" / "x.mp4", "--out", tmp_path / "out",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x-2.analysis.json", "x.analysis.json"]
    assert "written as x-2.*" in result.stdout
    sources = {json.loads(p.read_text(encoding="utf-8"))["media"]["path"] for p in (tmp_path / "out").iterdir()}
    assert sources == {str(tmp_path / "a" / "x.mp4"), str(tmp_path / "b" / "x.mp4")}


def test_a_damaged_file_is_analysed_past_its_damage(tmp_path: Path) -> None:
    from tests.test_media import flip_middle

    damaged = flip_middle(DEMO, tmp_path / "damaged.mp4")
    result = invoke("analyze", damaged, "--out", tmp_path / "out", "--format", "json", "--fps", "1")
    assert result.exit_code == 0, result.output
    assert "could not be decoded (skipped; the rest was analysed)" in result.stdout
    data = json.loads((tmp_path / "out" / "damaged.analysis.json").read_text(encoding="utf-8"))
    assert data["media"]["damage"]["audio_packets"] >= 1
    assert max(u["end"] for u in data["utterances"]) >= 0.9 * max(
        u["end"] for u in json.loads(invoke_json(tmp_path, DEMO))["utterances"])


def invoke_json(tmp_path: Path, path: Path) -> str:
    result = invoke("analyze", path, "--out", tmp_path / "clean", "--format", "json", "--fps", "1")
    assert result.exit_code == 0, result.output
    return (tmp_path / "clean" / f"{path.stem}.analysis.json").read_text(encoding="utf-8")


def test_analyze_reads_and_writes_s3(bucket: str, media_dir: Path) -> None:
    from moodlens.storage import s3_client, split_s3

    name = split_s3(bucket)[0]
    s3_client().put_object(Bucket=name, Key="in/clip.mp4", Body=(media_dir / "h264_aac.mp4").read_bytes())
    result = invoke("analyze", f"{bucket}/in/clip.mp4", f"{bucket}/in/missing.mp4", "--out", f"{bucket}/out/",
                    "--format", "json,srt")
    assert result.exit_code == 1
    assert f"{bucket}/in/missing.mp4: no such S3 object" in result.stderr.replace("\n", "")
    assert "1 of 2 input(s) failed" in result.stderr
    keys = sorted(o["Key"] for o in s3_client().list_objects_v2(Bucket=name, Prefix="out/")["Contents"])
    assert keys == ["out/clip.analysis.json", "out/clip.srt"]
    analysis = json.loads(s3_client().get_object(Bucket=name, Key="out/clip.analysis.json")["Body"].read())
    assert analysis["media"]["path"] == "clip.mp4"


def test_a_bad_language_is_a_one_line_error(tmp_path: Path) -> None:
    result = invoke("analyze", DEMO, "--out", tmp_path, "--language", "klingon")
    assert result.exit_code == 2 and "language must be auto or a code" in result.output
    assert "Traceback" not in result.output
