"""media -> utterances -> voices and turns -> experts -> fusion -> speakers -> Analysis."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from moodlens import __version__
from moodlens.analysis import (
    Analysis,
    Damage,
    FusionSettings,
    MediaRecord,
    ModalityInfo,
    Settings,
    SpeakerSettings,
    TurnSettings,
    UtteranceResult,
)
from moodlens.asr import TranscribeOptions, cpu_fallback_note, load_asr_model, transcribe
from moodlens.errors import ModelNotFoundError, TranscriptError
from moodlens.experts import EXPERTS, Expert, ExpertOutput, MediaContext
from moodlens.experts.face import face_track
from moodlens.fusion import BASELINES, Baseline, Trust, assemble, fuse_file
from moodlens.language import (
    AUTO,
    MODALITY_LANGUAGES,
    MULTILINGUAL_MODEL,
    UNSURE_BELOW,
    LanguageGuess,
    file_language,
    transcript_language,
)
from moodlens.media import AudioSpool, DecodeDamage, MediaInfo, probe
from moodlens.models.face import is_shipped_export
from moodlens.models.speaker import load_speaker_encoder
from moodlens.options import AnalyzeOptions, require_device
from moodlens.runtime import one_blas_thread
from moodlens.speakers import SpeakerEvidence, diarize, gather_evidence, voice_labels
from moodlens.summary import summarize, summarize_speakers
from moodlens.transcripts import read_transcript
from moodlens.turns import describe_turns, group_turns, per_segment
from moodlens.utterances import Utterance, fixed_windows

__all__ = ["STAGES", "AnalyzeOptions", "analyze", "warm_up"]

Progress = Callable[[str, float], None]
STAGES = ("probe", "utterances", "voices", *EXPERTS, "fusion", "speakers")


def warm_up(options: AnalyzeOptions | None = None) -> None:
    """Load every model that `analyze` will use with these options, so the first file does not
    pay for it (a server worker calls this when it starts)."""
    options = options or AnalyzeOptions()
    require_device(options.device)
    if options.model:
        from moodlens.feature_level import load_feature_model

        load_feature_model(str(options.model), options.device)
    else:
        for name, make in EXPERTS.items():
            if name in options.modalities:
                make(options)
    if not options.transcript:
        load_asr_model(TranscribeOptions(model=options.asr_model, device=options.device))
        if options.language != "en":  # auto tells every file's language with it
            with contextlib.suppress(ModelNotFoundError):  # analyze notes it and reads English
                load_asr_model(TranscribeOptions(model=MULTILINGUAL_MODEL, device=options.device))
    if options.diarize:
        with contextlib.suppress(ModelNotFoundError):  # analyze notes it and uses face tracks alone
            load_speaker_encoder(options.device)


def analyze(
    path: str | Path, options: AnalyzeOptions | None = None, progress: Progress | None = None
) -> Analysis:
    """Analyse one media file. Raises a MoodlensError subclass on bad input."""
    options = options or AnalyzeOptions()
    require_device(options.device)
    with one_blas_thread():
        return _analyze(path, options, progress)


def _analyze(path: str | Path, options: AnalyzeOptions, progress: Progress | None) -> Analysis:
    report = progress or (lambda stage, done: None)
    notes: list[str] = []
    damage = DecodeDamage()

    report("probe", 0.0)
    info = probe(path)
    report("probe", 1.0)

    # decoded once, by the first pass that reads it, for speech recognition, the voice and the speakers
    with AudioSpool(info.path, notes, damage) if info.has_audio else contextlib.nullcontext() as audio:
        return _judge(MediaContext(info, options, notes, damage, report, audio))


def _judge(media: MediaContext) -> Analysis:
    info, options, notes, damage, report = media.info, media.options, media.notes, media.damage, media.report
    experts = {} if options.model else {name: make(options) for name, make in EXPERTS.items()
                                        if name in options.modalities}
    with contextlib.ExitStack() as beside:
        for expert in experts.values():
            beside.enter_context(expert.reading_ahead(media))
        segments, heard = _utterances(info, options, notes, damage, report, media.audio)
    # the experts and fusion judge whole turns; captions and speakers keep each segment. A pause
    # alone cannot tell a turn (people answer as quickly as they pause inside a line), so a
    # change of voice ends one too.
    voices = _voices(media, segments)
    turns = group_turns(segments, options.turn_gap, voices=voice_labels(segments, voices.evidence))
    utterances = [turn.utterance for turn in turns]
    if options.model:
        from moodlens.feature_level import analyze_feature_level

        with _decoding_pass(media) as own:
            results, modalities, fusion = analyze_feature_level(own, utterances)
    else:
        results, modalities, fusion = _decision_level(media, utterances, experts)
    # speakers are found per segment: a segment too short for its voice to tell does not end a
    # turn, yet its talking face may still say whose it is
    results = per_segment(turns, segments, results)
    results, speakers = _speakers(media, segments, results, voices)
    if not utterances:
        notes.append("no speech detected: the analysis has no utterances")
    if damage.any:
        notes.append(damage.describe())
    settings = Settings(
        asr_model=None if options.transcript else options.asr_model, transcript=options.transcript,
        fps=options.fps, device=options.device, fusion=fusion, speakers=speakers,
        turns=TurnSettings(count=len(turns), segments=len(segments), max_gap=options.turn_gap,
                           unit=describe_turns(segments, options.turn_gap, bool(voices.evidence.embeddings))),
        modalities=list(options.modalities), language=options.language)
    return build_analysis(media_record(info, options.media_name or info.path, damage), settings, modalities,
                          results, notes, heard, named=[u.speaker for u in utterances if u.speaker])


def media_record(info: MediaInfo, name: str, damage: DecodeDamage) -> MediaRecord:
    """Analysis.media: what was probed, under the name the user knows it by, with what decoding skipped."""
    return MediaRecord(**{**asdict(info), "path": name, "damage": Damage(**damage.to_dict())})


def build_analysis(media: MediaRecord, settings: Settings, modalities: dict[str, ModalityInfo],
                   results: list[UtteranceResult], notes: list[str], language: dict[str, object],
                   named: list[str] | None = None) -> Analysis:
    """The Analysis of judged utterances, with its summaries (`named`: a transcript's speaker names)."""
    return Analysis(
        media=media,
        settings=settings,
        modalities=modalities,
        utterances=results,
        summary=summarize(results),
        speakers=summarize_speakers(results, named or []),
        notes=list(dict.fromkeys(notes)),  # each pass over a cut file notes the same cut
        language=language,
        moodlens_version=__version__,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def _decision_level(media: MediaContext, utterances: list[Utterance], experts: dict[str, Expert]
                    ) -> tuple[list[UtteranceResult], dict[str, ModalityInfo], FusionSettings]:
    """Each expert on its own (those of `experts`; the others are turned off), then a weighted
    product of their probabilities."""
    outputs: dict[str, ExpertOutput] = {}
    for name in EXPERTS:
        if name not in experts:
            outputs[name] = turned_off(media.options.modalities, len(utterances))
            continue
        with _decoding_pass(media) as own:
            outputs[name] = experts[name].predict(own, utterances)
    media.report("fusion", 0.0)
    per_modality = [{name: out.results[i] for name, out in outputs.items() if out.results[i] is not None}
                    for i in range(len(utterances))]
    baselines = measured_baselines(media.options)
    fused = fuse_file(per_modality, media.options.fusion, baselines, TRUST)
    media.report("fusion", 1.0)
    return assemble(utterances, per_modality, fused), modality_infos(outputs), fusion_record(media.options)


def fusion_record(options: AnalyzeOptions) -> FusionSettings:
    """Analysis.settings.fusion for decision-level fusion with these options."""
    return FusionSettings("decision-level (weighted product of likelihood ratios, per-utterance reliability)",
                          weights=asdict(options.fusion), baselines=sorted(measured_baselines(options)),
                          trust=asdict(TRUST))


def modality_infos(outputs: dict[str, ExpertOutput]) -> dict[str, ModalityInfo]:
    """Analysis.modalities: what each expert is and whether it ran, and how it treats languages."""
    return {n: replace(o.info, languages=MODALITY_LANGUAGES[n]) for n, o in outputs.items()}


@contextlib.contextmanager
def _decoding_pass(media: MediaContext) -> Iterator[MediaContext]:
    """The file for one more pass over it, with a damage count of its own, folded into the
    file's when the pass ends (DecodeDamage.merge): summed, one bad packet read by speech
    recognition, the voice expert and the speakers would be reported as three."""
    own = replace(media, damage=DecodeDamage())
    try:
        yield own
    finally:
        media.damage.merge(own.damage)


def turned_off(modalities: tuple[str, ...], count: int) -> ExpertOutput:
    """An expert left out by `modalities`: nothing loaded or run, and the analysis says why."""
    reason = f"turned off (modalities: {','.join(modalities)})"
    return ExpertOutput([None] * count, ModalityInfo(False, None, None, reason))


@dataclass(frozen=True)
class Voices:
    """Each segment's voice, embedded once: for the turns first, then for the speakers."""

    evidence: SpeakerEvidence
    model: str | None = None  # the speaker encoder's name; None when none ran


def _voices(media: MediaContext, segments: list[Utterance]) -> Voices:
    """CAM++ embeddings of the segments that need a speaker (speakers.gather_evidence); no
    audio, `--speakers off` or fewer than two segments to tell apart: none."""
    options = media.options
    if not options.diarize or not segments:
        return Voices(SpeakerEvidence(has_audio=False))
    media.report("voices", 0.0)
    encoder = None
    if media.info.has_audio and sum(not u.speaker for u in segments) >= 2:  # one alone needs no voice
        try:
            encoder = load_speaker_encoder(options.device)
        except ModelNotFoundError as err:
            media.notes.append(f"speakers: no voice embeddings ({err}); face tracks only")
    with _decoding_pass(media) as own:
        evidence = gather_evidence(segments, [None] * len(segments), media.info.path if media.info.has_audio else None,
                                   encoder, media.notes, own.damage, media.audio)
    media.report("voices", 1.0)
    return Voices(evidence, encoder.name if encoder is not None else None)


def _speakers(media: MediaContext, utterances: list[Utterance], results: list[UtteranceResult], voices: Voices
              ) -> tuple[list[UtteranceResult], SpeakerSettings]:
    """Who said each utterance: its voice and the talking face tracks (speakers.py)."""
    options = media.options
    if not options.diarize or not results:
        return results, SpeakerSettings("off" if not options.diarize else "none")
    media.report("speakers", 0.0)
    tracks = [face_track(r.per_modality.get("face")) for r in results]
    found = diarize(utterances, replace(voices.evidence, tracks=tracks), options.speakers)
    media.report("speakers", 1.0)
    labelled = [replace(r, speaker=found.labels[i], speaker_detail=found.details[i]) for i, r in enumerate(results)]
    return labelled, SpeakerSettings(found.method, forced_count=options.speakers, voice_model=voices.model)


TRUST = Trust()


def measured_baselines(options: AnalyzeOptions) -> dict[str, Baseline]:
    """The baselines bench/fusion.py measured, for the shipped models only: a user's own face or
    voice weights have none, and are pooled as they are."""
    face = None if is_shipped_export(options.face_weights) else options.face_weights  # the same model
    own = {"face": face, "voice": options.voice_weights, "text": options.text_weights}
    return {name: b for name, b in BASELINES.items() if own.get(name) is None}


def _utterances(
    info: MediaInfo, options: AnalyzeOptions, notes: list[str], damage: DecodeDamage, report: Progress,
    audio: AudioSpool | None = None,
) -> tuple[list[Utterance], dict[str, object]]:
    """The segments, and the file's language (Analysis.language)."""
    report("utterances", 0.0)
    if options.transcript:
        found = read_transcript(options.transcript, info.duration)
        try:
            guess = transcript_language([u.text for u in found], options.language)
        except ValueError as err:
            raise TranscriptError(Path(options.transcript), str(err)) from err
        if guess.reason:
            notes.append(f"language: {guess.reason}")
        found = [replace(u, language=guess.code) for u in found]
    elif not info.has_audio:
        notes.append(f"no audio stream: face-only analysis over {options.window_seconds:g} s windows")
        found = fixed_windows(info.duration, options.window_seconds)
        guess = LanguageGuess(None, None, "no audio stream")
    else:
        found = []
        asr = TranscribeOptions(model=options.asr_model, device=options.device, language=options.language)
        chunks = audio.chunks(asr.chunk_seconds) if audio is not None else None
        for utterance in transcribe(info.path, asr, notes, damage, chunks):
            found.append(utterance)
            report("utterances", min(1.0, utterance.end / info.duration))
        if note := cpu_fallback_note(options.asr_model, options.device, "ASR"):
            notes.append(note)
        guess = file_language((u.duration, u.language, u.language_probability) for u in found)
        if guess.code not in (None, "en") and guess.probability is not None and guess.probability < UNSURE_BELOW:
            notes.append(f"language: told as {guess.code} with probability {guess.probability:.2f} only (unclear "
                         "speech, or a language Whisper does not know); set --language if it is wrong")
    report("utterances", 1.0)
    return found, language_record(found, guess, options.language)


def language_record(found: list[Utterance], guess: LanguageGuess, language: str) -> dict[str, object]:
    """Analysis.language: the language told (or given by `language`) and the seconds heard in each."""
    seconds: dict[str, float] = {}
    for u in found:
        if u.language:
            seconds[u.language] = round(seconds.get(u.language, 0.0) + u.duration, 3)
    given = language != AUTO
    return {"code": guess.code, "probability": None if given else guess.probability, "given": given,
            "reason": guess.reason, "languages": seconds}
