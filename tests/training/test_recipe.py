from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from moodlens.cli import app
from moodlens.models.text import TextHeadWeights
from moodlens.training.finetune import FinetuneConfig
from moodlens.training.recipe import RecipeError, load_recipe
from moodlens.training.text import TextTrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(("weights", "recipe"), [
    (TextHeadWeights.MELD_MINILM_V1, "text-meld-frozen.yaml"),
    (TextHeadWeights.MELD_MINILM_LORA_V1, "text-meld-minilm.yaml"),
    (TextHeadWeights.MELD_MPNET_LORA_V1, "text-meld.yaml"),
    (TextHeadWeights.MELD_MPNET_LORA_ASR_V3, "text-meld.yaml"),  # v1's adapters, heads refitted
])
def test_each_shipped_model_was_trained_by_its_recipe(weights: TextHeadWeights, recipe: str) -> None:
    """The config recorded inside each shipped file is exactly what its recipe builds."""
    config = load_recipe(CONFIGS / recipe)
    with safe_open(str(weights.path), framework="pt") as handle:
        metadata = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
    model_field = "model" if isinstance(config, FinetuneConfig) else "head"
    recorded_model = metadata.get("model", metadata.get("config"))
    assert asdict(getattr(config, model_field)) == recorded_model
    built = {k: v for k, v in asdict(config).items() if k not in (model_field, "out")}
    recorded = metadata["train_config"]
    if isinstance(config, FinetuneConfig):
        # files from before these options: float32, fresh adapters, no ASR-shaped text, no autocast
        recorded = {"save_dtype": "float32", "asr_shaped_share": 0.0, "init": None, "bf16": False, **recorded}
    assert built == recorded


def test_overrides_and_methods(tmp_path: Path) -> None:
    config = load_recipe(CONFIGS / "text-meld-minilm.yaml", meld_dir=tmp_path, out=tmp_path / "m.safetensors",
                         epochs=1, limit=200, seed=None)
    assert isinstance(config, FinetuneConfig)
    assert (config.epochs, config.limit, config.seed) == (1, 200, 0)
    assert config.train_csv == str(tmp_path / "train_sent_emo.csv")
    assert isinstance(load_recipe(CONFIGS / "text-meld-frozen.yaml"), TextTrainConfig)


def test_the_continued_asr_recipe_reads_as_what_was_run() -> None:
    config = load_recipe(CONFIGS / "text-meld-asr-continue.yaml")
    assert isinstance(config, FinetuneConfig)
    assert (config.asr_shaped_share, config.bf16, config.epochs) == (0.5, True, 1)
    assert config.init.endswith(TextHeadWeights.MELD_MPNET_LORA_V1.value)


@pytest.mark.parametrize(("text", "message"), [
    ("method: lora\nmodel: {lora_rnk: 8}\n", "unknown key(s) in `model`: lora_rnk"),
    ("method: lora\ntraining: {epochs: 2, learning_rate: 0.1}\n", "unknown key(s) in `training`: learning_rate"),
    ("method: distill\n", "method must be one of lora, frozen-heads"),
    ("- just\n- a list\n", "a recipe is a YAML mapping"),
    ("model: [unclosed\n", "not valid YAML"),
    ("epochs: 3\n", "unknown key(s) epochs"),
])
def test_bad_recipes_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recipe(path)


def test_cli_reports_a_bad_recipe_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("method: lora\nmodel: {lora_rnk: 8}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train-text", "--config", str(path)])
    assert result.exit_code == 2
    assert "unknown key(s) in `model`: lora_rnk" in result.output
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["train-text", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "can't read the recipe" in missing.output


def test_cli_trains_from_a_recipe(tmp_path: Path, meld_dir: Path) -> None:
    """The frozen-heads recipe end to end on 200 rows: it writes a model that analyze can load."""
    out = tmp_path / "heads.safetensors"
    result = CliRunner().invoke(app, ["train-text", "--config", str(CONFIGS / "text-meld-frozen.yaml"),
                                      "--meld-dir", str(meld_dir), "--out", str(out), "--epochs", "2",
                                      "--limit", "200"])
    assert result.exit_code == 0, result.output
    assert "best epoch" in result.output and out.exists()
    from moodlens.models.text import load_text_expert

    emotion, sentiment = load_text_expert(str(out)).predict(["I am so happy!"], [""])
    assert emotion.shape == (1, 7) and sentiment.shape == (1, 3)


def test_cli_trains_from_and_to_s3(tmp_path: Path, meld_dir: Path, bucket: str) -> None:
    """--meld-dir and --out as S3 URIs: the CSVs are spooled in, the model is uploaded out."""
    from moodlens.storage import s3_client, split_s3

    name = split_s3(bucket)[0]
    for split in ("train", "dev"):
        s3_client().upload_file(str(meld_dir / f"{split}_sent_emo.csv"), name, f"meld/{split}_sent_emo.csv")
    result = CliRunner().invoke(app, ["train-text", "--config", str(CONFIGS / "text-meld-frozen.yaml"),
                                      "--meld-dir", f"{bucket}/meld/", "--out", f"{bucket}/models/heads.safetensors",
                                      "--epochs", "1", "--limit", "100"])
    assert result.exit_code == 0, result.output
    assert f"wrote {bucket}/models/heads.safetensors" in result.output.replace("\n", "")
    s3_client().download_file(name, "models/heads.safetensors", str(tmp_path / "heads.safetensors"))
    from moodlens.models.text import load_text_expert

    emotion, _ = load_text_expert(str(tmp_path / "heads.safetensors")).predict(["I am so happy!"], [""])
    assert emotion.shape == (1, 7)
