"""`moodlens export text`: the ONNX exports agree with the torch model on real MELD dev lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moodlens.cli import app
from moodlens.export import export_face, export_text
from moodlens.models.face import FaceExpert, OnnxFaceExpert, load_face_expert
from moodlens.models.text import MANIFEST, LoraTextModel, OnnxTextModel, classify_pairs
from moodlens.options import AnalyzeOptions
from moodlens.pipeline import analyze
from tests.conftest import DEMO, MELD_CLIPS, MELD_DIR, need_shared

pytest.importorskip("onnx", reason="export needs the onnx package (the `export` extra)")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    return {name: Path(export_text(folder / name, quantize=None if name == "float32" else name).folder)
            for name in ("float32", "int8")}


@pytest.fixture(scope="module")
def dev_lines() -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """All 1,109 MELD dev lines with their context, and the torch model's float32 probabilities: the
    bar below is stated over the whole split, and 200 lines (an earlier sample) vary by a point
    or more from one text model's heads to the next."""
    from moodlens.data.meld import dialogue_texts, read_meld_csv
    from moodlens.features import text_with_context

    rows = read_meld_csv(need_shared(MELD_DIR / "dev_sent_emo.csv"))
    model = LoraTextModel(None, "cpu", native=False)  # float32 weights, as exported
    pairs = [text_with_context(h, model.config.context_turns) for h in dialogue_texts(rows)]
    targets, contexts = [p[0] for p in pairs], [p[1] for p in pairs]
    emotion, sentiment = classify_pairs(model.model, model.tokenizer, contexts, targets, model.config.max_tokens)
    return targets, contexts, emotion, sentiment


def test_float32_export_matches_torch(exports: dict[str, Path], dev_lines: tuple) -> None:
    targets, contexts, emotion, sentiment = dev_lines
    e, s = OnnxTextModel(exports["float32"]).predict(targets, contexts)
    assert (e.argmax(1) == emotion.argmax(1)).mean() >= 0.98 and (s.argmax(1) == sentiment.argmax(1)).mean() >= 0.98
    assert np.abs(e - emotion).max() < 1e-3 and np.abs(s - sentiment).max() < 1e-3


def test_int8_export_stays_close(exports: dict[str, Path], dev_lines: tuple) -> None:
    """The issue's bar: the argmax agrees with float32 on at least 98 % of real lines (all 1,109 dev
    rows; the default v3 heads: 0.98-0.99); stated tolerance for probabilities: mean |dp| < 0.005,
    none over 0.15 (measured on all dev rows: 0.002 and 0.10)."""
    targets, contexts, emotion, sentiment = dev_lines
    e, s = OnnxTextModel(exports["int8"]).predict(targets, contexts)
    assert (e.argmax(1) == emotion.argmax(1)).mean() >= 0.98 and (s.argmax(1) == sentiment.argmax(1)).mean() >= 0.98
    assert np.abs(e - emotion).mean() < 0.005 and np.abs(s - sentiment).mean() < 0.005
    assert np.abs(e - emotion).max() < 0.15 and np.abs(s - sentiment).max() < 0.15
    manifest = json.loads((exports["int8"] / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["quantize"] == "int8" and manifest["float_nodes"] == []
    assert (exports["int8"] / "model.onnx").stat().st_size < 0.7 * (exports["float32"] / "model.onnx").stat().st_size


def test_analyze_runs_an_export(exports: dict[str, Path], tmp_path: Path) -> None:
    srt = tmp_path / "lines.srt"
    srt.write_text("1\n00:00:04,000 --> 00:00:06,400\nI am so happy today, I love it.\n", encoding="utf-8")
    analysis = analyze(DEMO, AnalyzeOptions(transcript=str(srt), text_weights=str(exports["int8"])))
    assert "ONNX int8" in analysis.modalities["text"].model
    assert analysis.utterances[0].per_modality["text"].emotion.label == "joy"


def test_export_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    done = runner.invoke(app, ["export", "text", "--out", str(tmp_path / "onnx")])
    assert done.exit_code == 0, done.output
    assert "use it with --text-weights" in done.stdout and (tmp_path / "onnx" / "model.onnx").is_file()
    for args, message in ((["export", "voice", "--out", str(tmp_path)], "only `text` and `face` can be exported"),
                          (["export", "model", "--out", str(tmp_path)], "bundle (--model) is not exported"),
                          (["export", "face", "--out", str(tmp_path), "--quantize", "int8"], "float32 only"),
                          (["export", "face", "--out", str(tmp_path), "--text-weights", str(tmp_path)],
                           "--text-weights does not apply to `export face`"),
                          (["export", "text", "--out", str(tmp_path), "--quantize", "int4"], "quantize must be"),
                          (["export", "text", "--out", str(tmp_path), "--format", "tflite"], "--format must be onnx")):
        failed = runner.invoke(app, args)
        assert failed.exit_code == 2 and message in failed.stderr and "Traceback" not in failed.output


@pytest.fixture(scope="module")
def face_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(export_face(tmp_path_factory.mktemp("face") / "onnx").folder)


def real_face_crops() -> list[np.ndarray]:
    """Every clear face at 2 fps in three real MELD test clips."""
    from moodlens.faces import crop_face, detect_faces
    from moodlens.media import sample_frames

    clips = sorted(need_shared(MELD_CLIPS).glob("*.mp4"))[:3]
    crops = [crop_face(frame.image, box) for clip in clips for frame in sample_frames(clip, 2.0)
             for box in detect_faces(frame.image)]
    assert len(crops) >= 10
    return crops


def test_face_export_matches_torch_on_real_faces(face_export: Path) -> None:
    crops = real_face_crops()
    ours, exported = FaceExpert().predict(crops), load_face_expert(str(face_export)).predict(crops)
    assert isinstance(load_face_expert(str(face_export)), OnnxFaceExpert)
    assert np.abs(ours - exported).max() < 1e-5
    manifest = json.loads((face_export / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["kind"] == "moodlens-onnx-face" and manifest["shipped"] is True


def test_analyze_reads_faces_through_an_export(face_export: Path, tmp_path: Path) -> None:
    """Same faces, same fusion: an export of the shipped model keeps its measured face baseline."""
    srt = tmp_path / "lines.srt"
    srt.write_text("1\n00:00:04,000 --> 00:00:06,400\nI am so happy today, I love it.\n", encoding="utf-8")
    plain = analyze(DEMO, AnalyzeOptions(transcript=str(srt)))
    exported = analyze(DEMO, AnalyzeOptions(transcript=str(srt), face_weights=str(face_export)))
    assert exported.modalities["face"].model == plain.modalities["face"].model
    assert "face" in exported.settings.fusion.baselines
    a, b = plain.utterances[0], exported.utterances[0]
    for label, p in a.per_modality["face"].emotion.probabilities.items():
        assert b.per_modality["face"].emotion.probabilities[label] == pytest.approx(p, abs=1e-5)
    assert b.emotion.label == a.emotion.label


def test_analyze_refuses_a_bad_face_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MANIFEST).write_text('{"kind": "moodlens-onnx-face"}', encoding="utf-8")
    done = CliRunner().invoke(app, ["analyze", str(DEMO), "--face-weights", str(tmp_path / "broken"),
                                    "--out", str(tmp_path)])
    assert done.exit_code == 2 and "not a face model" in done.stderr and "Traceback" not in done.output
