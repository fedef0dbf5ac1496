"""Speech recognition: faster-whisper over Silero VAD, chunk by chunk, each chunk in its language,
and each line that Whisper read unsurely told again on its own.

What it yields are Utterances (utterances.py); transcript files are read by transcripts.py instead.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from moodlens.errors import ModelNotFoundError
from moodlens.language import (
    AUTO,
    ENGLISH,
    MIN_SPEECH_SECONDS,
    MULTILINGUAL_MODEL,
    LanguageGuess,
    detect_language,
    glance_language,
    speech_only,
    trim_padding,
)
from moodlens.media import SAMPLE_RATE, DecodeDamage, iter_audio
from moodlens.models.weights import resolve_asr_model
from moodlens.utterances import Utterance
from moodlens.vad import speech_regions

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment, TranscriptionOptions


@dataclass(frozen=True)
class TranscribeOptions:
    model: str = "tiny.en"
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 1
    vad_filter: bool = True
    chunk_seconds: float = 60.0
    split_sentences: bool = True
    # How much of faster-whisper's zero padding, after the speech of a window, an English-only
    # model's encoder reads (30: the whole 30 s window, as Whisper was trained). See shorten_windows.
    padding_seconds: float = 10.0
    # Silero VAD and Whisper's own checks, as faster-whisper names them (its defaults here);
    # bench/asr_settings.py measures them on short, quick dialogue.
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 2000
    vad_speech_pad_ms: int = 400
    no_speech_threshold: float | None = 0.6
    log_prob_threshold: float | None = -1.0
    # Text Whisper reads as if it came before each window: it copies the prompt's style, so a
    # prompt with exclamation marks brings them back where speech sounds like them.
    initial_prompt: str | None = None
    # "auto": told from the speech of each chunk (language.py); a code: every chunk is read in it
    language: str = AUTO
    # Move each boundary between two segments to the pause that Silero hears nearest to it
    # (snap_to_speech): Whisper's own times drift by up to a second on quick dialogue.
    snap_to_speech: bool = True
    multilingual_model: str = MULTILINGUAL_MODEL
    # Fallback temperatures for the multilingual model, half of faster-whisper's six: each is one
    # more decoding of a window it reads badly, as it does espeak-ng's Dutch (the real-time factors
    # of bench/multilingual.py); real German (EmoDB) decodes at the first and reads the same.
    multilingual_temperatures: tuple[float, ...] = (0.0, 0.4, 0.8)


@lru_cache(maxsize=4)
def _whisper(model: str, device: str, compute_type: str, padding_seconds: float) -> WhisperModel:
    from faster_whisper import WhisperModel
    from faster_whisper.utils import download_model

    from moodlens.models.whisper_encoder import torch_encoder, use_torch_encoder
    from moodlens.runtime import fast_bf16, threads

    cores = threads()
    folder = resolve_asr_model(model)
    encoder = None
    if device == "cpu" and fast_bf16():
        folder = folder if Path(folder).is_dir() else download_model(folder)  # a hub name, online
        encoder = torch_encoder(folder)
    # CTranslate2 and torch end up sharing one libgomp. Once CTranslate2 starts a thread team of
    # its own, libgomp counts more threads than cores and stops spinning for everyone, and
    # torch's many small ops (CAM++, MPNet) then wait on sleeping threads: twice as slow. With
    # the encoder in torch, what CTranslate2 has left (decoding a few tokens, word alignment,
    # the voice expert's short clips) needs no team; without bf16 its int8 encoder gets a team
    # only where both fit in the cores (bench/realtime_factor.py with MOODLENS_BF16=0).
    together = 2 * cores <= (os.cpu_count() or 1)
    whisper = WhisperModel(folder, device=device, compute_type=compute_type,
                           cpu_threads=cores if encoder is None and together else 1)
    if encoder is not None:
        import torch

        torch.set_num_threads(cores)  # CTranslate2 set this thread's OpenMP count to its own
        use_torch_encoder(whisper, encoder)
    if not whisper.model.is_multilingual:
        # measured on English-only tiny.en; a multilingual model also detects the language from
        # its windows, which nothing here has measured on shortened ones, so it reads them whole
        shorten_windows(whisper, padding_seconds)
    return whisper


def shorten_windows(whisper: WhisperModel, padding_seconds: float) -> None:
    """Make `whisper` encode each window's speech and `padding_seconds` of its padding, not all 30 s.

    faster-whisper pads every window to 30 s of mel frames, so a 2 s utterance costs a full 30 s
    encoder pass, most of ASR's time on short clips. Both encoders (CTranslate2's and
    models/whisper_encoder.py's) read any length, and the decoder, trained on padded windows,
    needs only part of the padding: on the 11 MELD clips and 400 RAVDESS files, 5, 7 and 10 s of
    it gave the word error rate of the whole window or better, while 0 and 3 s let the decoder
    loop on some clips (bench/asr_encoder.py). 10 s is kept, twice the least that held.

    Should the first, greedy decoding of a shortened window fail faster-whisper's own checks
    (too repetitive, or too unsure, which would send it to sampling at higher temperatures), the
    window is read again whole and decoded as Whisper always would, so a loop costs time, never
    words, and audio that fails anyway (other languages, noise) costs one extra greedy pass.
    """
    encode, generate = whisper.encode, whisper.generate_with_fallback
    frames = int(padding_seconds * whisper.feature_extractor.sampling_rate) // whisper.feature_extractor.hop_length
    last = threading.local()  # the window just encoded, per thread: a server's threads share the model

    def encode_shorter(features: np.ndarray) -> object:
        trimmed = trim_padding(features, frames)
        last.whole = features if trimmed is not features else None
        return encode(trimmed)

    def generate_or_read_whole(encoder_output: object, prompt: list[int], tokenizer: object,
                               options: TranscriptionOptions) -> tuple:
        whole, last.whole = getattr(last, "whole", None), None
        if whole is None:
            return generate(encoder_output, prompt, tokenizer, options)
        greedy = generate(encoder_output, prompt, tokenizer, replace(options, temperatures=options.temperatures[:1]))
        if not falls_back(greedy, options):
            return greedy
        return generate(encode(whole), prompt, tokenizer, options)

    whisper.encode = encode_shorter  # type: ignore[method-assign]
    whisper.generate_with_fallback = generate_or_read_whole  # type: ignore[method-assign]


def falls_back(decoded: tuple, options: TranscriptionOptions) -> bool:
    """Whether faster-whisper would decode this (result, avg_logprob, temperature, compression
    ratio) again at a higher temperature: the checks of `WhisperModel.generate_with_fallback`."""
    result, avg_logprob, _, compression_ratio = decoded
    limit = options.compression_ratio_threshold
    repetitive = limit is not None and compression_ratio > limit
    unsure = options.log_prob_threshold is not None and avg_logprob < options.log_prob_threshold
    silent = options.no_speech_threshold is not None and result.no_speech_prob > options.no_speech_threshold
    return (repetitive or unsure) and not (silent and unsure)


def load_asr_model(options: TranscribeOptions) -> WhisperModel:
    """Whisper on the GPU where CTranslate2 can use it, else on the CPU (see cuda_unusable)."""
    if options.device == "cuda" and cuda_unusable(options.model) is None:
        return _whisper(options.model, "cuda", "float16" if options.compute_type == "int8" else options.compute_type,
                        options.padding_seconds)
    return _whisper(options.model, "cpu", options.compute_type, options.padding_seconds)


@lru_cache(maxsize=2)
def cuda_unusable(model: str) -> str | None:
    """Why CTranslate2 cannot run Whisper on the GPU here (None: it can).

    Its wheels are built for one CUDA major version (12 for 4.x) and load cuBLAS only at the first
    matrix product, so on a machine with another CUDA the load succeeds and the first file fails.
    One encoder pass on silence, at load time, finds out; the CPU then takes over with this reason,
    which the analysis notes, instead of an `analyze --device cuda` that cannot work.
    """
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        return "CTranslate2 sees no CUDA device"
    try:
        whisper = _whisper(model, "cuda", "float16", TranscribeOptions.padding_seconds)
        mels = int(whisper.feat_kwargs.get("feature_size", 80))
        whisper.model.encode(ctranslate2.StorageView.from_array(np.zeros((1, mels, 3000), np.float32)))
    except (RuntimeError, ValueError) as err:
        return f"CTranslate2 could not use CUDA ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    return None


def cpu_fallback_note(model: str, device: str, user: str) -> str | None:
    """The analysis note for a Whisper `user` (ASR, the voice encoder) that ran on the CPU
    although the GPU was asked for; None where it ran where asked."""
    why = cuda_unusable(model) if device == "cuda" else None
    return f"{user} ran on the CPU, not the GPU: {why}" if why else None


def transcribe(
    path: str | Path,
    options: TranscribeOptions | None = None,
    notes: list[str] | None = None,
    damage: DecodeDamage | None = None,
    audio: Iterable[tuple[float, np.ndarray]] | None = None,
) -> Iterator[Utterance]:
    """Yield utterances lazily, chunk by chunk, so memory stays flat on long media. `audio`: the
    file's chunks from elsewhere (an AudioSpool's), instead of decoding `path` here.

    A chunk that has a successor is cut at its quietest moment near the end, and the rest is
    carried into the next chunk, so chunking does not cut words in half. Each chunk is read in
    its own language (language.py): English by `options.model`, any other by the multilingual
    model, which also translates each utterance to English for the text model.
    """
    options = options or TranscribeOptions()
    reader = LanguageReader(options, notes if notes is not None else [])
    held: tuple[float, np.ndarray] | None = None
    chunks = audio if audio is not None else iter_audio(path, options.chunk_seconds, notes, damage)
    for offset, samples in chunks:
        if held is not None:
            start, audio = held
            cut = quietest_point(audio, int(CUT_SEARCH_SECONDS * SAMPLE_RATE))
            yield from reader.read(audio[:cut], start)
            offset, samples = start + cut / SAMPLE_RATE, np.concatenate([audio[cut:], samples])
        held = (offset, samples)
    if held is not None:
        yield from reader.read(held[1], held[0])


class LanguageReader:
    """Reads each chunk of audio in its language: tells it (or takes `options.language`), then
    transcribes with the model for it, and translates what is not English."""

    def __init__(self, options: TranscribeOptions, notes: list[str]) -> None:
        self.options = options
        self.notes = notes
        self.english = load_asr_model(options)
        self.last: LanguageGuess | None = None  # for a chunk with too little speech to tell
        # lines told one by one where the language was not given (live keeps a language once told
        # surely, by changing `options.language`, and still tells doubtful lines)
        self.retell = options.language == AUTO
        self.told_lines: deque[tuple[float, str]] = deque()  # (start, language) of lines told in another

    def read(self, samples: np.ndarray, offset: float) -> Iterator[Utterance]:
        guess = self.language(samples)
        heard = self._read_in(guess, samples, offset)
        if not self.retell and not self.options.snap_to_speech:
            yield from (utterance for utterance, _ in heard)
            return
        regions = [(offset + start, offset + end) for start, end in speech_regions(samples, self.options.vad_threshold)]
        if self.retell:
            heard = self._with_unheard(heard, guess, regions)
            # a chunk of one line was told from the same speech a moment ago: no second look
            if len(heard) > 1 or guess.given or guess.code is None:
                heard = self._retold(heard, samples, offset)
        lines = [utterance for utterance, _ in heard if utterance.text]
        yield from snap_to_speech(lines, regions) if self.options.snap_to_speech else lines

    def _with_unheard(self, heard: list[tuple[Utterance, float]], guess: LanguageGuess,
                      regions: Sequence[tuple[float, float]]) -> list[tuple[Utterance, float]]:
        """`heard` with an empty line for each stretch of speech (`regions` joined across pauses
        under UNHEARD_PAUSE_SECONDS; at least MIN_SPEECH_SECONDS) that no line overlaps: Whisper
        told one language drops lines in another (English lines among German ones, in
        bench/language_id.py --mixed), and an empty line is doubted like an unsure one. One still
        empty after _retold is dropped."""
        language = guess.code if guess.code is not None and self.multilingual() is not None else ENGLISH
        stretches: list[list[float]] = []
        for start, end in regions:
            if stretches and start - stretches[-1][1] < UNHEARD_PAUSE_SECONDS:
                stretches[-1][1] = end
            else:
                stretches.append([start, end])
        found = list(heard)
        for start, end in stretches:
            if end - start >= MIN_SPEECH_SECONDS and not any(u.start < end and u.end > start for u, _ in heard):
                found.append((Utterance(round(start, 3), round(end, 3), "", language=language), float("-inf")))
        return sorted(found, key=lambda pair: pair[0].start)

    def _read_in(self, guess: LanguageGuess, samples: np.ndarray, offset: float) -> list[tuple[Utterance, float]]:
        """`samples` read in the language `guess` tells, each utterance with the log-probability
        Whisper gave its segment; on Whisper's own times, before they move onto the speech."""
        model = self.multilingual() if guess.code not in (ENGLISH, None) else None
        if model is None:
            return [(replace(u, language=ENGLISH, language_probability=guess.probability), sure)
                    for u, sure in _read_segments(self.english, samples, offset, self.options, ENGLISH)]
        assert guess.code is not None
        heard = list(_read_segments(model, samples, offset, self.options, guess.code))
        if not heard:
            return []
        # one translating pass over the chunk, not one per utterance: each pass encodes whole
        # 30 s windows, and a chunk of short lines would pay for one window a line
        english = _transcribe_piece(model, samples, offset, replace(self.options, split_sentences=False), guess.code,
                                    task="translate")
        # matched on Whisper's own times, which both passes share, before they move onto the speech
        texts = assign_translations([u for u, _ in heard], list(english))
        return [(replace(u, language=guess.code, language_probability=guess.probability, text_en=text), sure)
                for (u, sure), text in zip(heard, texts, strict=True)]

    def _retold(self, heard: list[tuple[Utterance, float]], samples: np.ndarray,
                offset: float) -> list[tuple[Utterance, float]]:
        """`heard` with each line that Whisper read unsurely (UNSURE_LOGPROB), that repeats the line
        beside it, or that is empty (_with_unheard) told again on its own, and each run of lines
        told surely in another language than their chunk's read again in it.
        A chunk is told once, from its first 30 s of speech, so without this a line in another
        language among a minute of one is read as garbled text in that one."""
        model = self.multilingual()
        if model is None or not heard:
            return heard
        told: list[LanguageGuess | None] = []
        for k, (utterance, sure) in enumerate(heard):
            guess = None
            if sure < UNSURE_LOGPROB or _repeats(heard, k):
                first, last = _own_reach(heard, k, offset)
                guess = glance_language(model, speech_only(samples[first:last], self.options.vad_threshold))
            if guess is None or guess.code in (None, utterance.language) or (guess.probability or 0) < SWITCH_ABOVE:
                told.append(None)
                continue
            told.append(guess)
            self.told_lines.append((utterance.start, guess.code))
        while self.told_lines and self.told_lines[0][0] < heard[-1][0].end - SWITCH_WITHIN_SECONDS:
            self.told_lines.popleft()
        lines_in = Counter(code for _, code in self.told_lines)
        switched = [g if g is not None and lines_in[g.code] >= SWITCH_LINES else None for g in told]
        out: list[tuple[Utterance, float]] = []
        k = 0
        while k < len(heard):
            language = switched[k]
            if language is None:
                out.append(heard[k])
                k += 1
                continue
            run = k
            while run + 1 < len(heard) and (after := switched[run + 1]) is not None and after.code == language.code:
                run += 1
            first, last = _own_reach(heard, k, offset, run)
            probabilities = [g.probability or 0.0 for g in switched[k:run + 1] if g is not None]
            again = self._read_in(LanguageGuess(language.code, round(float(np.mean(probabilities)), 4)),
                                  samples[first:last], offset + first / SAMPLE_RATE)
            out.extend(again or heard[k:run + 1])  # nothing heard the second time: keep the first reading
            k = run + 1
        return out

    def glimpse(self, samples: np.ndarray, offset: float) -> str:
        """What speech not yet ended says so far, as a preview: read in the language already told
        (English until one is), with no telling and no translation, so it costs one decoding pass."""
        told = self.options.language if self.options.language != AUTO else (self.last.code if self.last else None)
        model = self.english if told in (ENGLISH, None) else self.multilingual()
        if model is None or told is None:
            model, told = self.english, ENGLISH
        return " ".join(u.text for u in _transcribe_piece(model, samples, offset, self.options, told)).strip()

    def language(self, samples: np.ndarray) -> LanguageGuess:
        code = self.options.language
        if code != AUTO:
            return LanguageGuess(code, None, given=True)
        model = self.multilingual()
        if model is None:
            return LanguageGuess(None, None, "the multilingual model is not installed")
        speech = speech_only(samples, self.options.vad_threshold)
        guess = detect_language(model, speech)
        if guess.code is None:
            if self.last is not None:
                return self.last
            if speech.size:  # no speech at all is noted where the analysis finds no utterances
                self.notes.append(f"language: {guess.reason}; read as English (set --language to choose)")
            return guess
        self.last = guess
        return guess

    def multilingual(self) -> WhisperModel | None:
        """Whisper base, loaded at the first chunk that needs it; None (noted once) where it is not
        installed here, and then every chunk is read as English."""
        if not hasattr(self, "_multilingual"):
            self._multilingual: WhisperModel | None = None
            try:
                self._multilingual = load_asr_model(replace(self.options, model=self.options.multilingual_model))
            except ModelNotFoundError as err:
                self.notes.append(f"language: not told, speech read as English ({err})")
        return self._multilingual


def _transcribe_piece(
    model: WhisperModel, samples: np.ndarray, offset: float, options: TranscribeOptions, language: str = ENGLISH,
    task: str = "transcribe",
) -> Iterator[Utterance]:
    return (utterance for utterance, _ in _read_segments(model, samples, offset, options, language, task))


def _read_segments(
    model: WhisperModel, samples: np.ndarray, offset: float, options: TranscribeOptions, language: str = ENGLISH,
    task: str = "transcribe",
) -> Iterator[tuple[Utterance, float]]:
    """Utterances, each with its Whisper segment's average log-probability per token."""
    multilingual = model.model.is_multilingual
    segments, _ = model.transcribe(
        samples,
        task=task,
        language=language if multilingual else "en",
        beam_size=options.beam_size,
        temperature=list(options.multilingual_temperatures) if multilingual else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        vad_filter=options.vad_filter,
        vad_parameters={"threshold": options.vad_threshold, "min_silence_duration_ms": options.vad_min_silence_ms,
                        "speech_pad_ms": options.vad_speech_pad_ms},
        no_speech_threshold=options.no_speech_threshold,
        log_prob_threshold=options.log_prob_threshold,
        initial_prompt=options.initial_prompt,
        condition_on_previous_text=False,
        word_timestamps=options.split_sentences,
    )
    for segment in segments:
        pieces = split_sentences(segment) if options.split_sentences else [
            (segment.start, segment.end, segment.text.strip())
        ]
        for start, end, text in pieces:
            if text:
                yield Utterance(start=offset + start, end=offset + end, text=text), segment.avg_logprob


# A line whose language may not be its chunk's is told again on its own (LanguageReader._retold):
# one that Whisper read unsurely, as it reads speech in a language it was not told. faster-whisper
# gives every segment its 30 s window's average token log-probability. On bench/language_id.py
# --mixed's kind of files (a throwaway count over 34 of them), windows under -0.6 held 93 of the
# 116 lines of files that mix languages, 10 of 153 in files of one language, none of them English;
# alone, tiny.en read 38 of 40 German and 39 of 40 Spanish lines under -0.7, and 1 of 40 English
# lines (RAVDESS actors 17-20) and 3 of the 11 MELD clips. A look costs about 0.1 s.
UNSURE_LOGPROB = -0.6
# A line is read again in another language where its own look tells it with at least SWITCH_ABOVE,
# and SWITCH_LINES lines within SWITCH_WITHIN_SECONDS were told in it: one short line's look is
# often wrong (Spanish film lines alone were told Greek or Catalan), a language really spoken is
# heard on more than one line. Chosen by a throwaway sweep (-0.7/-0.6/-0.5, 0.5/0.65/0.8, one or
# two lines) over 34 files built as bench/language_id.py --mixed builds them, from other draws:
# here no line of the one-language files changed, and 74 of the 116 lines of mixed files were read
# in their language, against 51 without telling lines again.
SWITCH_ABOVE = 0.65
SWITCH_LINES = 2
SWITCH_WITHIN_SECONDS = 90.0
# Either side of a line's Whisper times, for its own look and its second reading: Whisper's times
# drift by up to a second, but never into the lines beside it.
LINE_PAD_SECONDS = 0.4
# Speech that no line covers is told in stretches that pauses this long or longer end: about a line
# (bench/language_id.py --mixed puts 0.5-1.0 s between lines).
UNHEARD_PAUSE_SECONDS = 0.5


def _repeats(heard: Sequence[tuple[Utterance, float]], k: int) -> bool:
    """Whether line `k` says what a line beside it says: Whisper's loop on speech it cannot read,
    which it writes confidently (German lines read by tiny.en, in a throwaway run, came out as
    "I'm in the morning." six times, in a window whose log-probability was -0.47)."""
    def words(i: int) -> str:
        return " ".join(re.findall(r"\w+", heard[i][0].text.lower())) if 0 <= i < len(heard) else ""

    own = words(k)
    return bool(own) and own in (words(k - 1), words(k + 1))


def _own_reach(heard: Sequence[tuple[Utterance, float]], first: int, offset: float,
               last: int | None = None) -> tuple[int, int]:
    """The samples (from the chunk's first) of lines `first`..`last` with LINE_PAD_SECONDS either
    side, no further than the lines beside them."""
    last = first if last is None else last
    start = heard[first][0].start - LINE_PAD_SECONDS
    end = heard[last][0].end + LINE_PAD_SECONDS
    if first > 0:
        start = max(start, heard[first - 1][0].end)
    if last + 1 < len(heard):
        end = min(end, heard[last + 1][0].start)
    return max(int((start - offset) * SAMPLE_RATE), 0), max(int((end - offset) * SAMPLE_RATE), 0)


# Whisper's segment times drift, late more often than early: on the spoken dev dialogues 0.188 of
# the segments' starts and ends fall in the silence between two lines (bench/asr_settings.py).
# A boundary between two segments moves into a pause that Silero hears if one begins or ends within
# MAX_BOUNDARY_MOVE of it. No further: two people's lines at a cut, or a quick answer, have no pause
# between them, and there Whisper's own boundary is the best there is.
MAX_BOUNDARY_MOVE = 0.3


def snap_to_speech(heard: Sequence[Utterance], regions: Sequence[tuple[float, float]]) -> list[Utterance]:
    """`heard` (in time order) with the boundaries between them moved onto the pauses in
    `regions` (Silero's speech, split at short pauses, in the same seconds).

    Each boundary between two segments goes into a pause between regions, with every boundary
    in a pause of its own and the order kept: a small dynamic programme that makes the sum of the
    moves least, where a move is the distance from Whisper's boundary to the pause (none when it
    is already in it) and leaving a boundary where it is costs MAX_BOUNDARY_MOVE. A segment then
    ends where the speech before its pause ends and the next starts where the speech after it
    starts, exact to Silero's 32 ms. The first start and the last end stay Whisper's: the voice
    expert's head and fusion's reliabilities were measured on clips framed by them (a single
    line's segment spans its file's silence too), unless the segment would no longer hold any
    speech, when it takes the region beside its moved edge.
    """
    if not heard or not regions:
        return list(heard)
    pauses = [(end, start) for (_, end), (start, _) in itertools.pairwise(regions)]
    bounds = [(u.end + v.start) / 2 for u, v in itertools.pairwise(heard)]
    where = _place_bounds(bounds, pauses)  # pause j lies between regions j and j + 1
    out: list[Utterance] = []
    for k, utterance in enumerate(heard):
        moved_start = k > 0 and where[k - 1] is not None
        moved_end = k < len(bounds) and where[k] is not None
        start = pauses[where[k - 1]][1] if moved_start else utterance.start
        end = pauses[where[k]][0] if moved_end else utterance.end
        if out:  # a boundary left where Whisper put it may meet one that moved
            start = max(start, out[-1].end)
        if end <= start and moved_end and not moved_start:
            start = max(regions[where[k]][0], out[-1].end if out else 0.0)
        elif end <= start and moved_start and not moved_end:
            end = regions[where[k - 1] + 1][1]
        out.append(replace(utterance, start=round(start, 3), end=round(max(end, start), 3)))
    return out


def _place_bounds(bounds: Sequence[float], pauses: Sequence[tuple[float, float]]) -> list[int | None]:
    """For each boundary, in order, the pause it goes into (an index into `pauses`, increasing)
    or None (left alone); see snap_to_speech for the cost."""
    count = len(pauses)
    # cost[s]: least cost so far with the last pause used being s - 1 (s = 0: none used yet)
    cost = [0.0] + [float("inf")] * count
    steps: list[list[tuple[int, int | None]]] = []
    for bound in bounds:
        new = [c + MAX_BOUNDARY_MOVE for c in cost]
        back: list[tuple[int, int | None]] = [(s, None) for s in range(count + 1)]
        lowest, lowest_at = float("inf"), 0
        for j, (left, right) in enumerate(pauses):
            if cost[j] < lowest:
                lowest, lowest_at = cost[j], j
            # into the pause, and a hair more for its middle, so that of two pauses it is in
            # (never: they do not overlap) or equally near, the nearer middle wins
            move = max(left - bound, 0.0, bound - right) + 1e-3 * abs(bound - (left + right) / 2)
            if move < MAX_BOUNDARY_MOVE and lowest + move < new[j + 1]:
                new[j + 1], back[j + 1] = lowest + move, (lowest_at, j)
        cost = new
        steps.append(back)
    state = min(range(count + 1), key=cost.__getitem__)
    placed: list[int | None] = [None] * len(bounds)
    for k in reversed(range(len(bounds))):
        state, placed[k] = steps[k][state]
    return placed


def assign_translations(heard: list[Utterance], english: list[Utterance]) -> list[str]:
    """The English of each of `heard`: every translated segment goes to the utterance it overlaps
    most (the nearest where it overlaps none), in time order. Both passes read the same speech
    through the same voice activity detection, so their segments mostly line up; an utterance
    that no translated segment lands on gets "" (the text model then has nothing to read)."""
    parts: list[list[str]] = [[] for _ in heard]
    for segment in english:
        def closeness(u: Utterance, s: Utterance = segment) -> tuple[float, float]:
            overlap = min(u.end, s.end) - max(u.start, s.start)
            return overlap, -abs((u.start + u.end) / 2 - (s.start + s.end) / 2)

        best = max(range(len(heard)), key=lambda i: closeness(heard[i]))
        parts[best].append(segment.text)
    return [" ".join(p).strip() for p in parts]


CUT_SEARCH_SECONDS = 5.0


def quietest_point(samples: np.ndarray, search: int, window: int = SAMPLE_RATE // 10) -> int:
    """Centre of the quietest `window` among the last `search` samples: a safe place to cut."""
    tail = samples[-search:]
    count = tail.size // window
    if count < 2:
        return samples.size
    energy = np.square(tail[: count * window].reshape(count, window)).mean(axis=1)
    return samples.size - tail.size + int(energy.argmin()) * window + window // 2


_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*$")


def split_sentences(segment: Segment) -> list[tuple[float, float, str]]:
    """Cut a Whisper segment at sentence ends, timed by its words.

    Whisper often packs two spoken sentences into one segment; MELD's unit, and so the text
    model's, is roughly one sentence.
    """
    words = segment.words or []
    if not words:
        return [(segment.start, segment.end, segment.text.strip())]
    pieces, current = [], []
    for word in words:
        current.append(word)
        if _SENTENCE_END.search(word.word.strip()):
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    return [(p[0].start, p[-1].end, "".join(w.word for w in p).strip()) for p in pieces]
