"""What every command shares: the typer app, the consoles, one-line failures, progress bars and
the option types that several commands take."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

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
    # our own warnings (a fallback model, a skipped MELD row) are for the user; libraries' are not
    logging.getLogger("moodlens").setLevel(logging.WARNING)


def fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


TextWeights = Annotated[Path | None, typer.Option(
    help="A text model file written by train-text, or a folder written by `moodlens export text`; "
         "default: the shipped one.")]
FaceWeights = Annotated[Path | None, typer.Option(
    help="A folder written by `moodlens export face` (or a mini-Xception safetensors file); "
         "default: the shipped FER2013 model.")]


RowLimit = Annotated[int | None, typer.Option(help="Use only the first N rows of each split.")]
# analyze and batch share these
Formats = Annotated[str, typer.Option("--format", help=(
    "Comma list: json,csv,srt,vtt,html; srt-en and vtt-en caption in English where the speech was another language."))]
Fps = Annotated[float, typer.Option(help="Frames per second sampled for faces.")]
Device = Annotated[str, typer.Option(help="cpu or cuda.")]
Speakers = Annotated[str, typer.Option(
    help="Who spoke: auto (counted from voices and talking faces), a number to force that many, or off.")]
Modalities = Annotated[str, typer.Option(
    help="Comma list of the experts to run: text,face,voice; the others are not loaded or run "
         "(utterances still come from speech recognition).")]
FaceSelection = Annotated[str, typer.Option(
    help="Which face the face expert reads: active (the talking face) or largest (in each frame).")]
AsrModel = Annotated[str, typer.Option(
    help="faster-whisper model: tiny.en ships offline; others download when online.")]
FusionSpec = Annotated[str, typer.Option(
    help="Decision-level fusion reliabilities in [0, 1], e.g. text=1,face=0.2,voice=0.5; "
         "default: the measured ones in weights/fusion_v3.json.")]
TurnGap = Annotated[float | None, typer.Option(
    help="Longest pause (s) inside one speaker turn, which the experts judge whole (a change of voice "
         "also ends one); 0 judges each recognised segment alone. Default: the measured one.")]
Language = Annotated[str, typer.Option(
    help="Spoken language: auto (told from the speech, per minute of audio) or a Whisper code (en, de, es, ...). "
         "English is read by tiny.en; other languages by Whisper base, translated to English for the text model.")]
VoiceWeights = Annotated[Path | None, typer.Option(
    help="A voice head written by train-voice; default: the shipped one (RAVDESS, non-commercial).")]

@app.callback()
def main() -> None:
    _quiet_libraries()


def flat_memory() -> None:
    # For commands whose memory must not grow with input length (analyze). Training and evaluate
    # skip it: their batches are fixed-size, and a fixed mmap threshold costs them 30-40% more time.
    from moodlens.process import keep_memory_flat

    keep_memory_flat()


def parse_formats_option(spec: str) -> list[str]:
    from moodlens.writers import parse_formats

    try:
        return parse_formats(spec)
    except ValueError as err:
        raise fail(str(err)) from None


def progress_bars() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
        "{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=errors, transient=True,
        disable=not errors.is_terminal)  # bars are for people; logs get the table and errors only


def stage_updater(progress: Progress, tasks: dict[str, TaskID]) -> Callable[[str, float], None]:
    def update(stage: str, done: float) -> None:
        progress.update(tasks[stage], completed=done)

    return update


