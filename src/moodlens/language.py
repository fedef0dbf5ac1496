"""Language: which language is spoken, so that speech is read in it and not as garbled English.

English speech keeps the English-only Whisper (tiny.en), the fast path. Any other language that
Whisper knows is transcribed by multilingual Whisper base in that language, and each utterance is
also translated to English by the same model (Whisper's `translate` task), because the text
model was trained on English MELD lines: the original transcript is kept for the reader, the
English is what the text model reads (`Utterance.text_en`).

The language is told from the sound by Whisper base's language tokens, on the speech of each
stretch of audio that speech recognition reads at a time (`TranscribeOptions.chunk_seconds`), and
again on each line of it that Whisper read unsurely (asr.LanguageReader), so a video that changes
language is read in each language where it is spoken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from moodlens.media import SAMPLE_RATE

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

AUTO = "auto"
ENGLISH = "en"
# Multilingual Whisper base in CTranslate2 format, joined from two PyPI wheels into models_dir()
# (moodlens.models.install); online, faster-whisper's "base" is the same model.
MULTILINGUAL_MODEL = "whisper-base"
# Less voiced speech than this and Whisper's language guess is close to chance (a word or two).
MIN_SPEECH_SECONDS = 1.0
# Below this probability a language other than English is reported as unsure: speech in a
# language Whisper does not know comes out as some language it does, with a low probability.
UNSURE_BELOW = 0.5
# Whisper reads at most 30 s at once; the language is told from the first 30 s of speech.
WINDOW_SECONDS = 30.0


def whisper_languages() -> tuple[str, ...]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return tuple(_LANGUAGE_CODES)


def check_language(code: str) -> str:
    """`code` lower-cased when it is `auto` or a language Whisper knows, else a ValueError."""
    code = code.strip().lower()
    if code != AUTO and code not in whisper_languages():
        raise ValueError(f"language must be auto or a code Whisper knows (en, de, es, fr, ...), got {code!r}")
    return code


@dataclass(frozen=True)
class LanguageGuess:
    """A language told from speech: `code` None where it could not be told, and `reason` why."""

    code: str | None
    probability: float | None
    reason: str | None = None
    given: bool = False  # set by --language, not detected


def speech_only(samples: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The voiced part of 16 kHz `samples` (Silero VAD, as speech recognition uses it), joined."""
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    stamps = get_speech_timestamps(samples, VadOptions(threshold=threshold))
    if not stamps:
        return samples[:0]
    chunks, _ = collect_chunks(samples, stamps)
    return np.concatenate(chunks)


def detect_language(model: WhisperModel, speech: np.ndarray) -> LanguageGuess:
    """The language of `speech` (voiced 16 kHz samples) by Whisper's language tokens.

    English, the fast path, is accepted from a quick look: the first QUICK_SECONDS of speech
    with QUICK_PADDING_SECONDS of the window's padding, far less encoder time than a whole
    window. Anything else is read again over the whole 30 s window, as Whisper was trained, so a
    shortened window never decides that speech is not English.
    """
    if speech.size < MIN_SPEECH_SECONDS * SAMPLE_RATE:
        return LanguageGuess(None, None, f"too little speech to tell the language "
                                         f"({speech.size / SAMPLE_RATE:.1f} s, under {MIN_SPEECH_SECONDS:g} s)")
    code, probability = _language_token(model, speech[: int(QUICK_SECONDS * SAMPLE_RATE)], QUICK_PADDING_SECONDS)
    if code != ENGLISH:
        code, probability = _language_token(model, speech[: int(WINDOW_SECONDS * SAMPLE_RATE)], None)
    return LanguageGuess(code, round(probability, 4))


QUICK_SECONDS = 8.0
QUICK_PADDING_SECONDS = 2.0


def glance_language(model: WhisperModel, speech: np.ndarray) -> LanguageGuess:
    """The language of a short stretch of `speech` (voiced 16 kHz samples, one line or a few) from
    the quick look alone: on single real lines it was right about as often as the whole window, at
    a quarter of the encoder's time (a throwaway count over 40 EmoDB, 40 EmoFilm and 40 RAVDESS
    files and the 11 MELD clips: 116 right against 118; 0.09-0.11 s a look against 0.38 s)."""
    if speech.size < MIN_SPEECH_SECONDS * SAMPLE_RATE:
        return LanguageGuess(None, None, "too little speech to tell the language")
    code, probability = _language_token(model, speech[: int(QUICK_SECONDS * SAMPLE_RATE)], QUICK_PADDING_SECONDS)
    return LanguageGuess(code, round(probability, 4))


def _language_token(model: WhisperModel, speech: np.ndarray, padding_seconds: float | None) -> tuple[str, float]:
    """Whisper's likeliest language token for `speech`, over the whole window (None) or one cut
    `padding_seconds` after the speech."""
    from faster_whisper.audio import pad_or_trim

    features = pad_or_trim(model.feature_extractor(speech))
    if padding_seconds is not None:
        hop = model.feature_extractor.hop_length
        features = trim_padding(features, int(padding_seconds * SAMPLE_RATE) // hop)
    token, probability = model.model.detect_language(model.encode(features))[0][0]
    return token[2:-2], float(probability)


def file_language(spans: Iterable[tuple[float, str | None, float | None]]) -> LanguageGuess:
    """The language of a whole file from its utterances' (duration, language, probability): the
    one spoken longest, with its duration-weighted probability."""
    seconds: dict[str, float] = {}
    weighted: dict[str, float] = {}
    for duration, code, probability in spans:
        if code is None:
            continue
        seconds[code] = seconds.get(code, 0.0) + duration
        weighted[code] = weighted.get(code, 0.0) + duration * (probability if probability is not None else 1.0)
    if not seconds:
        return LanguageGuess(None, None, "no speech")
    code = max(seconds, key=seconds.__getitem__)
    return LanguageGuess(code, round(weighted[code] / seconds[code], 4) if seconds[code] > 0 else None)


# The commonest English function words: any English line of a few words holds some, and other
# languages written in Latin letters hardly any (a shared "a", "in" or "die" at most).
_ENGLISH_WORDS = frozenset(re.findall(r"\S+", (
    "the a an and or but if of to in on at for with from by as is are was were be been am do does did "
    "not no yes i you he she it we they me him her us them my your his its our their this that these those "
    "what who where when why how there here have has had will would can could should just so "
)))
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# Share of words that are English function words, below which text is taken as not English:
# tests/test_language.py checks that 10-line draws of MELD dev stay above it and 10-line draws of
# XED's seven other languages below it.
ENGLISH_SHARE = 0.25
MIN_WORDS = 20


def english_share(texts: Sequence[str]) -> tuple[float, int]:
    """(share of words that are English function words, word count) over `texts`."""
    words = [w.lower() for text in texts for w in _WORD.findall(text)]
    return (sum(w in _ENGLISH_WORDS for w in words) / len(words) if words else 0.0), len(words)


def looks_english(texts: Sequence[str]) -> bool | None:
    """Whether a transcript's lines are English; None when they hold too few words to tell."""
    share, count = english_share(texts)
    return None if count < MIN_WORDS else share >= ENGLISH_SHARE


# What each modality does with speech that is not English: `modalities.*.languages`.
MODALITY_LANGUAGES = {
    "text": ("trained on English MELD lines: speech in another language is transcribed in it and translated to "
             "English by Whisper base (translate task), and the text model reads that English (text_en); "
             "transcript files must be English"),
    "face": "does not depend on language",
    "voice": ("trained on English speech (RAVDESS actors): accuracy 0.72 on held-out RAVDESS actors, 0.27 on "
              "German (EmoDB) and 0.33 on Spanish (EmoFilm), measured by train-voice --eval-data"),
}


def transcript_language(texts: Sequence[str], language: str) -> LanguageGuess:
    """The language of a transcript's lines, which the text model can only read in English: a
    ValueError naming what would make them work where they are (or are said to be) another."""
    if language not in (AUTO, ENGLISH):
        raise ValueError(f"transcripts are read in English only, and --language {language} was given: drop the "
                         f"transcript to have the {language} speech transcribed and translated to English")
    english = looks_english(texts)
    if english is False:
        raise ValueError("transcript is not English (too few English words): transcripts are read in English only; "
                         "drop the transcript to have the speech transcribed and translated to English")
    if english is None and language == AUTO:
        return LanguageGuess(ENGLISH, None, "too few words to tell the transcript's language; read as English")
    return LanguageGuess(ENGLISH, None, given=language == ENGLISH)


def trim_padding(features: np.ndarray, padding: int) -> np.ndarray:
    """Mel `features` ([batch,] mels, frames) cut `padding` frames after their last frame of audio.

    faster-whisper's padding frames are exact zeros (`pad_or_trim`); a log-mel frame of real
    audio, even digital silence, is never zero in every band. The count is kept even because the
    encoder halves it.
    """
    audio = np.flatnonzero(np.any(features != 0, axis=tuple(range(features.ndim - 1))))
    length = (int(audio[-1]) + 1 if audio.size else 0) + padding
    length += length % 2
    return features if length >= features.shape[-1] else features[..., :length]
