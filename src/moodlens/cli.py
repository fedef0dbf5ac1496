"""`moodlens analyze | train-text`: typer commands with rich progress and tables."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from moodlens.errors import MoodlensError

if TYPE_CHECKING:
    from moodlens.analysis import Analysis

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="How a video feels: per-utterance emotion and sentiment.")
console = Console()
if not console.is_terminal:
    console.width = 120  # rich's 80-column default folds the utterance table badly in logs
errors = Console(stderr=True)


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


TextWeights = Annotated[Path | None, typer.Option(
    help="A text model file (from train-text or finetune-text); default: the shipped one.")]


MeldDir = Annotated[Path, typer.Option(help="Folder with MELD's train_sent_emo.csv and dev_sent_emo.csv.")]
RowLimit = Annotated[int | None, typer.Option(help="Use only the first N rows of each split.")]


def _report_best(summary: dict, out: Path) -> None:
    dev = summary["dev"]
    console.print(f"best epoch {summary['best_epoch']}: dev emotion weighted-F1 "
                  f"{dev['emotion_weighted_f1']:.4f}, sentiment weighted-F1 "
                  f"{dev['sentiment_weighted_f1']:.4f}; wrote {out}", highlight=False)


@app.callback()
def main() -> None:
    _quiet_libraries()


def _flat_memory() -> None:
    # For commands whose memory must not grow with input length. Training skips it: batches are
    # fixed-size there, and the 1 MB mmap threshold costs training about 40% more time.
    from moodlens.process import limit_heap_growth

    limit_heap_growth()


@app.command()
def analyze(
    paths: Annotated[list[Path], typer.Argument(help="Media files or folders of media.")],
    out: Annotated[Path, typer.Option(help="Folder for the output files.")] = Path("."),
    format: Annotated[str, typer.Option("--format", help="Comma list: json,csv,srt,vtt.")] = (
        "json,csv,srt"),
    transcript: Annotated[Path | None, typer.Option(
        help="SRT, VTT or MELD-style CSV to use instead of speech recognition.")] = None,
    fps: Annotated[float, typer.Option(help="Frames per second sampled for faces.")] = 2.0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    asr_model: Annotated[str, typer.Option(
        help="faster-whisper model: tiny.en ships offline; others download when online.")] = (
        "tiny.en"),
    fusion_weights: Annotated[str, typer.Option(
        help="Decision-level fusion weights, e.g. text=1,face=0.25,voice=0.")] = "",
    text_weights: TextWeights = None,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
) -> None:
    """Analyse media files and write NAME.analysis.json, NAME.utterances.csv and NAME.srt."""
    _flat_memory()
    from moodlens.fusion import FusionWeights
    from moodlens.media import expand_path
    from moodlens.writers import parse_formats, write

    if debug:
        logging.getLogger().setLevel(logging.INFO)
    try:
        formats = parse_formats(format)
        weights = FusionWeights.parse(fusion_weights) if fusion_weights else FusionWeights()
    except ValueError as err:
        raise _fail(str(err)) from None
    if fps <= 0 or fps > 60:
        raise _fail(f"--fps must be in (0, 60], got {fps:g}")
    if device not in ("cpu", "cuda"):
        raise _fail(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise _fail("--device cuda asked for, but no CUDA GPU is available")
    if transcript is not None and len(paths) > 1:
        raise _fail("--transcript applies to one media file; give exactly one PATH")
    if text_weights is not None and not text_weights.is_file():
        raise _fail(f"{text_weights}: text model file not found")
    if transcript is None:
        from moodlens.errors import ModelNotFoundError
        from moodlens.models.weights import resolve_asr_model

        try:
            resolve_asr_model(asr_model)
        except ModelNotFoundError as err:
            raise _fail(str(err)) from None

    files: list[Path] = []
    failures = 0
    for raw in paths:
        try:
            files.extend(expand_path(raw))
        except MoodlensError as err:
            errors.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            failures += 1

    inputs = failures + len(files)  # each bad folder counts once, each file once

    from moodlens.pipeline import STAGES, AnalyzeOptions
    from moodlens.pipeline import analyze as run

    options = AnalyzeOptions(asr_model=asr_model, transcript=str(transcript) if transcript else None,
                             fps=fps, device=device, fusion=weights,
                             text_weights=str(text_weights) if text_weights else None)
    for path in files:
        try:
            with _progress() as progress:
                tasks = {s: progress.add_task(f"{path.name}: {s}", total=1.0) for s in STAGES}
                analysis = run(path, options, _updater(progress, tasks))
            written = write(analysis, out, formats)
        except MoodlensError as err:
            errors.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            failures += 1
            continue
        except Exception as err:
            if debug:
                raise
            errors.print(f"[bold red]error:[/] {path}: analysis failed ({type(err).__name__}: "
                         f"{err}); rerun with --debug for details", highlight=False, soft_wrap=True)
            failures += 1
            continue
        _print_analysis(analysis, written)
        if analysis.incomplete:
            # Partial results are kept on disk, but the input was damaged: say so and count it.
            errors.print(f"[bold red]error:[/] {path}: {analysis.incomplete[0]}; partial results written",
                         highlight=False, soft_wrap=True)
            failures += 1
    if failures:
        errors.print(f"{failures} of {inputs} input(s) failed", highlight=False)
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
        "{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=errors, transient=True,
        disable=not errors.is_terminal)  # bars are for people; logs get the table and errors only


def _updater(progress: Progress, tasks: dict[str, TaskID]) -> Callable[[str, float], None]:
    def update(stage: str, done: float) -> None:
        progress.update(tasks[stage], completed=done)

    return update


def _print_analysis(analysis: Analysis, written: list[Path]) -> None:
    table = Table(title=f"{Path(analysis.media['path']).name} "
                        f"({analysis.media['duration']:.1f} s)", show_lines=False)
    for column, justify in (("start", "right"), ("end", "right"), ("text", "left"),
                            ("emotion (p)", "left"), ("sentiment (p)", "left"),
                            ("modalities", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for u in analysis.utterances:
        table.add_row(
            f"{u.start:.2f}", f"{u.end:.2f}", u.text or "[dim](no speech)[/]",
            f"{u.emotion.label} ({u.emotion.score:.2f})" if u.emotion else "-",
            f"{u.sentiment.label} ({u.sentiment.score:.2f})" if u.sentiment else "-",
            "+".join(u.modalities_used) or "none",
        )
    console.print(table)
    s = analysis.summary
    if s.dominant_emotion is not None:
        top = sorted(s.emotion_share.items(), key=lambda kv: -kv[1])[:3]
        console.print(
            f"dominant emotion: [bold]{s.dominant_emotion}[/]  ·  sentiment score "
            f"{s.sentiment_score:+.2f}  ·  time share "
            + ", ".join(f"{k} {v:.0%}" for k, v in top if v > 0), highlight=False)
    unused = [f"{m} ({i.reason})" for m, i in analysis.modalities.items() if not i.available]
    if unused:
        console.print(f"[dim]not used: {'; '.join(unused)}[/]", highlight=False)
    for note in analysis.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)


@app.command("train-text")
def train_text(
    meld_dir: MeldDir = Path("../shared/data/meld/MELD"),
    out: Annotated[Path, typer.Option(help="Where to write the heads (safetensors).")] = Path(
        "text_heads.safetensors"),
    epochs: Annotated[int, typer.Option(min=1)] = 12,
    seed: int = 0,
    limit: RowLimit = None,
) -> None:
    """Train the text expert's heads on MELD train over frozen MiniLM; select the epoch on dev."""
    from moodlens.data.meld import MeldFormatError
    from moodlens.training.text import TextTrainConfig
    from moodlens.training.text import train_text as run

    config = TextTrainConfig(train_csv=str(meld_dir / "train_sent_emo.csv"),
                             dev_csv=str(meld_dir / "dev_sent_emo.csv"), out=str(out),
                             epochs=epochs, seed=seed, limit=limit)

    def show(epoch: int, metrics: dict[str, float]) -> None:
        console.print(f"epoch {epoch:3d}  loss {metrics['loss']:.4f}  dev emotion wF1 "
                      f"{metrics['emotion_weighted_f1']:.4f}  sentiment wF1 "
                      f"{metrics['sentiment_weighted_f1']:.4f}", highlight=False)

    try:
        summary = run(config, show)
    except MeldFormatError as err:
        raise _fail(str(err)) from None
    _report_best(summary, out)


@app.command()
def evaluate(
    meld_csv: Annotated[Path, typer.Option(help="A MELD-format CSV (e.g. dev_sent_emo.csv).")],
    modality: Annotated[str, typer.Option(help="Which expert to evaluate: text.")] = "text",
    baselines: Annotated[bool, typer.Option(help="Also run VADER, TextBlob and nade on the same rows.")] = (
        False),
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object, nothing else.")] = False,
    text_weights: TextWeights = None,
    out: Annotated[Path, typer.Option(help="Folder for the confusion-matrix PNGs.")] = Path("evaluation"),
) -> None:
    """Accuracy, weighted and macro F1, per-class scores and confusion matrices on a MELD CSV."""
    _flat_memory()
    import json

    from moodlens.baselines import BaselineUnavailableError
    from moodlens.data.meld import MeldFormatError
    from moodlens.evaluation import evaluate_meld_csv, write_confusion_png

    try:
        result = evaluate_meld_csv(meld_csv, modality, baselines,
                                   str(text_weights) if text_weights else None)
    except (MeldFormatError, BaselineUnavailableError, ValueError) as err:
        raise _fail(str(err)) from None
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


@app.command("finetune-text")
def finetune_text(
    meld_dir: MeldDir = Path("../shared/data/meld/MELD"),
    out: Annotated[Path, typer.Option(help="Where to write adapters + heads (safetensors).")] = Path(
        "text_lora.safetensors"),
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    seed: int = 0,
    limit: RowLimit = None,
) -> None:
    """Fine-tune MiniLM with LoRA on MELD train (context + utterance); keep the best dev epoch."""
    from moodlens.data.meld import MeldFormatError
    from moodlens.training.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(train_csv=str(meld_dir / "train_sent_emo.csv"),
                            dev_csv=str(meld_dir / "dev_sent_emo.csv"), out=str(out),
                            epochs=epochs, seed=seed, limit=limit)
    try:
        summary = finetune(config, lambda line: console.print(line, highlight=False))
    except MeldFormatError as err:
        raise _fail(str(err)) from None
    _report_best(summary, out)


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
