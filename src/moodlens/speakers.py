"""Speakers: who said each utterance, from how they sound and which face was talking.

Evidence, strongest first:
- a transcript's speaker names, which always win;
- the talking face track (tracks.py): utterances that read the same track were said by the same
  person, so they are merged first (unless their voices clearly disagree) and their voices
  pooled into one longer, steadier embedding;
- CAM++ voice embeddings (models/speaker.py), clustered by average linkage on cosine distance,
  with the number of speakers found by a distance threshold or forced (`--speakers N`).

A new speaker needs real evidence: a cluster with less than MIN_SPEAKER_SECONDS of voice in all
and no talking face track of its own (a "No." whose short embedding landed apart) joins the
nearest speaker by voice. An utterance too short for a voice embedding and with no talking face
takes the speaker of its neighbours where both sides agree, else `unknown`, and says why, rather
than a guess.
Without audio, each face track is a speaker, marked as such.
Speakers are named S1, S2, ... in order of first appearance.

The threshold and its accuracy are measured by bench/speakers.py on videos joined from MELD clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import linkage

from moodlens.features import padded_spans, utterance_audio
from moodlens.media import SAMPLE_RATE, AudioSpool, iter_audio
from moodlens.models.speaker import SpeakerEncoder
from moodlens.utterances import Utterance

# Cosine distance below which average linkage still merges two groups, read off bench/speakers.py's
# two tables (docs/speakers.md): the joined TV clips want it high, clean acted conversations low
# (at 0.75 nearly half of them were heard as too few people). Lower than this, one person's
# strongly acted emotions start to split into two speakers.
DISTANCE_THRESHOLD = 0.7
# Under half a second (a syllable or two) a voice embedding is a guess: a chosen floor, not a
# measured one; such an utterance is "unknown" unless its talking face says who it was.
MIN_VOICE_SECONDS = 0.5
MAX_VOICE_SECONDS = 10.0  # an embedding never reads more of an utterance than this
# A speaker heard for less than this in all, with no talking face of their own, is not believed
# to be a new person. Read off bench/speakers.py: a higher floor also absorbs real people whose
# only line is short.
MIN_SPEAKER_SECONDS = 1.0
# ASR word times cut tight ("Spitter." 0.3 s); the voice is read this much either side, never
# into the neighbouring utterances.
PAD_SECONDS = 0.25
UNKNOWN = "unknown"


@dataclass(frozen=True)
class SpeakerEvidence:
    """What diarization has to go on, per utterance."""

    embeddings: dict[int, np.ndarray] = field(default_factory=dict)  # unit CAM++ vectors
    voiced_seconds: dict[int, float] = field(default_factory=dict)  # audio each utterance had
    tracks: list[str | None] = field(default_factory=list)  # the talking face track
    has_audio: bool = True  # False: no audio stream, or no speaker model to embed it with


@dataclass(frozen=True)
class Diarization:
    labels: list[str | None]  # per utterance: a name, S<n>, "unknown", or None (not diarized)
    details: list[dict[str, Any]]
    method: str  # what the speakers rest on, for the Analysis's settings


def _groups(indices: Sequence[int], tracks: Sequence[str | None], embeddings: dict[int, np.ndarray],
            threshold: float) -> list[list[int]]:
    """Utterances that read the same talking face form one group, unless their voices disagree
    (the talking face was misread: a listener who smiled): a voice further than the threshold
    from the group's pooled voice starts a group of its own. The rest stand alone."""
    groups: list[list[int]] = []
    by_track: dict[str, list[list[int]]] = {}
    for i in indices:
        if tracks[i] is None:
            groups.append([i])
            continue
        candidates = by_track.setdefault(tracks[i], [])
        for group in candidates:
            pooled = pooled_voice(group, embeddings)
            if i not in embeddings or pooled is None or 1.0 - float(pooled @ embeddings[i]) <= threshold:
                group.append(i)
                break
        else:
            candidates.append([i])
    return groups + [g for track in by_track.values() for g in track]


def pooled_voice(group: Sequence[int], embeddings: dict[int, np.ndarray]) -> np.ndarray | None:
    """One steadier voice for utterances (or stretches) known to be one person's: the sum of
    their unit embeddings, made unit; None where none was embedded."""
    heard = [embeddings[i] for i in group if i in embeddings]
    return _unit(sum(heard)) if heard else None


def cluster(vectors: np.ndarray, count: int | None = None,
            threshold: float = DISTANCE_THRESHOLD) -> np.ndarray:
    """Cluster ids for unit vectors: exactly `count` clusters, or as many as the threshold gives.

    Average linkage on cosine distance, cut as scikit-learn's AgglomerativeClustering cuts it
    (which builds the same scipy tree), without importing scikit-learn: that took about a second
    of the first video's analysis in every process."""
    if len(vectors) == 0:
        return np.zeros(0, int)
    if len(vectors) == 1 or count == 1:
        return np.zeros(len(vectors), int)
    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    tree = linkage(distances[np.triu_indices(len(vectors), k=1)], method="average")
    if count is not None:
        merges = len(vectors) - min(count, len(vectors))
    else:  # average linkage's merge heights never fall, so the merges under it come first
        merges = int(np.count_nonzero(tree[:, 2] < threshold))
    return _cut(tree, len(vectors), merges)


def _cut(tree: np.ndarray, leaves: int, merges: int) -> np.ndarray:
    """Cluster ids of the leaves after the tree's first `merges` merges."""
    owner = np.arange(leaves + merges)
    for row in reversed(range(merges)):  # a merge's children are older nodes: parents come first
        owner[tree[row, :2].astype(int)] = owner[leaves + row]
    return np.unique(owner[:leaves], return_inverse=True)[1]


def diarize(utterances: Sequence[Utterance], evidence: SpeakerEvidence, count: int | None = None,
            threshold: float = DISTANCE_THRESHOLD) -> Diarization:
    n = len(utterances)
    labels: list[str | None] = [u.speaker for u in utterances]
    details: list[dict[str, Any]] = [{"by": "transcript"} if u.speaker else {} for u in utterances]
    todo = [i for i in range(n) if not utterances[i].speaker]
    if not todo:
        return Diarization(labels, details, "transcript" if n else "none")
    tracks = evidence.tracks or [None] * n
    if len(todo) == 1 and evidence.has_audio and evidence.voiced_seconds.get(todo[0], 0.0) >= MIN_VOICE_SECONDS:
        # one voice to name and none to tell it from: no embedding needed (most short clips)
        (i,) = todo
        labels[i] = "S1"
        details[i] = {"by": "only utterance to name"} | ({"face_track": tracks[i]} if tracks[i] else {})
        return Diarization(labels, details, "single utterance (nothing to tell apart)")

    cluster_of: dict[int, int] = {}
    if evidence.has_audio:
        groups = _groups(todo, tracks, evidence.embeddings, threshold)
        heard = [g for g in groups if any(i in evidence.embeddings for i in g)]
        if heard:
            pooled = np.stack([pooled_voice(g, evidence.embeddings) for g in heard])
            found = cluster(pooled, count, threshold)
            if count is None:  # a forced count is the user's to make
                found = absorb_thin(found, pooled, [sum(evidence.voiced_seconds.get(i, 0.0) for i in g) for g in heard],
                                  [{tracks[i] for i in g if tracks[i]} for g in heard])
            for group, c in zip(heard, found, strict=True):
                for i in group:
                    cluster_of[i] = int(c)
        used_faces = any(tracks[i] is not None for i in todo)
        method = "voice (CAM++) + talking-face tracks" if used_faces else "voice (CAM++)"
    else:
        ids: dict[str, int] = {}
        for i in todo:
            if tracks[i] is not None:
                cluster_of[i] = ids.setdefault(tracks[i], len(ids))
        method = "face tracks only (no voice to embed): one speaker per face track, not linked across cuts"

    # S1, S2, ... by first appearance
    names: dict[int, str] = {}
    for i in sorted(cluster_of, key=lambda i: (utterances[i].start, i)):
        names.setdefault(cluster_of[i], f"S{len(names) + 1}")
    order = sorted(todo, key=lambda i: (utterances[i].start, i))
    between = {}  # too short to hear and no face of its own, between two lines of one speaker
    for k, i in enumerate(order[1:-1], start=1):
        before, after = cluster_of.get(order[k - 1]), cluster_of.get(order[k + 1])
        if i not in cluster_of and evidence.has_audio and not tracks[i] and before is not None and before == after:
            between[i] = before
    for i in todo:
        if i in between:
            labels[i], details[i] = names[between[i]], {"by": "neighbours"}
        elif i in cluster_of:
            labels[i] = names[cluster_of[i]]
            by = [name for name, used in (("voice", i in evidence.embeddings), ("face track", tracks[i])) if used]
            details[i] = {"by": "+".join(by)}
            if tracks[i]:
                details[i]["face_track"] = tracks[i]
        else:
            labels[i] = UNKNOWN
            details[i] = {"reason": _why_unknown(i, evidence, tracks[i])}
    return Diarization(labels, details, method)


def voice_labels(utterances: Sequence[Utterance], evidence: SpeakerEvidence) -> list[str | None]:
    """Whom each utterance sounds like, by its voice alone (S<n>, clustered as `diarize` does);
    None where the voice cannot say (too short, no audio, named by a transcript, or only one
    utterance to name). What turns.group_turns reads as a change of speaker."""
    if not evidence.embeddings:
        return [None] * len(utterances)
    found = diarize(utterances, replace(evidence, tracks=[None] * len(utterances)))
    return [label if detail.get("by") == "voice" else None for label, detail in zip(found.labels, found.details,
                                                                                       strict=True)]


def absorb_thin(ids: np.ndarray, pooled: np.ndarray, seconds: Sequence[float],
                tracks: Sequence[set[str]]) -> np.ndarray:
    """Cluster ids where every cluster with under MIN_SPEAKER_SECONDS of voice and no talking
    face track of its own has joined the nearest other cluster (cosine of pooled voices) that has
    real evidence; unchanged where none has."""
    ids = np.asarray(ids).copy()
    clusters = sorted(set(ids.tolist()))
    heard = {c: sum(seconds[g] for g in np.flatnonzero(ids == c)) for c in clusters}
    owned: dict[int, set[str]] = {c: set().union(*(tracks[g] for g in np.flatnonzero(ids == c))) for c in clusters}
    shared = {t for c in clusters for t in owned[c] if sum(t in owned[d] for d in clusters) > 1}
    solid = [c for c in clusters if heard[c] >= MIN_SPEAKER_SECONDS or owned[c] - shared]
    if not solid:
        return ids
    centre = {c: _unit(pooled[ids == c].sum(0)) for c in clusters}
    for c in clusters:
        if c not in solid:
            ids[ids == c] = max(solid, key=lambda d: float(centre[c] @ centre[d]))
    return np.unique(ids, return_inverse=True)[1]


def _why_unknown(i: int, evidence: SpeakerEvidence, track: str | None) -> str:
    if not evidence.has_audio:
        return "no voice to embed and no talking face"
    seconds = evidence.voiced_seconds.get(i, 0.0)
    voice = (f"too short to tell the voice ({seconds:.2f} s < {MIN_VOICE_SECONDS} s)"
             if seconds < MIN_VOICE_SECONDS else "no usable voice")
    face = f"its face track {track} is not heard elsewhere" if track else "no talking face"
    return f"{voice}, and {face}"


def gather_evidence(utterances: Sequence[Utterance], tracks: Sequence[str | None], path: str | None,
                    encoder: SpeakerEncoder | None, notes: list[str], damage: object = None,
                    audio: AudioSpool | None = None) -> SpeakerEvidence:
    """Embed the audio of every utterance that has at least MIN_VOICE_SECONDS of it (up to
    MAX_VOICE_SECONDS), streamed from `path`; no audio (path None), or no encoder, gives face
    tracks only. With fewer than two utterances to name there is nothing to embed."""
    if path is not None and sum(not u.speaker for u in utterances) < 2:
        # one utterance to name needs no voice to tell it apart; only its length (padded) counts
        spans = padded_spans([(u.start, u.end) for u in utterances], PAD_SECONDS)
        return SpeakerEvidence(voiced_seconds={i: min(end - start, MAX_VOICE_SECONDS) for i, (start, end)
                                               in enumerate(spans) if not utterances[i].speaker},
                               tracks=list(tracks))
    if path is None or encoder is None:
        return SpeakerEvidence(tracks=list(tracks), has_audio=False)
    spans = padded_spans([(u.start, u.end) for u in utterances], PAD_SECONDS)
    voiced: dict[int, float] = {}
    embeddings: dict[int, np.ndarray] = {}
    chunks = audio.chunks(60.0) if audio is not None else iter_audio(path, 60.0, notes, damage)
    for i, samples in utterance_audio(chunks, spans, seconds=MAX_VOICE_SECONDS):
        voiced[i] = samples.size / SAMPLE_RATE
        if voiced[i] >= MIN_VOICE_SECONDS and not utterances[i].speaker:
            embeddings[i] = encoder.embed([samples])[0]  # as it streams: audio is never held
    return SpeakerEvidence(embeddings, voiced, list(tracks), True)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


class OnlineSpeakers:
    """Speakers named as each utterance ends, for a live stream: the nearest voice heard so far, if
    within `threshold` (cosine distance to its running mean), else a new one (at most `count`, when
    forced). `diarize` over the whole stream, when it ends, has the last word."""

    def __init__(self, count: int | None = None, threshold: float = DISTANCE_THRESHOLD) -> None:
        self.count, self.threshold = count, threshold
        self.sums: list[np.ndarray] = []  # per speaker, the sum of its unit embeddings

    def assign(self, embedding: np.ndarray | None) -> str:
        """S<n> for a voice embedding; `unknown` for none (too short to tell)."""
        if embedding is None:
            return UNKNOWN
        return f"S{_place(self.sums, embedding, self.threshold, self.count) + 1}"

    def voices(self, embeddings: Sequence[np.ndarray | None]) -> list[int | None]:
        """Whose voice each of consecutive stretches of one span is (a speaker's index, None where
        too short to tell), placed as `assign` would place them but without naming anyone: the
        speakers heard so far are left as they are. A voice met before is judged against its
        running mean, far steadier than another stretch of a second or two (bench/live_voices.py)."""
        sums = [total.copy() for total in self.sums]
        return [None if e is None else _place(sums, e, self.threshold, self.count) for e in embeddings]


def _place(sums: list[np.ndarray], embedding: np.ndarray, threshold: float, count: int | None) -> int:
    """The index of the speaker (summed unit embeddings) nearest `embedding` if within `threshold`,
    or when `count` are heard already, and the voice added to it; else a new speaker's."""
    if sums:
        similarity = [float(_unit(total) @ embedding) for total in sums]
        best = int(np.argmax(similarity))
        if 1.0 - similarity[best] <= threshold or (count is not None and len(sums) >= count):
            sums[best] = sums[best] + embedding
            return best
    sums.append(np.asarray(embedding, dtype=np.float64).copy())
    return len(sums) - 1
