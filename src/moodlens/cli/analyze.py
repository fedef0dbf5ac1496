"""`moodlens analyze | live | batch`: media in, Analyses out, with their tables and live lines."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from moodlens.cli.common import (
    AsrModel,
    Device,
    FaceSelection,
    FaceWeights,
    Formats,
    Fps,
    FusionSpec,
    Language,
    Modalities,
    Speakers,
    TextWeights,
    TurnGap,
    VoiceWeights,
    app,
    console,
    errors,
    fail,
    flat_memory,
    parse_formats_option,
    progress_bars,
    stage_updater,
)
from moodlens.errors import MoodlensError

if TYPE_CHECKING:
    from moodlens.analysis import Analysis
    from moodlens.options import AnalyzeOptions

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
    flat_memory()
    from pathlib import PurePosixPath

    from moodlens.inputs import analyse_item, plan
    from moodlens.pipeline import STAGES
    from moodlens.storage import Destination, expand_inputs, input_stem

    if debug:
        logging.getLogger().setLevel(logging.INFO)
    formats = parse_formats_option(format)
    options = command_options(fps=fps, device=device, asr_model=asr_model, fusion_weights=fusion_weights,
                              text_weights=text_weights, face_weights=face_weights, voice_weights=voice_weights,
                              transcript=transcript, model=model, speakers=speakers, face_selection=face_selection,
                              modalities=modalities, turn_gap=turn_gap, language=language)
    if transcript is not None and len(paths) > 1:
        raise fail("--transcript applies to one media file; give exactly one PATH")

    found, problems = expand_inputs(paths)
    for problem in problems:
        errors.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
    failures = len(problems)
    inputs = failures + len(found)  # each bad folder counts once, each file once
    dest = Destination(out)
    items, _ = plan(found, dest, formats)
    for item in items:
        if item.name != input_stem(item.uri):
            console.print(f"[yellow]note:[/] another input is also called {input_stem(item.uri)!r}: results for "
                          f"{item.uri} are written as {item.name}.*", highlight=False)
        with progress_bars() as progress:
            tasks = {s: progress.add_task(f"{PurePosixPath(item.uri).name}: {s}", total=1.0) for s in STAGES}
            record = analyse_item(item, dest, formats, options, stage_updater(progress, tasks),
                                 reraise=debug)
        if record.analysis is not None:
            _print_analysis(record.analysis, record.written)
        if record.status == "failed":
            hint = "; rerun with --debug for details" if "analysis failed (" in (record.error or "") else ""
            errors.print(f"[bold red]error:[/] {record.error}{hint}", highlight=False, soft_wrap=True)
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
    partials: Annotated[float | None, typer.Option(
        help="While someone speaks, show (and send as `partial` events) the words heard so far, each time this "
             "many seconds more were heard; each costs one more decoding pass. Default: off.")] = None,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
) -> None:
    """Analyse a stream as it happens: each utterance is shown (and sent as an event) when its speech
    ends. Ctrl-C or SIGTERM ends the stream and writes the Analysis; a second Ctrl-C skips the speech
    still open but keeps everything finalised."""
    flat_memory()
    import datetime as dt
    import signal
    from dataclasses import replace

    from moodlens.events import JsonLines
    from moodlens.live import LiveOptions, end_event, partials_problem, run_live
    from moodlens.sources import parse_source
    from moodlens.writers import write

    if debug:
        logging.getLogger().setLevel(logging.INFO)
    formats = parse_formats_option(format)
    options = command_options(fps=fps, device=device, asr_model=asr_model, speakers=speakers, modalities=modalities,
                              language=language)
    if stall_timeout <= 0 or open_timeout <= 0:
        raise fail("--stall-timeout and --open-timeout must be positive")
    if (problem := partials_problem(partials)) is not None:
        raise fail(f"--partials {problem}")
    try:
        parsed = parse_source(source, follow=follow)
    except MoodlensError as err:
        raise fail(str(err)) from None
    view = Console(stderr=True) if events == "-" else console
    try:
        sink = JsonLines(events) if events else None
    except OSError as err:
        raise fail(f"{events}: cannot write events ({err.strerror or err})") from None

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
        analysis = run_live(parsed, LiveOptions(replace(options, media_name=parsed.name), partial_every=partials), emit,
                            interrupted=lambda: presses[0] >= 1, abandoned=lambda: presses[0] >= 2,
                            open_timeout=open_timeout, stall_timeout=stall_timeout,
                            ready=lambda: errors.print(f"ready: models loaded, reading {parsed.name}",
                                                      highlight=False, soft_wrap=True))
        stem = name or (Path(source).stem if parsed.kind == "file" else
                        "live-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
        written = write(analysis, out, formats, name=stem)
    except MoodlensError as err:
        raise fail(str(err)) from None
    except Exception as err:
        if debug:
            raise
        raise fail(f"{source}: live analysis failed ({type(err).__name__}: {err}); rerun with --debug") from None
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
    elif kind == "partial":
        view.print(f"[dim]{_clock(data['start'])}-{_clock(data['end'])} ... {escape(data['text'])}[/]",
                   highlight=False, soft_wrap=True)
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

    from moodlens.batch import run_batch
    from moodlens.inputs import absolute, plan, summary_line
    from moodlens.storage import Destination, StorageError, expand_inputs

    formats = parse_formats_option(format)
    options = command_options(fps=fps, device=device, asr_model=asr_model, fusion_weights=fusion_weights,
                              text_weights=text_weights, face_weights=face_weights,
                              voice_weights=voice_weights, speakers=speakers,
                              face_selection=face_selection, modalities=modalities, language=language,
                              runs_here=address is None)
    started = time.monotonic()
    try:
        found, problems = expand_inputs(inputs)
        dest = Destination(absolute(out))
        todo, records = plan([absolute(u) for u in found], dest, formats, overwrite)
    except StorageError as err:
        raise fail(str(err)) from None
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
            raise fail(f"the Ray cluster at {address} asks for its token: set RAY_AUTH_MODE=token and "
                        "RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) as on the cluster") from None
        raise fail(f"cannot reach the Ray cluster at {address}: {err}") from None
    except MoodlensError as err:  # what stops the whole batch (a bad input only fails itself)
        raise fail(str(err)) from None
    console.print(summary_line(records, time.monotonic() - started), highlight=False)
    if problems or any(r.status == "failed" for r in records):
        raise typer.Exit(1)


def command_options(*, runs_here: bool = True, **flags: object) -> AnalyzeOptions:
    """Checked options, with every model file loaded once up front, so a bad one fails before any input.
    runs_here=False (a batch on a Ray cluster): the device is the workers' to have, not this machine's."""
    from moodlens.analyzer import check_models
    from moodlens.options import AnalyzeOptions, require_device

    try:
        options = AnalyzeOptions.from_flags(**flags)
        if runs_here:
            require_device(options.device)
        check_models(options, options.device if runs_here else "cpu")  # the files are checked; the GPU is the workers'
    except (ValueError, MoodlensError) as err:
        raise fail(str(err)) from None
    return options


def _print_analysis(analysis: Analysis, written: list[str]) -> None:
    table = Table(title=f"{Path(analysis.media.path).name} ({analysis.media.duration:.1f} s)", show_lines=False)
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
    method = analysis.settings.speakers.method if analysis.settings.speakers else ""
    table = Table(title=f"speakers ({method})", show_lines=False)
    for column in ("speaker", "talk time", "utterances", "dominant emotion", "sentiment", "face tracks"):
        table.add_column(column, justify="right" if column in ("talk time", "utterances", "sentiment") else "left")
    for s in analysis.speakers:
        table.add_row(s.id, f"{s.talk_time:.1f} s", str(s.utterance_count), s.dominant_emotion or "-",
                      f"{s.sentiment_score:+.2f}" if s.sentiment_score is not None else "-",
                      ", ".join(s.face_tracks) or "-")
    console.print(table)


