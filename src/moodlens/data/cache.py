"""`moodlens prepare-meld`: decode every MELD clip once into a feature cache.

Format: one uncompressed `.npz` per clip (`video`: uint8 16x112x112x3, `mel`: float16 64x300),
plus a per-split `index.json` (labels, text, what each clip has, and every problem met) and
`text.npy` (the frozen text encoder's [CLS] vectors, one row per index entry). Why:
- one file per clip means parallel workers never share a writer, and a killed prepare resumes
  by skipping the clips already written (each is written to a temporary name, then renamed);
- training reads one small file per example and never touches a video decoder;
- uint8 frames and float16 mels keep a clip near 640 KB (about 8 GB for all of MELD).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from moodlens.data.meld import MeldClip, split_clips
from moodlens.errors import MoodlensError
from moodlens.features import FeatureSpec, utterance_features

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: the index records its FeatureSpec, and clips are made by inference's own functions
DEFAULT_SPEC = FeatureSpec()
MISMATCH_SECONDS = 1.5  # clip length vs its CSV timestamps; MELD has many small offsets


@dataclass(frozen=True)
class ClipEntry:
    clip: str
    dialogue_id: int
    utterance_id: int
    text: str
    emotion: int
    sentiment: int
    has_video: bool
    has_audio: bool
    notes: tuple[str, ...] = ()


def clip_features(path: Path, spec: FeatureSpec = DEFAULT_SPEC
                  ) -> tuple[np.ndarray | None, np.ndarray | None, list[str], float]:
    """(video clip or None, log-mel or None, notes, duration) for one file, made by the same
    streaming functions that `analyze --model` uses, over one span covering the whole clip.

    Raises MoodlensError if the file can't be read at all."""
    from moodlens.media import probe

    notes: list[str] = []
    info = probe(path)
    found: dict[str, np.ndarray] = {}
    for kind, _, features in utterance_features(path, [(0.0, info.duration)], spec, notes,
                                                video=info.has_video, audio=info.has_audio):
        found[kind] = features
    video = found.get("video")
    mel = found["audio"].astype(spec.mel_dtype) if "audio" in found else None  # exact: already rounded to it
    return video, mel, notes + ([] if info.has_audio else ["no audio stream"]), info.duration


def _prepare_one(clip: MeldClip, target: Path, spec: FeatureSpec) -> ClipEntry | str:
    """The entry for one clip, writing its features; or a one-line problem if it can't be read."""
    row = clip.row
    notes: list[str] = []
    if target.exists():  # written by an earlier, perhaps killed, run
        with np.load(target) as cached:
            has_video, has_audio = cached["video"].size > 0, cached["mel"].size > 0
            notes = [str(n) for n in cached["notes"]]
    else:
        try:
            video, mel, notes, duration = clip_features(clip.path, spec)
        except MoodlensError as err:
            return f"{row.clip_name}: unreadable, skipped ({err})"
        has_video, has_audio = video is not None, mel is not None
        if not has_video and not has_audio:
            return f"{row.clip_name}: neither video nor audio could be decoded, skipped"
        if row.start is not None and row.end is not None and abs(duration - (row.end - row.start)) > MISMATCH_SECONDS:
            notes.append(f"clip is {duration:.1f} s but its timestamps span {row.end - row.start:.1f} s")
        partial = target.with_suffix(".tmp.npz")
        np.savez(partial, video=video if has_video else np.zeros(0, np.uint8),
                 mel=mel if has_audio else np.zeros(0, spec.mel_dtype), notes=np.array(notes, dtype=str))
        os.replace(partial, target)
    return ClipEntry(row.clip_name, row.dialogue_id, row.utterance_id, row.text, row.emotion, row.sentiment,
                     has_video, has_audio, tuple(notes))


def prepare_split(root: str | Path, split: str, cache: str | Path, spec: FeatureSpec = DEFAULT_SPEC,
                  workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Features for every clip of a split under CACHE/SPLIT, as `spec` says; returns that folder.
    Resumable, but only with the same spec: a folder prepared with another is refused."""
    from moodlens.models.multimodal import FrozenTextBackbone

    folder = Path(cache) / split
    folder.mkdir(parents=True, exist_ok=True)
    _check_spec(folder, spec, compare_text=False)  # clips written by a run with another spec must not be reused
    (folder / "spec.json").write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    clips = split_clips(root, split)
    entries: list[ClipEntry] = []
    problems: list[str] = []
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_prepare_one, clip, folder / f"{clip.row.clip_name}.npz", spec) for clip in clips]
        for done, future in enumerate(futures, start=1):
            result = future.result()
            if isinstance(result, str):
                problems.append(result)
                log.warning("%s: %s", split, result)
            else:
                entries.append(result)
                for note in result.notes:
                    log.warning("%s: %s: %s", split, result.clip, note)
            if progress:
                progress(done, len(clips))
    backbone = FrozenTextBackbone(spec.text_encoder, spec.text_max_tokens)
    np.save(folder / "text.npy", backbone.embed([e.text for e in entries]))
    used = replace(spec, text_encoder=backbone.name)  # the encoder that really ran, after any fallback
    index = {"version": CACHE_VERSION, "split": split, "root": str(Path(root).resolve()),
             "feature_spec": used.to_dict(), "text_encoder": backbone.name, "text_dim": backbone.dim,
             "clips": [asdict(e) for e in entries], "problems": problems}
    (folder / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return folder


def read_index(folder: str | Path) -> dict:
    path = Path(folder) / "index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MoodlensError(f"{path}: no prepared split here; run `moodlens prepare-meld` first") from err
    if index.get("version") != CACHE_VERSION:
        raise MoodlensError(f"{path}: cache version {index.get('version')}, expected {CACHE_VERSION}; "
                            "prepare it again")
    return index


def _check_spec(folder: Path, spec: FeatureSpec, compare_text: bool = True) -> None:
    """Refuse a folder whose clips were made with another spec (the text encoder is compared
    only where asked: a requested encoder may fall back to another, which the index records)."""
    path = folder / "spec.json"
    if not path.exists():
        return
    made = FeatureSpec.from_dict(json.loads(path.read_text(encoding="utf-8")))
    if not compare_text:
        made = replace(made, text_encoder=spec.text_encoder)
    differences = made.differences(spec)
    if differences:
        raise MoodlensError(f"{folder}: prepared with other features ({'; '.join(differences)}); "
                            "use another --cache folder, or delete this one")


def check_cache_spec(index: dict, spec: FeatureSpec, folder: str | Path) -> None:
    """A model may read a cache only if the cache was made with the model's own FeatureSpec."""
    differences = FeatureSpec.from_dict(index.get("feature_spec", {})).differences(spec)
    if differences:
        raise MoodlensError(f"{folder}: this cache's features differ from the model's ({'; '.join(differences)}); "
                            "prepare it again with the model's settings")
