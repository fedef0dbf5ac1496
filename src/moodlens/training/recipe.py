"""Training recipes as YAML: `moodlens train-text --config configs/text-meld.yaml` and
`moodlens train --config configs/meld-multimodal.yaml`.

A recipe names its method and fills the method's config dataclass; anything it leaves out keeps
the dataclass default, and an unknown key is an error rather than a silently ignored typo.

    method: lora            # lora (FinetuneConfig) | frozen-heads (TextTrainConfig)
    meld_dir: ../shared/data/meld/MELD
    out: text_lora.safetensors
    model: {encoder: all-mpnet-base-v2, context_turns: 3, lora_rank: 32}
    training: {epochs: 2, lr: 3.0e-4}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from moodlens.models.multimodal import MultimodalConfig
from moodlens.models.text import LoraTextConfig, TextHeadConfig
from moodlens.training.finetune import FinetuneConfig
from moodlens.training.multimodal import TrainConfig
from moodlens.training.text import TextTrainConfig

TextRecipe = FinetuneConfig | TextTrainConfig
METHODS: dict[str, tuple[type[TextRecipe], str, type]] = {
    "lora": (FinetuneConfig, "model", LoraTextConfig),
    "frozen-heads": (TextTrainConfig, "head", TextHeadConfig),
}
TOP_LEVEL = {"method", "meld_dir", "out", "model", "training"}
DATA_FIELDS = {"train_csv", "dev_csv", "out", "limit"}  # set from meld_dir/out/--limit, not `training`


class RecipeError(ValueError):
    """A recipe file that can't be read as a training config; the message names the problem."""


def _fields(cls: type, section: str, values: object, exclude: set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise RecipeError(f"`{section}` must be a mapping of {cls.__name__} fields")
    known = {f.name for f in dataclasses.fields(cls)} - exclude
    unknown = sorted(set(values) - known)
    if unknown:
        raise RecipeError(f"unknown key(s) in `{section}`: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    return dict(values)


def read_yaml(path: str | Path, top_level: set[str]) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise RecipeError(f"{path}: can't read the recipe ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping with `method`, `model` and `training`")
    unknown = sorted(set(raw) - top_level)
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(top_level))})")
    return raw


def load_recipe(path: str | Path, meld_dir: str | Path | None = None, out: str | Path | None = None,
                **overrides: Any) -> TextRecipe:
    """The config a recipe file describes; `meld_dir`, `out` and non-None overrides win over it."""
    raw = read_yaml(path, TOP_LEVEL)
    method = raw.get("method", "lora")
    if method not in METHODS:
        raise RecipeError(f"{path}: method must be one of {', '.join(METHODS)}, not {method!r}")
    config_cls, model_field, model_cls = METHODS[method]
    model = model_cls(**_fields(model_cls, "model", raw.get("model") or {}))
    training = _fields(config_cls, "training", raw.get("training") or {}, DATA_FIELDS | {model_field})
    training.update({k: v for k, v in overrides.items() if v is not None})
    folder = Path(meld_dir or raw.get("meld_dir") or "../shared/data/meld/MELD")
    try:
        return config_cls(train_csv=str(folder / "train_sent_emo.csv"), dev_csv=str(folder / "dev_sent_emo.csv"),
                          out=str(out or raw.get("out") or "text_model.safetensors"),
                          **{model_field: model}, **training)
    except TypeError as err:
        raise RecipeError(f"{path}: {err}") from None


def load_multimodal_recipe(path: str | Path, meld_root: str | Path, out: str | Path,
                           **overrides: Any) -> TrainConfig:
    """configs/meld-multimodal.yaml: `model` fills MultimodalConfig and `training` TrainConfig."""
    raw = read_yaml(path, {"model", "training"})
    model = MultimodalConfig(**_fields(MultimodalConfig, "model", raw.get("model") or {}))
    training = _fields(TrainConfig, "training", raw.get("training") or {}, {"meld_root", "out", "model"})
    training.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(meld_root=str(meld_root), out=str(out), model=model, **training)
    except TypeError as err:
        raise RecipeError(f"{path}: {err}") from None


def train_recipe(config: TextRecipe, progress: Any) -> dict[str, object]:
    """Run whichever method the config belongs to; `progress` gets one line per event."""
    if isinstance(config, FinetuneConfig):
        from moodlens.training.finetune import finetune

        return finetune(config, progress)
    from moodlens.training.text import train_text

    def show(epoch: int, metrics: dict[str, float]) -> None:
        progress(f"epoch {epoch:3d}  loss {metrics['loss']:.4f}  dev emotion wF1 "
                 f"{metrics['emotion_weighted_f1']:.4f}  sentiment wF1 {metrics['sentiment_weighted_f1']:.4f}")

    return train_text(config, show)
