"""`moodlens train-voice`: a voice head on labelled emotional speech, speaker-independent.

    labelled clips -> Whisper encoder states (packed 30 s windows) -> mean+std -> softmax regression

The regularisation is chosen on held-out speakers (never on the speakers it trains on), then
the head is refitted on every speaker with that choice. Labels come from file names (RAVDESS,
CREMA-D, TESS, EmoDB), MELD.Raw's CSVs, or a CSV of `path,emotion[,speaker]`.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from moodlens.labels import EMOTIONS
from moodlens.media import MEDIA_SUFFIXES, read_audio
from moodlens.models.voice import MIN_WINDOW_SECONDS, VoiceHead, VoiceHeadConfig, WhisperStates, center

log = logging.getLogger(__name__)

# RAVDESS's "calm" is read as neutral: both are low-arousal, non-valenced speech, and MELD has
# no calm class. EmoDB's boredom has no MELD class and is dropped. TESS's "ps" is pleasant surprise.
RAVDESS = {"01": "neutral", "02": "neutral", "03": "joy", "04": "sadness", "05": "anger", "06": "fear",
           "07": "disgust", "08": "surprise"}
EMODB = {"W": "anger", "E": "disgust", "A": "fear", "F": "joy", "N": "neutral", "T": "sadness"}
CREMA_D = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "joy", "NEU": "neutral", "SAD": "sadness"}
TESS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "joy", "neutral": "neutral",
        "ps": "surprise", "sad": "sadness"}
# EmoFilm (Italian names: ansia, disgusto, gioia, rabbia, tristezza) has no neutral or surprise.
EMOFILM = {"ans": "fear", "dis": "disgust", "gio": "joy", "rab": "anger", "tri": "sadness"}
LAYOUTS = ("ravdess", "emodb", "crema-d", "tess", "emofilm", "meld", "csv")


class VoiceDataError(ValueError):
    """A --data folder that holds no labelled clips of the given layout."""


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    emotion: str
    speaker: str


def _from_name(path: Path, layout: str) -> LabelledClip | None:
    stem = path.stem
    try:
        if layout == "ravdess":  # 03-01-EE-II-SS-RR-AA
            parts = stem.split("-")
            return LabelledClip(path, RAVDESS[parts[2]], f"actor{int(parts[6]):02d}")
        if layout == "emodb":  # SSTTTEV
            return LabelledClip(path, EMODB[stem[5]], f"speaker{stem[:2]}") if stem[5] in EMODB else None
        if layout == "crema-d":  # 1001_DFA_ANG_XX
            parts = stem.split("_")
            return LabelledClip(path, CREMA_D[parts[2]], parts[0])
        if layout == "tess":  # OAF_back_angry
            parts = stem.split("_")
            return LabelledClip(path, TESS[parts[-1].lower()], parts[0])
        if layout == "emofilm":  # f_ans001aes: gender, emotion, clip, take, language
            gender, rest = stem.split("_", 1)
            # film clips name no actor: the speaker groups (for centring) are the two genders
            return LabelledClip(path, EMOFILM[rest[:3]], f"{gender}-{rest[-2:]}") if gender in ("f", "m") else None
    except (KeyError, IndexError, ValueError):
        return None
    raise ValueError(f"unknown layout {layout!r}")


def find_clips(data: Path, layout: str) -> list[LabelledClip]:
    """Every labelled clip under `data` for the layout; unlabelled files are skipped, and counted."""
    if layout not in LAYOUTS:
        raise VoiceDataError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    if layout == "meld":
        from moodlens.data.meld import MeldFormatError, split_clips

        found: dict[Path, LabelledClip] = {}  # a flat folder's one CSV answers for every split
        for split in ("train", "dev"):
            try:
                rows = split_clips(data, split)
            except MeldFormatError:
                continue
            for c in rows:
                found.setdefault(c.path, LabelledClip(c.path, EMOTIONS[c.row.emotion], c.row.speaker or "?"))
        clips = list(found.values())
    elif layout == "csv":
        table = data if data.is_file() else data / "labels.csv"
        with table.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        clips = [LabelledClip((table.parent / r["path"]), r["emotion"].strip().lower(), r.get("speaker") or "?")
                 for r in rows if r.get("emotion", "").strip().lower() in EMOTIONS]
    else:
        files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
        found = [_from_name(p, layout) for p in files]
        clips = [c for c in found if c is not None]
        if len(clips) < len(files):
            log.warning("%s: %d of %d files have no %s label in their name; skipped", data,
                        len(files) - len(clips), len(files), layout)
    if not clips:
        raise VoiceDataError(f"{data}: no labelled clips for layout {layout!r}")
    return clips


def clip_features(clips: Sequence[LabelledClip], encoder: WhisperStates,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(N, dim) pooled encoder states, in the clips' order."""
    out: list[np.ndarray | None] = [None] * len(clips)

    def audio() -> object:
        for i, clip in enumerate(clips):
            yield i, read_audio(clip.path)

    for done, (i, feature) in enumerate(encoder.pooled(audio()), start=1):
        out[i] = feature
        if progress:
            progress(done, len(clips))
    return np.stack(out)


def fit_softmax(features: np.ndarray, labels: np.ndarray, classes: int, l2: float) -> tuple[np.ndarray, ...]:
    """Class-balanced softmax regression with an L2 penalty, full batch (L-BFGS): the features
    are already standardised. Returns (weight, bias)."""
    torch.manual_seed(0)
    x = torch.from_numpy(features).double()
    y = torch.from_numpy(labels).long()
    counts = torch.bincount(y, minlength=classes).double().clamp(min=1)
    class_weight = counts.sum() / (classes * counts)
    weight = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y, weight=class_weight)
        loss = loss + l2 * weight.pow(2).sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().numpy(), bias.detach().numpy()


@dataclass(frozen=True)
class VoiceTrainingResult:
    head: VoiceHead
    heldout_speakers: list[str]
    heldout_accuracy: float
    heldout_balanced_accuracy: float
    heldout_confusion: list[list[int]]
    chosen_l2: float
    seconds: float


def _balanced(labels: np.ndarray, predicted: np.ndarray) -> float:
    recalls = [float((predicted[labels == c] == c).mean()) for c in np.unique(labels)]
    return float(np.mean(recalls))


def train_head(features: np.ndarray, clips: Sequence[LabelledClip], heldout: Sequence[str],
               encoder: str = "tiny.en", l2_grid: Sequence[float] = (1e-3, 1e-2, 1e-1),
               min_window_seconds: float = MIN_WINDOW_SECONDS) -> VoiceTrainingResult:
    """Choose the L2 penalty on the held-out speakers, then refit on all speakers."""
    started = time.monotonic()
    classes = tuple(e for e in EMOTIONS if any(c.emotion == e for c in clips))
    labels = np.array([classes.index(c.emotion) for c in clips])
    test = np.array([c.speaker in set(heldout) for c in clips])
    if not test.any() or test.all():
        raise VoiceDataError(f"held-out speakers {list(heldout)} leave no clips to train on or to test")

    config = VoiceHeadConfig(encoder=encoder, dim=features.shape[1], classes=classes,
                             min_window_seconds=min_window_seconds)  # how `features` were encoded
    speakers = np.array([c.speaker for c in clips])

    def fit(rows: np.ndarray, l2: float) -> VoiceHead:
        reference = features[rows].mean(0)
        centred = by_speaker(features[rows], speakers[rows], reference, config.shrink)
        mean, scale = centred.mean(0), centred.std(0) + 1e-6
        weight, bias = fit_softmax((centred - mean) / scale, labels[rows], len(classes), l2)
        return VoiceHead(config, reference, mean, scale, weight, bias)

    def predict(head: VoiceHead, rows: np.ndarray) -> np.ndarray:
        out = np.zeros(rows.sum(), dtype=int)
        picked = np.flatnonzero(rows)
        for speaker in np.unique(speakers[rows]):  # each speaker is centred on their own
            mine = speakers[picked] == speaker
            out[mine] = head.logits(features[picked[mine]]).argmax(1)
        return out

    best: tuple[float, float, np.ndarray, float] | None = None
    for l2 in l2_grid:
        predicted = predict(fit(~test, l2), test)
        score = _balanced(labels[test], predicted)
        if best is None or score > best[0]:
            best = (score, float((predicted == labels[test]).mean()), predicted, l2)
    score, accuracy, predicted, l2 = best
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    for truth, guess in zip(labels[test], predicted, strict=True):
        confusion[truth, guess] += 1
    head = fit(np.ones(len(clips), dtype=bool), l2)
    return VoiceTrainingResult(head, sorted(set(heldout)), accuracy, score, confusion.tolist(), l2,
                               time.monotonic() - started)


def by_speaker(features: np.ndarray, speakers: np.ndarray, reference: np.ndarray, shrink: float) -> np.ndarray:
    out = np.empty_like(features)
    for speaker in np.unique(speakers):
        mine = speakers == speaker
        out[mine] = center(features[mine], reference, shrink)
    return out


def default_heldout(clips: Sequence[LabelledClip], share: float = 0.2) -> list[str]:
    """The last `share` of speakers in sorted order (RAVDESS: actors 17-20 of 1-20)."""
    speakers = sorted({c.speaker for c in clips})
    count = max(1, round(len(speakers) * share))
    return speakers[-count:]


def evaluate_head(head: VoiceHead, features: np.ndarray, clips: Sequence[LabelledClip]) -> dict[str, object]:
    """Accuracy on the classes the head and the data share (cross-corpus), with chance and the
    confusion matrix over those classes."""
    shared = [e for e in head.config.classes if any(c.emotion == e for c in clips)]
    rows = np.array([i for i, c in enumerate(clips) if c.emotion in shared])
    columns = [head.config.classes.index(e) for e in shared]
    speakers = np.array([clips[i].speaker for i in rows])
    predicted = np.zeros(len(rows), dtype=int)
    for speaker in np.unique(speakers):  # one speaker's clips are centred together, like one file's
        mine = speakers == speaker
        predicted[mine] = head.predict(features[rows[mine]])[:, columns].argmax(1)
    truth = np.array([shared.index(clips[i].emotion) for i in rows])
    confusion = np.zeros((len(shared), len(shared)), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    return {"classes": shared, "n": len(rows), "accuracy": round(float((predicted == truth).mean()), 4),
            "balanced_accuracy": round(_balanced(truth, predicted), 4), "chance": round(1 / len(shared), 4),
            "confusion": confusion.tolist()}


def fit_voice_head(data: Path, layout: str, heldout: str | None, evals: Sequence[tuple[Path, str]],
                   min_window_seconds: float = 0.0, progress: Callable[[int, int], None] | None = None
                   ) -> tuple[list[LabelledClip], VoiceTrainingResult, dict]:
    """`moodlens train-voice`: encode the clips, select on held-out speakers, refit on all, and
    score on the other corpora; returns the clips, the result and its report."""
    from moodlens.asr import TranscribeOptions, load_asr_model

    clips = find_clips(data, layout)
    held = [h.strip() for h in heldout.split(",")] if heldout else default_heldout(clips)
    encoder = WhisperStates(load_asr_model(TranscribeOptions(model="tiny.en")), min_window_seconds)
    features = clip_features(clips, encoder, progress)
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
