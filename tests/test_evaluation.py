from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moodlens.cli import app
from moodlens.data.meld import read_meld_csv
from moodlens.evaluation import evaluate_meld_csv, write_confusion_png
from moodlens.training.metrics import task_metrics

runner = CliRunner()


@pytest.fixture(scope="module")
def dev_slice(meld_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 120 real dev rows (whole dialogues, so context is intact)."""
    lines = (meld_dir / "dev_sent_emo.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path_factory.mktemp("meld") / "dev_slice.csv"
    path.write_text("".join(lines[:121]), encoding="utf-8")
    return path


def test_json_output(dev_slice: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--meld-csv", str(dev_slice), "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"] == 120
    for task in ("emotion", "sentiment"):
        for key in ("weighted_f1", "accuracy", "macro_f1"):
            assert 0.0 <= data[task][key] <= 1.0
    assert data["emotion"]["weighted_f1"] > 0.3  # the model is far above chance on real rows
    assert (tmp_path / "dev_slice.emotion.confusion.png").stat().st_size > 1000


def test_metrics_are_those_of_the_predictions(dev_slice: Path) -> None:
    from moodlens.evaluation import predict_rows
    from moodlens.labels import EMOTIONS
    from moodlens.models.text import load_text_expert

    evaluation = evaluate_meld_csv(dev_slice)
    rows = read_meld_csv(dev_slice)
    emotion, _ = predict_rows(rows, load_text_expert())
    assert evaluation.ours.emotion == task_metrics([r.emotion for r in rows], emotion, EMOTIONS)


def test_baselines_run_on_the_same_rows(dev_slice: Path) -> None:
    evaluation = evaluate_meld_csv(dev_slice, baselines=True)
    names = {b.system: b for b in evaluation.baselines}
    assert set(names) == {"VADER", "TextBlob", "nade"}
    assert names["VADER"].sentiment.n == names["nade"].emotion.n == 120
    assert names["VADER"].emotion is None and names["nade"].sentiment is None


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Utterance,Speaker,Emotion,Dialogue_ID,Utterance_ID\nhi,Ross,joy,0,0\n", encoding="utf-8")
    result = runner.invoke(app, ["evaluate", "--meld-csv", str(path)])
    assert result.exit_code == 2
    assert "missing column(s) Sentiment" in result.stderr and "Traceback" not in result.output


def test_unsupported_modality(dev_slice: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--meld-csv", str(dev_slice), "--modality", "face"])
    assert result.exit_code == 2 and "cannot be evaluated from a CSV alone" in result.stderr


def test_confusion_png(tmp_path: Path) -> None:
    from moodlens.labels import SENTIMENTS

    path = write_confusion_png(task_metrics([0, 1, 2, 2], [0, 1, 1, 2], SENTIMENTS), tmp_path / "c.png", "t")
    import cv2

    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 200
