"""`moodlens prepare-meld | train | train-text | refit-text | train-voice | evaluate | export`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from moodlens.cli.common import FaceWeights, RowLimit, TextWeights, app, console, fail, progress_bars
from moodlens.errors import MoodlensError


def _report_best(summary: dict, out: str | Path) -> None:
    dev = summary["dev"]
    console.print(f"best epoch {summary['best_epoch']}: dev emotion weighted-F1 "
                  f"{dev['emotion_weighted_f1']:.4f}, sentiment weighted-F1 "
                  f"{dev['sentiment_weighted_f1']:.4f}; wrote {out}", highlight=False)


def _evaluate_bundle(model: Path, meld_root: Path | None, split: str, cache: Path | None,
                     json_output: bool, through_pipeline: bool = False) -> None:
    import json

    if meld_root is None:
        raise fail("--model needs --meld-root: the clips it is scored on")
    from moodlens.analyzer import check_models
    from moodlens.options import AnalyzeOptions

    try:
        check_models(AnalyzeOptions(model=str(model)), "cpu")
    except (ValueError, MoodlensError) as err:
        raise fail(str(err)) from None
    from moodlens.data.meld import MeldFormatError
    from moodlens.evaluation import evaluate_bundle

    try:
        result = evaluate_bundle(model, meld_root, split, cache, through_pipeline)
    except (MeldFormatError, MoodlensError) as err:
        raise fail(str(err)) from None
    if json_output:
        print(json.dumps(result, indent=2))
        return
    how = "through the analyze pipeline" if through_pipeline else "from the feature cache"
    _print_ablation(result["ablation"], f"{model} on {split} ({result['n']} clips, {how})")


def _print_ablation(ablation: dict[str, dict[str, float]], title: str) -> None:
    table = Table(title=title)
    for column in ("modalities", "emotion acc", "emotion wF1", "sentiment acc", "sentiment wF1"):
        table.add_column(column, justify="left" if column == "modalities" else "right")
    for name, m in ablation.items():
        table.add_row(name, f"{m['emotion_accuracy']:.3f}", f"{m['emotion_weighted_f1']:.3f}",
                      f"{m['sentiment_accuracy']:.3f}", f"{m['sentiment_weighted_f1']:.3f}")
    console.print(table)


@app.command("prepare-meld")
def prepare_meld(
    root: Annotated[Path, typer.Argument(help="MELD.Raw root, or a folder of dia*_utt*.mp4 clips with one CSV.")],
    cache: Annotated[Path, typer.Option(help="Where the feature cache goes.")],
    splits: Annotated[str, typer.Option(help="Comma list of splits.")] = "train,dev",
    workers: Annotated[int | None, typer.Option(min=1, help="Processes; default: one per core.")] = None,
    text_encoder: Annotated[str, typer.Option(help="Frozen text encoder for the [CLS] features.")] = (
        "bert-base-uncased"),
) -> None:
    """Decode every clip once into frames, log-mels and text features, in parallel."""
    from moodlens.data.cache import prepare_split, read_index
    from moodlens.data.meld import MeldFormatError
    from moodlens.features import FeatureSpec

    if not root.is_dir():
        raise fail(f"{root}: not a folder")
    logging.getLogger("moodlens").setLevel(logging.WARNING)
    for split in [s.strip() for s in splits.split(",") if s.strip()]:
        if split not in ("train", "dev", "test"):
            raise fail(f"unknown split {split!r}: use train, dev or test")
        with progress_bars() as progress:
            task = progress.add_task(f"prepare {split}", total=None)
            try:
                folder = prepare_split(root, split, cache, FeatureSpec(text_encoder=text_encoder), workers,
                                       lambda done, total, task=task: progress.update(task, completed=done,
                                                                                       total=total))
            except (MeldFormatError, MoodlensError) as err:
                raise fail(str(err)) from None
        index = read_index(folder)
        console.print(f"{split}: {len(index['clips'])} clips cached in {folder} ({len(index['problems'])} "
                      f"skipped), text features from {index['text_encoder']}", highlight=False)
        for problem in index["problems"]:
            console.print(f"  [yellow]skipped:[/] {problem}", highlight=False)


@app.command()
def train(
    meld_root: Annotated[Path, typer.Option(help="MELD.Raw root (or a folder of clips with one CSV per split).")],
    out: Annotated[Path, typer.Option(help="Run folder: best/, last.pt, tensorboard/, ablation.json.")],
    config: Annotated[Path, typer.Option(help="YAML recipe.")] = Path("configs/meld-multimodal.yaml"),
    cache: Annotated[Path | None, typer.Option(help="Feature cache (default OUT/cache; prepared if missing).")
                     ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Overrides the recipe.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.pt.")] = False,
) -> None:
    """Train the reference multimodal model; `torchrun --nproc-per-node N -m moodlens.cli train ...` for DDP."""
    try:
        from moodlens.training.multimodal import train as run
        from moodlens.training.recipe import RecipeError, load_multimodal_recipe
    except ImportError as err:
        raise fail(f"training needs the multimodal extra ({err.name} is missing): "
                    "pip install 'moodlens[multimodal]'") from None
    from moodlens.data.meld import MeldFormatError

    try:
        recipe = load_multimodal_recipe(config, meld_root, out, epochs=epochs,
                                        cache=str(cache) if cache else None)
        summary = run(recipe, lambda line: console.print(line, highlight=False), resume=resume)
    except (RecipeError, MeldFormatError, MoodlensError) as err:
        raise fail(str(err)) from None
    if "ablation" in summary:
        _print_ablation(summary["ablation"], f"dev ablation, best epoch {summary['best_epoch']}")
        console.print(f"wrote {out / 'best'}", highlight=False)


@app.command("train-text")
def train_text(
    config: Annotated[Path, typer.Option(help="A YAML recipe (configs/text-meld.yaml is the shipped model's).")
                      ] = Path("configs/text-meld.yaml"),
    meld_dir: Annotated[str | None, typer.Option(
        help="Folder (or s3:// prefix) with MELD's train_sent_emo.csv and dev_sent_emo.csv; overrides the recipe.")
    ] = None,
    out: Annotated[str | None, typer.Option(help="Where to write the model (safetensors; a path or s3:// URI).")
                   ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Overrides the recipe.")] = None,
    seed: Annotated[int | None, typer.Option(help="Overrides the recipe.")] = None,
    limit: RowLimit = None,
) -> None:
    """Train a text model on MELD train from a recipe; the epoch is chosen on dev weighted F1."""
    import contextlib

    from moodlens.data.meld import MeldFormatError
    from moodlens.storage import StorageError, local_tree, staged_output
    from moodlens.training.recipe import RecipeError, load_recipe, train_recipe

    try:
        with contextlib.ExitStack() as stack:
            local_meld = stack.enter_context(local_tree(meld_dir)) if meld_dir else None
            local_out = stack.enter_context(staged_output(out)) if out else None
            recipe = load_recipe(config, local_meld, local_out, epochs=epochs, seed=seed, limit=limit)
            summary = train_recipe(recipe, lambda line: console.print(line, highlight=False))
    except (RecipeError, MeldFormatError, StorageError) as err:
        raise fail(str(err)) from None
    _report_best(summary, out or recipe.out)


@app.command("refit-text")
def refit_text(
    meld_dir: Annotated[str, typer.Option(
        help="Folder (or s3:// prefix) with MELD's train_sent_emo.csv and dev_sent_emo.csv.")],
    out: Annotated[str, typer.Option(help="Where to write the model (safetensors; a path or s3:// URI).")],
    text_weights: Annotated[Path | None, typer.Option(
        help="The LoRA text model whose heads are refitted; default: the shipped v1 "
             "(text_meld_mpnet_lora_v1.safetensors), whose refit is the shipped default.")] = None,
    recognised: Annotated[Path | None, typer.Option(
        help="MELD train lines as the shipped ASR recognised them (scripts/recognise_spoken_meld.py), "
             "trained on as a third kind of text.")] = None,
    recognised_dev: Annotated[Path | None, typer.Option(
        help="The same for MELD dev: scored, and counted in choosing the best epoch.")] = None,
    feature_cache: Annotated[Path | None, typer.Option(
        help="A folder to keep the encoder's features in between runs.")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    limit: RowLimit = None,
) -> None:
    """Retrain a LoRA text model's heads on MELD text as written and as speech recognition writes
    it (no exclamation marks, no quotes; with --recognised, real recognition errors too), so lines
    read from audio are judged as well as typed ones."""
    import contextlib

    from moodlens.data.meld import MeldFormatError
    from moodlens.storage import StorageError, local_tree, staged_output
    from moodlens.training.asr_text import HeadRefitConfig, refit_heads

    try:
        with contextlib.ExitStack() as stack:
            local_meld = Path(stack.enter_context(local_tree(meld_dir)))
            local_out = stack.enter_context(staged_output(out))
            config = HeadRefitConfig(str(local_meld / "train_sent_emo.csv"), str(local_meld / "dev_sent_emo.csv"),
                                     str(local_out), weights=str(text_weights) if text_weights else None,
                                     epochs=epochs, limit=limit,
                                     recognised_csv=str(recognised) if recognised else None,
                                     recognised_dev_csv=str(recognised_dev) if recognised_dev else None,
                                     feature_cache=str(feature_cache) if feature_cache else None)
            summary = refit_heads(config, lambda line: console.print(line, highlight=False))
    except (MeldFormatError, StorageError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    dev = summary["dev"]
    console.print(f"best epoch {summary['best_epoch']}: dev emotion weighted-F1 "
                  f"{dev['emotion_weighted_f1_written']:.4f} as written, "
                  f"{dev['emotion_weighted_f1_asr_shaped']:.4f} ASR-shaped"
                  + (f", {dev['emotion_weighted_f1_recognised']:.4f} recognised" if recognised_dev else "")
                  + f"; wrote {out}", highlight=False)


@app.command("train-voice")
def train_voice(
    data: Annotated[str, typer.Option(help="Folder (or s3:// prefix) of labelled speech, or MELD.Raw, or a CSV.")],
    out: Annotated[str, typer.Option(help="Where to write the voice head (safetensors; a path or s3:// URI).")],
    layout: Annotated[str, typer.Option(help="How labels are found: ravdess, crema-d, tess, emodb, emofilm (names), "
                                              "meld (MELD.Raw CSVs), csv (path,emotion[,speaker]).")] = "ravdess",
    heldout: Annotated[str | None, typer.Option(help="Comma list of speakers to select on (default: the last "
                                                      "20% in sorted order).")] = None,
    eval_data: Annotated[list[Path] | None, typer.Option(help="Other corpora to report on (cross-corpus).")] = None,
    eval_layout: Annotated[list[str] | None, typer.Option(help="Layout of each --eval-data.")] = None,
    trained_on: Annotated[str | None, typer.Option(help="How the file describes its data and licence "
                                                        "(modalities.voice.trained_on).")] = None,
    min_window_seconds: Annotated[float, typer.Option(
        min=0.0, max=30.0, help="Pad each clip with silence to at least this many seconds before encoding; "
                                "the head records it, and analysis encodes the same way.")] = 0.0,
) -> None:
    """Train a voice-emotion head on Whisper tiny.en states; select on held-out speakers, refit on all."""
    from pathlib import PurePosixPath

    from moodlens.storage import is_s3, local_tree, staged_output
    from moodlens.training.voice import VoiceDataError, fit_voice_head

    evals = list(zip(eval_data or [], eval_layout or [], strict=False))
    if len(eval_data or []) != len(eval_layout or []):
        raise fail("give one --eval-layout for each --eval-data")
    source = PurePosixPath(data.rstrip("/")).name
    try:
        with local_tree(data) as local_data, staged_output(out) as local_out:
            with progress_bars() as progress:
                task = progress.add_task("encoding clips", total=None)
                clips, result, report = fit_voice_head(
                    local_data, layout, heldout, evals, min_window_seconds,
                    lambda done, total: progress.update(task, completed=done, total=total))
            report["data"] = data if is_s3(data) else str(Path(data))  # where it came from, not a spool folder
            result.head.metadata.update({
                "kind": "voice-head", "classes": list(result.head.config.classes), "evaluation": report,
                "trained_on": trained_on or f"{layout} speech in {source} ({len(clips)} clips, "
                                            f"{report['speakers']} speakers)"})
            local_out.parent.mkdir(parents=True, exist_ok=True)
            result.head.save(local_out)
    except (VoiceDataError, MoodlensError, OSError) as err:
        raise fail(str(err)) from None
    classes = list(result.head.config.classes)
    console.print(f"held-out speakers {', '.join(result.heldout_speakers)}: accuracy "
                  f"{result.heldout_accuracy:.3f}, balanced {result.heldout_balanced_accuracy:.3f} "
                  f"(chance {report['chance']:.3f}, {len(classes)} classes, L2 {result.chosen_l2:g})", highlight=False)
    _print_confusion(classes, result.heldout_confusion)
    for name, scores in report["cross_corpus"].items():
        console.print(f"cross-corpus {name}: accuracy {scores['accuracy']:.3f}, balanced "
                      f"{scores['balanced_accuracy']:.3f} (chance {scores['chance']:.3f}) on {scores['n']} clips "
                      f"of {', '.join(scores['classes'])}", highlight=False)
        _print_confusion(scores["classes"], scores["confusion"])
    console.print(f"wrote {out}", highlight=False)


def _print_confusion(classes: list[str], confusion: list[list[int]]) -> None:
    table = Table("truth \\ predicted", *[c[:5] for c in classes])
    for label, row in zip(classes, confusion, strict=True):
        table.add_row(label, *map(str, row))
    console.print(table)


@app.command()
def evaluate(
    meld_csv: Annotated[Path | None, typer.Option(help="A MELD-format CSV (e.g. dev_sent_emo.csv).")] = None,
    modality: Annotated[str, typer.Option(help="Which expert to evaluate: text.")] = "text",
    baselines: Annotated[bool, typer.Option(help="Also run VADER, TextBlob and nade on the same rows.")] = (
        False),
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object, nothing else.")] = False,
    text_weights: TextWeights = None,
    out: Annotated[Path, typer.Option(help="Folder for the confusion-matrix PNGs.")] = Path("evaluation"),
    model: Annotated[Path | None, typer.Option(
        help="A `moodlens train` bundle (DIR/best), scored on MELD clips with its modality ablation.")] = None,
    meld_root: Annotated[Path | None, typer.Option(help="MELD.Raw root (or a folder of clips + one CSV), "
                                                   "with --model.")] = None,
    split: Annotated[str, typer.Option(help="Split to score with --model.")] = "dev",
    cache: Annotated[Path | None, typer.Option(help="Feature cache with --model (prepared if missing).")] = None,
    through_pipeline: Annotated[bool, typer.Option(
        help="With --model: run each clip through `analyze --model` with its CSV line, not the cache.")] = False,
) -> None:
    """Accuracy, weighted and macro F1, per-class scores and confusion matrices on a MELD CSV."""
    import json

    if model is not None:
        _evaluate_bundle(model, meld_root, split, cache, json_output, through_pipeline)
        return
    if meld_csv is None:
        raise fail("give --meld-csv (text model) or --model with --meld-root (multimodal bundle)")

    from moodlens.baselines import BaselineUnavailableError
    from moodlens.data.meld import MeldFormatError
    from moodlens.evaluation import evaluate_meld_csv, write_confusion_png

    try:
        result = evaluate_meld_csv(meld_csv, modality, baselines,
                                   str(text_weights) if text_weights else None)
    except (MeldFormatError, BaselineUnavailableError, ValueError) as err:
        raise fail(str(err)) from None
    stem = meld_csv.stem
    pngs = [write_confusion_png(m, out / f"{stem}.{task}.confusion.png", f"{task}: {result.model}")
            for task, m in (("emotion", result.ours.emotion), ("sentiment", result.ours.sentiment)) if m]
    if json_output:
        print(json.dumps(result.to_json(), indent=2))
        return
    table = Table(title=f"{meld_csv.name}: {result.n} rows, {result.seconds:.1f} s",
                  caption=f"moodlens text = {result.model}")
    for column in ("system", "emotion acc", "emotion wF1", "emotion macro-F1", "sentiment acc",
                   "sentiment wF1", "sentiment macro-F1"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for system in [result.ours, *result.baselines]:
        cells = []
        for m in (system.emotion, system.sentiment):
            cells += [f"{m.accuracy:.3f}", f"{m.weighted_f1:.3f}", f"{m.macro_f1:.3f}"] if m else ["-"] * 3
        table.add_row(system.system, *cells)
    console.print(table)
    for task, m in (("emotion", result.ours.emotion), ("sentiment", result.ours.sentiment)):
        per_class = Table(title=f"{task}, per class ({result.ours.system})")
        for column in ("label", "precision", "recall", "F1", "support"):
            per_class.add_column(column, justify="left" if column == "label" else "right")
        for label, c in m.per_class.items():
            per_class.add_row(label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support))
        console.print(per_class)
    console.print("wrote " + ", ".join(str(p) for p in pngs), highlight=False)


@app.command()
def export(
    what: Annotated[str, typer.Argument(help="What to export: text (the LoRA text model) or face (FER2013).")],
    out: Annotated[Path, typer.Option(
        help="Folder for model.onnx and moodlens-export.json (and the text model's tokenizer).")],
    format: Annotated[str, typer.Option(help="onnx.")] = "onnx",
    quantize: Annotated[str | None, typer.Option(
        help="int8 (text only): every weight MatMul in 8 bits, weights and activations scaled per block "
             "of 128 (onnxruntime MatMulNBits).")] = None,
    text_weights: TextWeights = None,
    face_weights: FaceWeights = None,
) -> None:
    """Export a model for onnxruntime; pass the folder back with --text-weights or --face-weights."""
    if what not in ("text", "face"):
        raise fail(f"only `text` and `face` can be exported; got {what!r}. The voice expert's encoder is "
                    "Whisper's, already int8 in CTranslate2, and its head is one linear layer in numpy; "
                    "a `moodlens train` bundle (--model) is not exported")
    if format != "onnx":
        raise fail(f"--format must be onnx, got {format!r}")
    try:
        from moodlens.export import EXPORTERS
    except ImportError as err:
        raise fail(f"export needs the onnx package ({err.name} is missing): pip install 'moodlens[export]'") from None
    weights, other = (text_weights, face_weights) if what == "text" else (face_weights, text_weights)
    if other is not None:
        raise fail(f"--{'face' if what == 'text' else 'text'}-weights does not apply to `export {what}`")
    try:
        report = EXPORTERS[what](out, str(weights) if weights else None, quantize)
    except (ValueError, MoodlensError) as err:
        raise fail(str(err)) from None
    except ImportError as err:
        raise fail(f"export needs the onnx package ({err.name} is missing): pip install 'moodlens[export]'") from None
    detail = f", {report.float_nodes} weight MatMuls in float" if what == "text" else ""
    console.print(f"wrote {report.folder}/model.onnx ({report.size_bytes / 1e6:.1f} MB, "
                  f"{report.quantize or 'float32'}{detail}) in {report.seconds:.0f} s; "
                  f"use it with --{what}-weights {report.folder}", highlight=False)


