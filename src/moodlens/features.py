"""Features shared by training and inference, so both see exactly the same inputs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np

CONTEXT_TURNS = 2
FACE_SIZE = 64
CLIP_FRAMES = 16  # r3d_18 clips: 16 frames of 112x112, as in Kinetics training
CLIP_SIZE = 112
MEL_BANDS = 64
MEL_HOP = 160  # 10 ms at 16 kHz
MEL_WINDOW = 400  # 25 ms
MEL_FRAMES = 300  # 3 s, about MELD's mean utterance; longer audio is cut, shorter is padded
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that decides what a multimodal model is fed, kept with its weights the way
    torchvision keeps `transforms` with its weights enum. The feature cache writes it into its
    index and the bundle into its config.json; a cache made with another spec is refused, so a
    model is trained, evaluated and used on the same inputs."""

    fps: float = 8.0  # frames sampled per second for the video clip
    frame_side: int = 256  # frames are decoded with this longer side, then cut to clip_size
    clip_frames: int = CLIP_FRAMES
    clip_size: int = CLIP_SIZE
    mel_bands: int = MEL_BANDS
    mel_frames: int = MEL_FRAMES
    mel_dtype: str = "float16"  # how the cache stores log-mels; inference rounds to it too
    text_encoder: str = "bert-base-uncased"  # the encoder actually used, after any fallback
    text_max_tokens: int = 128

    @property
    def audio_seconds(self) -> float:
        """How much of an utterance's audio its log-mel covers: more is never read."""
        return self.mel_frames * MEL_HOP / SAMPLE_RATE

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(self, other: FeatureSpec) -> list[str]:
        """`name: mine vs theirs` for every field that differs."""
        return [f"{f.name}: {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}" for f in fields(self)
                if getattr(self, f.name) != getattr(other, f.name)]


def mel_features(samples: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The log-mel a model with this spec sees: cut or padded to its frames, rounded to its
    stored dtype, as float32. The cache stores the rounded values, so both paths agree exactly."""
    return log_mel(samples, spec.mel_frames, spec.mel_bands).astype(spec.mel_dtype).astype(np.float32)


def text_with_context(history: Sequence[str], k: int = CONTEXT_TURNS) -> tuple[str, str]:
    """(target, context) for the last text in `history`; context is the k turns before it.

    Speaker names are left out on purpose: ASR output has none, and the model must see at
    inference what it saw in training.
    """
    if not history:
        raise ValueError("history is empty")
    target = history[-1]
    previous = [t for t in history[-1 - k : -1] if t] if k > 0 else []
    return target, " ".join(previous)


_REPEATED_MARKS = re.compile(r"([.?])[.?!]*")


def asr_shaped(text: str) -> str:
    """`text` punctuated as Whisper writes speech: no exclamation marks ("!" ends a sentence
    with "."; "?!" is "?"), no quotation marks, no repeated marks; ellipses kept, as Whisper keeps
    them for trailing speech. Training sees MELD's subtitles this way too (training/asr_text.py,
    FinetuneConfig.asr_shaped_share), so lines read from audio are judged as well as typed ones."""
    text = text.replace('"', "").replace("...", "\u2026").replace("!", ".")
    text = _REPEATED_MARKS.sub(lambda m: "?" if "?" in m.group(0) else m.group(1), text)
    text = text.replace("\u2026.", "...").replace("\u2026", "...").replace(".,", ",")
    return " ".join(text.split())


def face_tensor(crops: Sequence[np.ndarray]) -> np.ndarray:
    """Grey 64x64 crops scaled to [-1, 1], shaped (N, 1, 64, 64), as the FER2013 model expects."""
    batch = np.empty((len(crops), 1, FACE_SIZE, FACE_SIZE), dtype=np.float32)
    for i, crop in enumerate(crops):
        grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        resized = cv2.resize(grey, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
        batch[i, 0] = (resized.astype(np.float32) / 255.0 - 0.5) * 2.0
    return batch


def clip_tensor(frames: Sequence[np.ndarray], length: int = CLIP_FRAMES, size: int = CLIP_SIZE) -> np.ndarray:
    """`length` RGB frames spread evenly over `frames`, short side scaled to `size` and centre-cropped.

    uint8, shaped (length, size, size, 3): the feature cache stores it as is, and the video
    encoder normalises it. A clip with fewer frames repeats them rather than padding with black.
    """
    if not frames:
        raise ValueError("no frames")
    picks = np.linspace(0, len(frames) - 1, length).round().astype(int)
    out = np.empty((length, size, size, 3), dtype=np.uint8)
    for i, index in enumerate(picks):
        image = frames[index]
        h, w = image.shape[:2]
        scale = size / min(h, w)
        resized = cv2.resize(image, (max(size, round(w * scale)), max(size, round(h * scale))),
                             interpolation=cv2.INTER_AREA)
        top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
        out[i] = resized[top : top + size, left : left + size]
    return out


def _mel_filterbank(bands: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """Triangular filters evenly spaced on the HTK mel scale, shaped (bands, n_fft // 2 + 1)."""
    def mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    edges_mel = np.linspace(mel(np.array(0.0)), mel(np.array(sample_rate / 2)), bands + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def log_mel(samples: np.ndarray, frames: int | None = MEL_FRAMES, bands: int = MEL_BANDS) -> np.ndarray:
    """Log-mel spectrogram of 16 kHz mono audio, (bands, frames) float32, 25 ms windows every 10 ms.

    With `frames` set, the result is cut or padded (with silence's value) to exactly that many.
    """
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if samples.size < MEL_WINDOW:
        samples = np.pad(samples, (0, MEL_WINDOW - samples.size))
    count = 1 + (samples.size - MEL_WINDOW) // MEL_HOP
    windows = np.lib.stride_tricks.sliding_window_view(samples, MEL_WINDOW)[:: MEL_HOP][:count]
    power = np.abs(np.fft.rfft(windows * np.hanning(MEL_WINDOW).astype(np.float32), axis=1)) ** 2
    mel = np.log(_mel_filterbank(bands, MEL_WINDOW, SAMPLE_RATE) @ power.T + 1e-6).astype(np.float32)
    if frames is None:
        return mel
    if mel.shape[1] >= frames:
        return mel[:, :frames]
    return np.pad(mel, ((0, 0), (0, frames - mel.shape[1])), constant_values=np.log(1e-6))


def _active(spans: Sequence[tuple[float, float]], time: float) -> list[int]:
    return [i for i, (start, end) in enumerate(spans) if start <= time <= end]


def utterance_clips(frames: Iterable[tuple[float, np.ndarray]], spans: Sequence[tuple[float, float]],
                    length: int = CLIP_FRAMES, size: int = CLIP_SIZE) -> Iterator[tuple[int, np.ndarray]]:
    """(span index, clip) for each (start, end) span that has frames, yielded as soon as the span
    is over, in one pass over timed RGB frames. See clip_tensor for the clip.

    Frames are shrunk as they arrive and each span holds at most 4x `length` of them: when full,
    every other one is dropped and from then on only every other new frame is taken, so what is
    held stays evenly spaced over the whole span (a long utterance does not lean to its end). A
    caller that encodes each clip as it comes holds memory bounded by the spans open at once.
    """
    limit = 4 * length
    held: dict[int, list[np.ndarray]] = {}
    stride: dict[int, int] = {}
    seen: dict[int, int] = {}
    for time, image in frames:
        h, w = image.shape[:2]
        scale = size / min(h, w)
        small = None
        for i in _active(spans, time):
            seen[i] = seen.get(i, -1) + 1
            if seen[i] % stride.setdefault(i, 1):
                continue
            if small is None:
                small = cv2.resize(image, (max(size, round(w * scale)), max(size, round(h * scale))),
                                   interpolation=cv2.INTER_AREA)
            held.setdefault(i, []).append(small)
            if len(held[i]) >= limit:
                held[i] = held[i][::2]
                stride[i] *= 2
        for i in [i for i in held if spans[i][1] < time]:
            yield i, clip_tensor(held.pop(i), length, size)
    for i, images in held.items():
        yield i, clip_tensor(images, length, size)


def padded_spans(spans: Sequence[tuple[float, float]], pad: float) -> list[tuple[float, float]]:
    """Each (start, end) widened by up to `pad` seconds either side, never into its neighbours'
    spans (in time order) nor before 0."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    out = list(spans)
    for k, i in enumerate(order):
        before = spans[order[k - 1]][1] if k else 0.0
        after = spans[order[k + 1]][0] if k + 1 < len(order) else float("inf")
        start, end = spans[i]
        out[i] = (max(min(before, start), start - pad, 0.0), min(max(after, end), end + pad))
    return out


def utterance_audio(chunks: Iterable[tuple[float, np.ndarray]], spans: Sequence[tuple[float, float]],
                    seconds: float = MEL_FRAMES * MEL_HOP / SAMPLE_RATE) -> Iterator[tuple[int, np.ndarray]]:
    """(span index, samples) with the first `seconds` of 16 kHz audio inside each span that has
    any, from streamed (offset, samples) chunks, yielded as soon as the span has enough or is over.

    That is all the log-mel of a span uses, so at most `seconds` per open span is ever held.
    """
    need = int(seconds * SAMPLE_RATE)
    pieces: dict[int, list[np.ndarray]] = {}
    have: dict[int, int] = {}
    finished: set[int] = set()
    for offset, samples in chunks:
        chunk_end = offset + samples.size / SAMPLE_RATE
        for i, (start, end) in enumerate(spans):
            if i in finished or end < offset or start > chunk_end:
                continue
            first = max(0, round((start - offset) * SAMPLE_RATE))  # chunks are consecutive
            last = min(samples.size, round((end - offset) * SAMPLE_RATE), first + need - have.get(i, 0))
            if last > first:
                pieces.setdefault(i, []).append(samples[first:last].copy())
                have[i] = have.get(i, 0) + last - first
            if have.get(i, 0) >= need or end <= chunk_end:
                finished.add(i)
                if i in pieces:
                    yield i, np.concatenate(pieces.pop(i))
    for i, parts in pieces.items():
        yield i, np.concatenate(parts)


def utterance_features(path: str | Path, spans: Sequence[tuple[float, float]], spec: FeatureSpec, notes: list[str],
                       damage: object = None, video: bool = True, audio: bool = True
                       ) -> Iterator[tuple[str, int, np.ndarray]]:
    """("video", span index, uint8 clip) then ("audio", span index, float32 log-mel) for every span
    that has frames or sound, streamed from the file as `spec` says.

    The one path from media to a multimodal model's inputs: `prepare-meld` runs it over one span
    covering each clip, `analyze --model` over the utterances, so training and inference see the
    same features (tests/data/test_cache.py checks it on real clips).
    """
    from moodlens.media import iter_audio, sample_frames

    if video:
        frames = ((f.time, f.image) for f in sample_frames(path, spec.fps, spec.frame_side, notes, damage=damage))
        for i, clip in utterance_clips(frames, spans, spec.clip_frames, spec.clip_size):
            yield "video", i, clip
    if audio:
        for i, samples in utterance_audio(iter_audio(path, 60.0, notes, damage), spans, spec.audio_seconds):
            if samples.size:
                yield "audio", i, mel_features(samples, spec)
