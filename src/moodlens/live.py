"""Live analysis: each utterance judged as soon as its speech ends, while the stream goes on.

    source (sources.py) -> audio ring + Silero gate (vad.py) -> speech span
        -> speech recognition of the span -> text, voice and face experts -> fusion -> online speaker
        -> `utterance` event (events.py)
    end of stream -> speakers found again over the whole stream -> Analysis, written as `analyze` writes one

A `LiveSession` is fed audio and frames by whoever has them: `run_live` from a source here, the
web service from a WebSocket. Its memory is bounded: the audio ring holds RING_SECONDS, the
frames FRAME_SECONDS; what grows is the list of judged utterances, which the Analysis keeps.

A span closes once its speech has paused for vad.MIN_SILENCE_SECONDS, longer than the pause that
joins segments into a turn in a file, so a live utterance is a turn (turns.py), judged whole. As
in a file, a change of voice ends a turn however short the pause: where a span holds pauses of
vad.MIN_PAUSE_SECONDS or more, the stretches between them are placed among the voices heard so
far (`_by_voice`), and a span in two voices is judged as two utterances.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from moodlens.analysis import (
    Analysis,
    LiveSettings,
    ModalityResult,
    Prediction,
    Settings,
    SpeakerSettings,
    TurnSettings,
    UtteranceResult,
)
from moodlens.asr import LanguageReader, TranscribeOptions, load_asr_model
from moodlens.errors import ModelNotFoundError
from moodlens.events import Emit, event, utterance_event
from moodlens.experts import EXPERTS, Expert
from moodlens.experts.base import finished
from moodlens.experts.face import FaceExpert, FrameFaces, face_track, read_faces
from moodlens.experts.text import TextExpert
from moodlens.experts.voice import VoiceExpert
from moodlens.fusion import assemble, fuse_file
from moodlens.labels import EMOTIONS
from moodlens.language import AUTO, file_language
from moodlens.media import SAMPLE_RATE, DecodeDamage, Frame, MediaInfo
from moodlens.models.speaker import SpeakerEncoder, load_speaker_encoder
from moodlens.models.voice import CONTEXT_SECONDS, MAX_CLIP_SECONDS
from moodlens.options import AnalyzeOptions, require_device
from moodlens.pipeline import (
    TRUST,
    build_analysis,
    fusion_record,
    language_record,
    measured_baselines,
    media_record,
    modality_infos,
    turned_off,
)
from moodlens.pitch import pitch_jitter
from moodlens.process import return_freed_memory
from moodlens.runtime import one_blas_thread
from moodlens.sources import AudioChunk, Ended, Opened, Source, SourceReader
from moodlens.speakers import (
    MAX_VOICE_SECONDS,
    MIN_VOICE_SECONDS,
    OnlineSpeakers,
    SpeakerEvidence,
    diarize,
    pooled_voice,
)
from moodlens.speakers import PAD_SECONDS as VOICE_PAD_SECONDS  # a file's voice pad, kept apart from PAD_SECONDS
from moodlens.tracks import FaceTracker
from moodlens.turns import join_segments
from moodlens.utterances import Utterance
from moodlens.vad import MAX_SPEECH_SECONDS, MIN_SILENCE_SECONDS, SpeechGate, SpeechSpan

# Read either side of a speech span for its words: Silero's edges cut word onsets and tails. The
# pad a file's speech gets (faster-whisper's VAD, TranscribeOptions.vad_speech_pad_ms); on the
# spoken dev dialogues read live, 0.2 s lost 7 short lines that 0.4 s heard (docs/live.md).
PAD_SECONDS = TranscribeOptions.vad_speech_pad_ms / 1000
RING_SECONDS = MAX_SPEECH_SECONDS + 10.0  # audio kept: the longest span, its pads, and slack for a slow step
FRAME_SECONDS = MAX_SPEECH_SECONDS + 10.0  # faces kept, for the same reason
# A language told this surely is kept for the rest of the stream: telling it again for every
# utterance would cost Whisper base's encoder each time.
KEEP_LANGUAGE_ABOVE = 0.8
# Freed memory is handed back to the system after every this many utterances, once the event is
# out: a trim costs a few milliseconds, and lowers the level between peaks (docs/live.md).
TRIM_EVERY = 10
MIN_PARTIAL_SECONDS, MAX_PARTIAL_SECONDS = 0.5, MAX_SPEECH_SECONDS  # --partials: more often than 0.5 s is all decoding


def partials_problem(seconds: object) -> str | None:
    """What is wrong with `seconds` as LiveOptions.partial_every (None, which turns partials off,
    and a number in range are fine); the command line and the WebSocket say it in their words."""
    if seconds is None or (not isinstance(seconds, bool) and isinstance(seconds, int | float)
                           and MIN_PARTIAL_SECONDS <= seconds <= MAX_PARTIAL_SECONDS):
        return None
    return f"must be a number of seconds from {MIN_PARTIAL_SECONDS:g} to {MAX_PARTIAL_SECONDS:g}"


@dataclass(frozen=True)
class LiveOptions:
    analyze: AnalyzeOptions = field(default_factory=AnalyzeOptions)
    min_silence: float = MIN_SILENCE_SECONDS
    face_events: bool = True
    # seconds of new speech between `partial` events while a span is still open; None: none sent.
    # Each is one more decoding pass over the speech so far, taken from the time the finals need.
    partial_every: float | None = None


class LiveModels:
    """Every model a live session runs, loaded once: the web service shares them between sessions."""

    def __init__(self, options: AnalyzeOptions) -> None:
        require_device(options.device)
        if options.model or options.transcript:
            raise ValueError("live analysis runs the experts on speech as it comes: no --model bundle or --transcript")
        self.options = options
        self.experts: dict[str, Expert] = {name: make(options) for name, make in EXPERTS.items()
                                           if name in options.modalities}
        self.asr = TranscribeOptions(model=options.asr_model, device=options.device, language=options.language,
                                     split_sentences=False, snap_to_speech=False)  # a span has Silero's edges
        load_asr_model(self.asr)
        self.notes: list[str] = []
        # Sessions of one server share these models: one judges at a time (each call uses every
        # core anyway, and a Hugging Face tokenizer must not be entered from two threads at once).
        self.lock = threading.Lock()
        self.speaker_encoder: SpeakerEncoder | None = None
        if options.diarize:
            try:
                self.speaker_encoder = load_speaker_encoder(options.device)
            except ModelNotFoundError as err:
                self.notes.append(f"speakers: no voice embeddings ({err}); face tracks only")


@dataclass(frozen=True)
class Part:
    """A span, or the stretch of it in one voice (LiveSession._by_voice), with the samples it may
    read around its speech: its pads, but never into another voice's speech."""

    span: SpeechSpan
    first: int
    last: int
    # its voice, pooled from the stretches that told it apart (unit CAM++ embeddings summed, as
    # speakers.py pools a face track's), so it is not embedded twice; None: embed the part whole
    voice: np.ndarray | None = None


@dataclass
class Prepared:
    """A span's judgement before it is final (LiveSession._prepare)."""

    span: SpeechSpan
    utterance: Utterance
    per_modality: dict[str, ModalityResult] = field(default_factory=dict)
    voice_feature: np.ndarray | None = None
    voice_seconds: float = 0.0  # the audio the voice read, its context included
    voice_jitter: float | None = None  # pitch.pitch_jitter of the span's own audio
    embedding: np.ndarray | None = None
    voiced: float = 0.0
    seconds: float = 0.0  # spent preparing


class AudioRing:
    """The last `seconds` of a stream's 16 kHz audio, addressed by sample index from its first sample."""

    def __init__(self, seconds: float) -> None:
        self.buffer = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
        self.total = 0  # samples ever appended

    def append(self, samples: np.ndarray) -> None:
        samples = samples[-self.buffer.size:]
        n = samples.size
        at = self.total % self.buffer.size
        first = min(n, self.buffer.size - at)
        self.buffer[at:at + first] = samples[:first]
        self.buffer[:n - first] = samples[first:]
        self.total += n

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end), clipped to what is still held."""
        start, end = max(start, self.total - self.buffer.size, 0), min(end, self.total)
        if end <= start:
            return np.zeros(0, np.float32)
        index = np.arange(start, end) % self.buffer.size
        return self.buffer[index]


class LiveSession:
    """One stream's analysis. Feed it with `feed_audio` and `feed_frame` in arrival order; `finish`
    judges what is still open (unless told not to) and returns the Analysis."""

    def __init__(self, models: LiveModels, name: str, opened: Opened, emit: Emit,
                 options: LiveOptions | None = None) -> None:
        self.models, self.name, self.opened, self.emit = models, name, opened, emit
        self.options = options or LiveOptions(models.options)
        analyze = self.models.options
        self.notes: list[str] = list(models.notes)
        self.info = MediaInfo(name, opened.container, 0.0, 0, opened.has_audio, opened.has_video, opened.width,
                              opened.height, opened.fps, video_codec=opened.video_codec,
                              audio_codec=opened.audio_codec,
                              audio_sample_rate=SAMPLE_RATE if opened.has_audio else None,
                              audio_channels=1 if opened.has_audio else None)
        self.gate = SpeechGate(min_silence=self.options.min_silence)
        self.ring = AudioRing(RING_SECONDS)
        self.audio_origin: float | None = None  # media time of the first audio sample
        self.frames: deque[FrameFaces] = deque()
        self.tracker = FaceTracker()
        self.reader = LanguageReader(models.asr, self.notes)
        self.segments: list[Utterance] = []
        self.per_modality: list[dict[str, ModalityResult]] = []
        self.results: list[UtteranceResult] = []
        self.voice_features: list[np.ndarray] = []
        self.voice_seconds: list[float] = []
        self.voice_jitters: list[float | None] = []
        self.embeddings: dict[int, np.ndarray] = {}
        self.voiced: dict[int, float] = {}
        self.online = OnlineSpeakers(analyze.speakers)
        self.latest = 0.0  # media time reached
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.finished: Analysis | None = None
        self.early: tuple[SpeechSpan, list[Prepared]] | None = None  # a span offered before its pause ended
        self.glimpsed: tuple[int, int, str] | None = None  # the open span's start, end and text at its last partial
        emit(event("start", source=name, has_audio=opened.has_audio, has_video=opened.has_video,
                   container=opened.container, modalities=list(analyze.modalities), started_at=self.started_at))
        if not opened.has_audio:
            self.note("no audio stream: nothing is said, so there are no utterances; faces are still read")
        if not opened.has_video and "face" in analyze.modalities:
            self.note("no video stream: utterances are judged by words and voice")
        for message in self.notes:
            emit(event("note", message=message))

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.emit(event("note", message=message, time=round(self.latest, 3)))

    def feed_audio(self, chunk: AudioChunk) -> None:
        if self.audio_origin is None:
            self.audio_origin = chunk.time
        self.ring.append(chunk.samples)
        self.latest = max(self.latest, self.audio_origin + self.ring.total / SAMPLE_RATE)
        for span in self.gate.push(chunk.samples):
            self._on_span(span)
        if self.options.partial_every:
            self._glimpse(self.options.partial_every)

    def feed_frame(self, frame: Frame) -> None:
        self.latest = max(self.latest, frame.time)
        face = self.models.experts.get("face")
        if not isinstance(face, FaceExpert):
            return
        with self.models.lock:
            read = read_faces(frame.time, frame.image, self.tracker, face.detector, face.model)
        self.frames.append(read)
        while self.frames and self.frames[0].time < frame.time - FRAME_SECONDS:
            self.frames.popleft()
        if read.faces and self.options.face_events:
            largest = max(range(len(read.faces)), key=lambda i: read.faces[i].box.area)
            box = read.faces[largest].box
            emotion = Prediction.from_probabilities(EMOTIONS, read.probabilities[largest])
            self.emit(event("face", time=round(frame.time, 3), track=read.faces[largest].track,
                            box=[round(float(v), 1) for v in (box.x, box.y, box.width, box.height)],
                            frame_size=[int(frame.image.shape[1]), int(frame.image.shape[0])],
                            emotion={"label": emotion.label, "score": emotion.score,
                                     "probabilities": emotion.probabilities}))

    def _on_span(self, span: SpeechSpan) -> None:
        """Judge a span offered early, and keep the judgement; commit it when the span closes as
        it was, else judge the closed span afresh (speech came back within the pause)."""
        if not span.final:
            with self.models.lock:
                self.early = (span, self._judge(span))
            return
        early, self.early = self.early, None
        if early is not None and early[0].same(span):
            prepared = early[1]
        else:
            with self.models.lock:
                prepared = self._judge(span)
        for each in prepared:
            self._commit(each)

    def _judge(self, span: SpeechSpan) -> list[Prepared]:
        """The span's utterances, one per voice in it, prepared in order."""
        prepared: list[Prepared] = []
        for part in self._by_voice(span):
            after = prepared[-1].utterance.end if prepared else self.segments[-1].end if self.segments else 0.0
            if (done := self._prepare(part, after)) is not None:
                prepared.append(done)
        return prepared

    def _by_voice(self, span: SpeechSpan) -> list[Part]:
        """The span cut at the pauses where its voice changes: the stretches between its pauses,
        each long enough to embed, placed among the voices heard so far (OnlineSpeakers.voices);
        one too short to tell stays with the voice before it. Whole where there is no pause,
        no speaker encoder, or one voice."""
        pad = int(PAD_SECONDS * SAMPLE_RATE)
        whole = [Part(span, max(span.start - pad, 0), span.end + pad)]
        encoder = self.models.speaker_encoder
        if not span.pauses or encoder is None or not self.models.options.diarize:
            return whole
        edges = [span.start, *(x for pause in span.pauses for x in pause), span.end]
        stretches = list(zip(edges[::2], edges[1::2], strict=True))
        longest = int(MAX_VOICE_SECONDS * SAMPLE_RATE)
        clips = [self.ring.read(a, min(b, a + longest)) for a, b in stretches]
        heard = [i for i, clip in enumerate(clips) if clip.size >= MIN_VOICE_SECONDS * SAMPLE_RATE]
        if len(heard) < 2:
            return whole
        embedded = dict(zip(heard, encoder.embed([clips[i] for i in heard]), strict=True))
        voices = self.online.voices([embedded.get(i) for i in range(len(stretches))])
        for i in range(len(voices)):  # too short to tell: the voice before it, else the one after
            voices[i] = voices[i] if voices[i] is not None else voices[i - 1] if i else next(
                (v for v in voices if v is not None), None)
        groups = [[0]]
        for i in range(1, len(stretches)):
            if voices[i] == voices[i - 1]:
                groups[-1].append(i)
            else:
                groups.append([i])
        if len(groups) == 1:
            return [replace(whole[0], voice=pooled_voice(groups[0], embedded))]
        parts = []
        for k, group in enumerate(groups):
            start, end = stretches[group[0]][0], stretches[group[-1]][1]
            inside = tuple(span.pauses[i] for i in group[:-1])
            first = max(start - pad, 0) if k == 0 else max(start - pad, stretches[group[0] - 1][1])
            last = end + pad if k == len(groups) - 1 else min(end + pad, stretches[group[-1] + 1][0])
            parts.append(Part(SpeechSpan(start, end, span.final, inside), first, last, pooled_voice(group, embedded)))
        return parts

    def _glimpse(self, every: float) -> None:
        """A `partial` event with the words of the speech still open, each time `every` seconds more
        of it were heard; its final `utterance` event follows when the span closes."""
        speech = self.gate.open_speech()
        if speech is None:
            return
        last = self.glimpsed if self.glimpsed is not None and self.glimpsed[0] == speech.start else None
        if speech.end - (last[1] if last else speech.start) < every * SAMPLE_RATE:
            return
        origin = self.audio_origin or 0.0
        first = max(speech.start - int(PAD_SECONDS * SAMPLE_RATE), 0)
        with self.models.lock:
            text = self.reader.glimpse(self.ring.read(first, speech.end), origin + first / SAMPLE_RATE)
        self.glimpsed = (speech.start, speech.end, text)
        if text and (last is None or text != last[2]):
            self.emit(event("partial", start=round(origin + speech.start / SAMPLE_RATE, 3),
                            end=round(origin + speech.end / SAMPLE_RATE, 3), text=text))

    def _prepare(self, part: Part, after: float) -> Prepared | None:
        """Everything about a span (or its stretch in one voice) that does not depend on the
        utterances before it being final: its words, each expert's reading, its voice embedding.
        None where no words were heard. `after`: where the speech before it ended (media time),
        which the voice's context does not reach past."""
        began = time.monotonic()
        origin = self.audio_origin or 0.0
        span = part.span
        heard = list(self.reader.read(self.ring.read(part.first, part.last), origin + part.first / SAMPLE_RATE))
        self._keep_language()
        if not heard:
            return None
        # the span's own edges, to Silero's 32 ms: Whisper's segment times on a clip this short
        # snap to whole seconds
        utterance = replace(join_segments(heard), start=round(origin + span.start / SAMPLE_RATE, 3),
                            end=round(origin + span.end / SAMPLE_RATE, 3))
        prepared = Prepared(span, utterance)
        for name, expert in self.models.experts.items():
            if isinstance(expert, VoiceExpert):
                own = self._clip(utterance.start, utterance.end, MAX_CLIP_SECONDS)
                skipped = expert.inaudible(own)
                if skipped is not None:
                    prepared.per_modality[name] = skipped
                else:
                    # the context a file's utterance gets (CONTEXT_SECONDS) before it; after it, only
                    # the pause that closed the span, since waiting for more would add to the latency
                    before = max(utterance.start - CONTEXT_SECONDS, after)
                    clip = self._clip(before, min(utterance.end + min(CONTEXT_SECONDS, self.options.min_silence),
                                                  origin + part.last / SAMPLE_RATE), MAX_CLIP_SECONDS)
                    prepared.voice_feature, prepared.voice_seconds = expert.features(clip), clip.size / SAMPLE_RATE
                    prepared.voice_jitter = pitch_jitter(own)
            elif (result := self._expert(expert, utterance)) is not None:
                prepared.per_modality[name] = result
        if self.models.options.diarize:
            # the voice is read with the pad a file's utterance gets for it, within the part's reach
            clip = self._clip(max(origin + part.first / SAMPLE_RATE, utterance.start - VOICE_PAD_SECONDS),
                              min(origin + part.last / SAMPLE_RATE, utterance.end + VOICE_PAD_SECONDS),
                              MAX_VOICE_SECONDS)
            prepared.voiced = clip.size / SAMPLE_RATE
            encoder = self.models.speaker_encoder
            if part.voice is not None:
                prepared.embedding = part.voice
            elif encoder is not None and prepared.voiced >= MIN_VOICE_SECONDS:
                prepared.embedding = encoder.embed([clip])[0]
        prepared.seconds = time.monotonic() - began
        return prepared

    def _commit(self, prepared: Prepared) -> None:
        """Finalise a prepared utterance: the voice centred over the stream so far, fusion, the
        online speaker; then its event."""
        began = time.monotonic()
        index = len(self.results)
        utterance, per_modality = prepared.utterance, prepared.per_modality
        voice = self.models.experts.get("voice")
        if prepared.voice_feature is not None and isinstance(voice, VoiceExpert):
            self.voice_features.append(prepared.voice_feature)
            self.voice_seconds.append(prepared.voice_seconds)
            self.voice_jitters.append(prepared.voice_jitter)
            newest = [len(self.voice_features) - 1]  # centred over the stream so far
            per_modality["voice"] = voice.judge(self.voice_features, self.voice_seconds, self.voice_jitters,
                                                newest)[0]
        per_modality = {name: per_modality[name] for name in EXPERTS if name in per_modality}
        self.segments.append(utterance)
        self.per_modality.append(per_modality)
        fused = fuse_file(self.per_modality, self.models.options.fusion, measured_baselines(self.models.options),
                          TRUST, indices=[index])[0]
        result = replace(assemble([utterance], [per_modality], [fused])[0], index=index, turn=index)
        if self.models.options.diarize:
            self.voiced[index] = prepared.voiced
            if prepared.embedding is not None:
                self.embeddings[index] = prepared.embedding
            result = replace(result, speaker=self.online.assign(prepared.embedding))
        self.results.append(result)
        self.emit(utterance_event(result, prepared.seconds + time.monotonic() - began))
        if len(self.results) % TRIM_EVERY == 0:
            return_freed_memory()

    def _keep_language(self) -> None:
        guess = self.reader.last
        if (self.models.asr.language == AUTO and self.reader.options.language == AUTO and guess is not None
                and guess.code is not None and guess.probability is not None
                and guess.probability >= KEEP_LANGUAGE_ABOVE):
            self.reader.options = replace(self.reader.options, language=guess.code)
            self.note(f"language: told as {guess.code} (probability {guess.probability:.2f}) and kept for the "
                      "rest of the stream")

    def _clip(self, start: float, end: float, longest: float) -> np.ndarray:
        origin = self.audio_origin or 0.0
        first = int((start - origin) * SAMPLE_RATE)
        return self.ring.read(first, min(int((end - origin) * SAMPLE_RATE), first + int(longest * SAMPLE_RATE)))

    def _expert(self, expert: Expert, utterance: Utterance) -> ModalityResult | None:
        """The face or text expert's reading of one utterance."""
        if isinstance(expert, FaceExpert):
            if not self.frames:
                return None
            half = 0.5 / self.models.options.fps
            near = [f for f in self.frames if utterance.start - half <= f.time <= utterance.end + half]
            return expert.judge(near, [utterance], self.models.options)[0]
        assert isinstance(expert, TextExpert)
        # the utterance with the turns before it that the model reads as context
        turns = expert.model.config.context_turns
        window = [*(self.segments[-turns:] if turns else []), utterance]
        return expert.judge(window, only=[len(window) - 1])[-1]

    def finish(self, reason: str, complete: bool = True, flush: bool = True) -> Analysis:
        """The Analysis of every finalised utterance. `flush`: judge the speech still open first
        (False: a second interrupt, which must not wait for it). Speakers are found again over the
        whole stream, and the labels that changed are sent as a `speakers` event."""
        if self.finished is not None:
            return self.finished
        if flush:
            for span in self.gate.flush():
                self._on_span(span)
        speakers = self._rediarize()
        analyze = self.models.options
        outputs = {}
        for name in EXPERTS:
            expert = self.models.experts.get(name)
            results: list[ModalityResult | None] = [p.get(name) for p in self.per_modality]
            if expert is None:
                outputs[name] = turned_off(analyze.modalities, len(self.results))
            else:
                outputs[name] = finished(expert.describe(), results, _unused_reason(name, self.opened))
        if not self.results:
            self.notes.append("no speech detected: the analysis has no utterances")
        duration = max(self.latest, 1e-3)
        media = media_record(replace(self.info, duration=round(duration, 3)), self.info.path, DecodeDamage())
        settings = Settings(
            asr_model=analyze.asr_model, transcript=None, fps=analyze.fps, device=analyze.device,
            fusion=fusion_record(analyze), speakers=speakers,
            turns=TurnSettings(count=len(self.results), segments=len(self.results),
                               unit=self._unit()),
            modalities=list(analyze.modalities), language=analyze.language,
            live=LiveSettings(source=self.name, started_at=self.started_at, ended=reason, complete=complete))
        guess = file_language((u.duration, u.language, u.language_probability) for u in self.segments)
        self.finished = build_analysis(media, settings, modality_infos(outputs), self.results, self.notes,
                                       language_record(self.segments, guess, analyze.language))
        return self.finished

    def _unit(self) -> str:
        """What a live utterance is, for Analysis.settings.turns.unit."""
        by_voice = self.models.options.diarize and self.models.speaker_encoder is not None
        return (f"speech span closed by {self.options.min_silence:g} s of silence"
                f"{', and cut where the voice changes (CAM++)' if by_voice else ''} (live)")

    def _rediarize(self) -> SpeakerSettings:
        analyze = self.models.options
        if not analyze.diarize or not self.results:
            return SpeakerSettings("off" if not analyze.diarize else "none")
        tracks = [face_track(p.get("face")) for p in self.per_modality]
        evidence = SpeakerEvidence(self.embeddings, self.voiced, tracks,
                                   self.opened.has_audio and self.models.speaker_encoder is not None)
        found = diarize(self.segments, evidence, analyze.speakers)
        changes = []
        for i, (result, label) in enumerate(zip(self.results, found.labels, strict=True)):
            if result.speaker != label:
                changes.append({"index": i, "from": result.speaker, "to": label})
            self.results[i] = replace(result, speaker=label, speaker_detail=found.details[i])
        self.emit(event("speakers", changes=changes, method=found.method))
        encoder = self.models.speaker_encoder
        return SpeakerSettings(found.method, forced_count=analyze.speakers, online=True,
                               voice_model=encoder.name if encoder is not None else None)


def _unused_reason(name: str, opened: Opened) -> str:
    if name == "face" and not opened.has_video:
        return "no video stream"
    if name in ("voice", "text") and not opened.has_audio:
        return "no audio stream"
    return {"face": "no face found in the sampled frames", "voice": "no utterance long and loud enough for the voice",
            "text": "no speech found"}[name]


def run_live(source: Source, options: LiveOptions, emit: Emit, models: LiveModels | None = None,
             interrupted: Callable[[], bool] = lambda: False, abandoned: Callable[[], bool] = lambda: False,
             open_timeout: float | None = None, stall_timeout: float | None = None,
             ready: Callable[[], None] = lambda: None) -> Analysis:
    """Analyse `source` until it ends, fails or `interrupted()`; the Analysis of what was finalised.
    `abandoned()` true at the end: the speech still open is not judged (a second Ctrl-C). `ready()`
    is called once the models are loaded, before the source is opened."""
    models = models or LiveModels(options.analyze)
    ready()
    timeouts = {k: v for k, v in (("open_timeout", open_timeout), ("stall_timeout", stall_timeout)) if v is not None}
    reader = SourceReader(source, options.analyze.fps, options.analyze.max_side, **timeouts)
    opened = reader.open()
    with one_blas_thread():
        session = LiveSession(models, source.name, opened, emit, options)
        reason, complete = "interrupted", True
        dropped = 0
        try:
            for item in reader.items(lambda: interrupted() or abandoned()):
                if isinstance(item, Ended):
                    reason, complete = item.error or "end of stream", item.error is None
                    break
                if isinstance(item, AudioChunk):
                    session.feed_audio(item)
                else:
                    session.feed_frame(item)
                if reader.dropped_frames >= dropped + 10:  # told in tens, not one event a frame
                    dropped = reader.dropped_frames
                    session.note(f"analysis fell behind: {dropped} camera frames dropped so far "
                                 "(audio is never dropped)")
        finally:
            reader.stop()
        if reader.bad_packets:
            session.notes.append(f"{reader.bad_packets} packets could not be decoded and were skipped")
        session.info = replace(session.info, size_bytes=reader.bytes_read)
        return session.finish(reason, complete=complete and not abandoned(), flush=not abandoned())


def end_event(analysis: Analysis, written: list[str] | None = None, job: str | None = None) -> dict[str, object]:
    """The `end` event of a finished session, once its Analysis is stored (`written`, `job`)."""
    live = analysis.settings.live
    return event("end", reason=live.ended if live else "end of stream", complete=live.complete if live else True,
                 duration=analysis.media.duration, utterances=len(analysis.utterances),
                 written=list(written or []), job=job)
