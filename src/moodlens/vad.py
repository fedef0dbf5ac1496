"""Speech spans of a stream as it arrives: Silero VAD (the model faster-whisper ships), run 32 ms
at a time with its state carried, and a hysteresis that closes a span after a pause.

A span closes MIN_SILENCE_SECONDS after its last speech, so that wait is the floor of a live
utterance's latency; it is longer than the pause that joins two speech-recognition segments into
one turn (turns.TURN_GAP_SECONDS), so a live span is a turn, not a fragment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from moodlens.media import SAMPLE_RATE

FRAME = 512  # samples per Silero step (32 ms at 16 kHz)
CONTEXT = 64  # samples of the previous step it reads with each one
MIN_SILENCE_SECONDS = 0.4
EARLY_SILENCE_SECONDS = 0.2  # a span is offered, not final, once its pause is this long
MIN_SPEECH_SECONDS = 0.25  # a click or a breath is not an utterance
MAX_SPEECH_SECONDS = 20.0  # a monologue is still cut, at its quietest step, into lines this long at most
THRESHOLD = 0.5
RELEASE = 0.15  # speech goes on until the probability falls this far below THRESHOLD (Silero's own rule)
# A pause inside a span at least this long is where a second voice may take over (people answer
# as quickly as 0.1-0.2 s; the live session asks the voices, LiveSession._by_voice). Shorter dips
# are inside words.
MIN_PAUSE_SECONDS = 0.09


@dataclass(frozen=True)
class SpeechSpan:
    """Speech from sample `start` to sample `end` of the stream (16 kHz, counted from its first sample)."""

    start: int
    end: int
    # False: the pause has only begun (EARLY_SILENCE_SECONDS); the span closes as it stands unless
    # speech comes back, and judging it now saves that much of the wait
    final: bool = True
    # (first, last) samples of each pause inside the span of at least MIN_PAUSE_SECONDS, in order
    pauses: tuple[tuple[int, int], ...] = ()

    def same(self, other: SpeechSpan) -> bool:
        return (self.start, self.end) == (other.start, other.end)

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def speech_regions(samples: np.ndarray, threshold: float = THRESHOLD,
                   min_silence_ms: int = 100) -> list[tuple[float, float]]:
    """Where 16 kHz `samples` hold speech, in seconds from their start, split at every pause of
    `min_silence_ms` or more: Silero's edges, with no padding (faster-whisper runs it batched)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(samples, VadOptions(threshold=threshold, min_silence_duration_ms=min_silence_ms,
                                                       speech_pad_ms=0))
    return [(stamp["start"] / SAMPLE_RATE, stamp["end"] / SAMPLE_RATE) for stamp in stamps]


@lru_cache(maxsize=1)
def _silero_path() -> str:
    import faster_whisper

    return os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")


def _session() -> object:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1  # 32 ms steps: threads cost more than they give
    options.log_severity_level = 4
    return onnxruntime.InferenceSession(_silero_path(), sess_options=options, providers=["CPUExecutionProvider"])


class SpeechGate:
    """Feed audio with `push`; each call returns the spans that closed in it, and those offered
    early (`final` False). `flush` closes the one still open when the stream ends. Holds one step
    of audio and one span's probabilities."""

    def __init__(self, min_silence: float = MIN_SILENCE_SECONDS, min_speech: float = MIN_SPEECH_SECONDS,
                 max_speech: float = MAX_SPEECH_SECONDS, threshold: float = THRESHOLD,
                 early_silence: float | None = EARLY_SILENCE_SECONDS) -> None:
        self.session = _session()
        self.silence_steps = max(1, round(min_silence * SAMPLE_RATE / FRAME))
        # no early offer where it would come with the final one
        early = round(early_silence * SAMPLE_RATE / FRAME) if early_silence else 0
        self.early_steps = early if 0 < early < self.silence_steps else None
        self.min_speech = int(min_speech * SAMPLE_RATE)
        self.pause_steps = max(1, round(MIN_PAUSE_SECONDS * SAMPLE_RATE / FRAME))
        self.max_steps = max(2, int(max_speech * SAMPLE_RATE / FRAME))
        self.threshold = threshold
        self.state = (np.zeros((1, 1, 128), np.float32), np.zeros((1, 1, 128), np.float32))
        self.context = np.zeros(CONTEXT, np.float32)
        self.pending = np.zeros(0, np.float32)
        self.steps = 0  # steps read so far
        self.start: int | None = None  # step where the open span began
        self.last_speech = 0  # the step after the open span's last speech
        self.probabilities: list[float] = []  # of the open span's steps, for cutting a long one

    def push(self, samples: np.ndarray) -> list[SpeechSpan]:
        audio = np.concatenate([self.pending, np.asarray(samples, np.float32)])
        whole = audio.size // FRAME * FRAME
        self.pending = audio[whole:]
        if not whole:
            return []
        steps = audio[:whole].reshape(-1, FRAME)
        contexts = np.concatenate([self.context[None], steps[:-1, -CONTEXT:]])
        self.context = steps[-1, -CONTEXT:].copy()
        batch = np.concatenate([contexts, steps], axis=1)
        probabilities, h, c = self.session.run(None, {"input": batch, "h": self.state[0], "c": self.state[1]})
        self.state = (h, c)
        closed = []
        for p in np.asarray(probabilities).reshape(-1):
            closed.extend(self._step(float(p)))
        return closed

    def open_speech(self) -> SpeechSpan | None:
        """The speech of the span still open, from its start to its last speech so far (not
        final); None when no span is open."""
        if self.start is None:
            return None
        return SpeechSpan(self.start * FRAME, self.last_speech * FRAME, final=False)

    def flush(self) -> list[SpeechSpan]:
        """The open span, closed at its last speech (the stream ended)."""
        if self.start is None:
            return []
        span = self._close(self.last_speech)
        return [span] if span else []

    def _step(self, p: float) -> list[SpeechSpan]:
        step = self.steps
        self.steps += 1
        if self.start is None:
            if p >= self.threshold:
                self.start, self.last_speech, self.probabilities = step, step + 1, [p]
            return []
        self.probabilities.append(p)
        if p >= self.threshold - RELEASE:
            self.last_speech = step + 1
        if self.steps - self.last_speech >= self.silence_steps:
            span = self._close(self.last_speech)
            return [span] if span else []
        pause, heard = self.steps - self.last_speech, (self.last_speech - self.start) * FRAME
        if pause == self.early_steps and heard >= self.min_speech:
            return [SpeechSpan(self.start * FRAME, self.last_speech * FRAME, final=False,
                               pauses=self._pauses(self.last_speech))]
        if self.steps - self.start >= self.max_steps:
            return self._cut()
        return []

    def _cut(self) -> list[SpeechSpan]:
        """Close a span grown too long at its least speech-like step in the last third, and go on
        with the rest as a new span."""
        assert self.start is not None
        third = len(self.probabilities) // 3
        quietest = third * 2 + int(np.argmin(self.probabilities[third * 2:]))
        cut, rest = self.start + quietest, self.probabilities[quietest:]
        span = self._close(cut)
        self.start, self.last_speech, self.probabilities = cut, self.steps, rest
        return [span] if span else []

    def _close(self, end_step: int) -> SpeechSpan | None:
        assert self.start is not None
        start, end = self.start * FRAME, end_step * FRAME
        pauses = self._pauses(end_step)
        self.start, self.probabilities = None, []
        return SpeechSpan(start, end, pauses=pauses) if end - start >= self.min_speech else None

    def _pauses(self, end_step: int) -> tuple[tuple[int, int], ...]:
        """The open span's pauses of at least pause_steps before `end_step`, in samples."""
        assert self.start is not None
        quiet = np.asarray(self.probabilities[: end_step - self.start]) < self.threshold - RELEASE
        edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
        return tuple((int(self.start + a) * FRAME, int(self.start + b) * FRAME)
                     for a, b in zip(edges[::2], edges[1::2], strict=True)
                     if b - a >= self.pause_steps and a > 0 and b < end_step - self.start)
