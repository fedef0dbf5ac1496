"""Speakers, measured: videos joined from MELD clips of different people, diarized.

    .venv/bin/python bench/speakers.py [--clips DIR] [--videos N] [--seed S] [--conversations N]
                                       [--no-voice-cue]

Each video re-encodes 4 to 6 of the MELD test clips in ../shared (labels.csv names the speaker)
into one mp4, from 2 or 3 people of whom at least one speaks twice, apart (as in "Chandler,
Joey, Chandler, Ross"). `moodlens.analyze` runs on each (ASR, every expert, speakers); then the
same evidence is diarized again with each source of evidence alone and over a grid of distance
thresholds, so each part's contribution is shown. An utterance's true speaker is the clip it
overlaps most.

Printed per evidence and threshold:
- accuracy: utterances whose speaker matches the truth after mapping each found speaker to the
  true speaker most of its utterances belong to (majority mapping); `unknown` counts as wrong;
- count ok: videos whose number of speakers is within one of the truth (and above 1 when the
  truth is);
- both: videos with the count ok and at least 80 % accuracy (the issue's check, per video);
- one speaker: files where one person speaks (a MELD character's clips joined, or six RAVDESS
  sentences of one actor) that come back as exactly one speaker;
- and the time the speakers stage (voice embeddings and clustering) costs per minute of video.
  Face tracking runs inside the face expert; bench/stage_profile.py times that stage.

Then clean acted speech, where voices differ more than under a laugh track: conversations of 2-3
people of one corpus (RAVDESS actors 1-20, or EmoDB's ten German speakers) taking turns, 6-8 whole
sentences in mixed emotions and intensities, clustered by voice alone over the same thresholds
(no ASR: each sentence is one utterance), with the same columns, how many conversations found
too many or too few people, and how many people's own 6 sentences stay one speaker.

`--no-voice-cue` lets the pause alone join segments into turns, as before a change of voice
ended a turn (turns.group_turns): the face expert, and so the talking face track, is read per turn.

The shipped threshold (speakers.DISTANCE_THRESHOLD) was read off both tables. These are the only
MELD clips with media here, so it is chosen partly on the clips it is scored on; the count check
on unseen clips is the honest test of it.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def sequences(speakers: dict[str, list[Path]], count: int, seed: int) -> list[list[tuple[str, Path]]]:
    """`count` clip orders of 4-6 clips from 2-3 people; someone speaks twice, never back to back."""
    rng = random.Random(seed)
    repeat = sorted(name for name, clips in speakers.items() if len(clips) >= 2)
    videos: list[list[tuple[str, Path]]] = []
    while len(videos) < count:
        first = rng.choice(repeat)
        people = [first, *rng.sample(sorted(set(speakers) - {first}), rng.choice((1, 2)))]
        pool = [(name, clip) for name in people for clip in speakers[name]]
        rng.shuffle(pool)
        order = pool[:6]
        names = [name for name, _ in order]
        apart = all(a != b for a, b in itertools.pairwise(names))
        if len(order) >= 4 and apart and max(Counter(names).values()) >= 2 and order not in videos:
            videos.append(order)
    return videos


def majority_accuracy(found: list[str | None], truth: list[str]) -> float:
    mapping = {}
    for label in set(found) - {None, "unknown"}:
        mapping[label] = Counter(t for f, t in zip(found, truth, strict=True) if f == label).most_common(1)[0][0]
    return sum(mapping.get(f) == t for f, t in zip(found, truth, strict=True)) / max(len(truth), 1)


def count_ok(found: list[str | None], truth: list[str]) -> bool:
    n, want = len(set(found) - {None, "unknown"}), len(set(truth))
    return abs(n - want) <= 1 and (n > 1 or want == 1)


def one_speaker_counts(speakers: dict[str, list[Path]], ravdess: Path, encoder: object
                       ) -> dict[float, list[int]]:
    """Speakers found, per threshold, in files where one person speaks: all of one MELD
    character's clips joined, and six RAVDESS sentences of one actor joined (audio only)."""
    from tests.media_factory import join_clips

    from moodlens.pipeline import analyze
    from moodlens.speakers import diarize, gather_evidence
    from moodlens.utterances import Utterance

    sets = [clips for clips in speakers.values() if len(clips) >= 2]
    sets += [sorted((ravdess / f"Actor_{a:02d}").glob("*.flac"))[::10][:6] for a in (2, 7, 12, 17, 20)
             if (ravdess / f"Actor_{a:02d}").is_dir()]
    counts: dict[float, list[int]] = {t: [] for t in THRESHOLDS}
    with tempfile.TemporaryDirectory() as tmp:
        for k, clips in enumerate(sets):
            path = Path(tmp) / f"one{k}.mp4"
            join_clips(clips, path, video=clips[0].suffix == ".mp4")
            utterances = [Utterance(u.start, u.end, u.text) for u in analyze(path).utterances]
            evidence = gather_evidence(utterances, [None] * len(utterances), str(path), encoder, [])
            for threshold in THRESHOLDS:
                counts[threshold].append(len(set(diarize(utterances, evidence, threshold=threshold).labels)
                                             - {"unknown", None}))
    return counts


def clean_voices(speech: Path, encoder: object, per_person: int, seed: int) -> dict[str, list[np.ndarray]]:
    """`per_person` sentences of each RAVDESS actor 1-20 and each EmoDB speaker, in any emotion
    and intensity, each embedded whole, keyed "ravdess/NN" or "emodb/NN"."""
    from moodlens.media import read_audio

    rng = random.Random(seed)
    people: dict[str, list[Path]] = {}
    for actor in sorted((speech / "ravdess").glob("Actor_*")):
        people[f"ravdess/{actor.name[-2:]}"] = sorted(actor.glob("*.flac"))
    for path in sorted((speech / "emodb").glob("*.flac")):
        people.setdefault(f"emodb/{path.name[:2]}", []).append(path)
    return {person: list(encoder.embed([read_audio(p) for p in rng.sample(files, per_person)]))
            for person, files in people.items() if len(files) >= per_person}


def clean_conversations(voices: dict[str, list[np.ndarray]], count: int, seed: int
                        ) -> dict[float, list[tuple[float, bool, int]]]:
    """Per threshold, (accuracy, count ok, speakers found - true) of `count` conversations of 2-3
    people of one corpus taking turns, 6-8 sentences, clustered as `speakers.cluster` does."""
    from moodlens.speakers import cluster

    rng = random.Random(seed)
    corpora = sorted({person.split("/")[0] for person in voices})
    results: dict[float, list[tuple[float, bool, int]]] = {t: [] for t in THRESHOLDS}
    for _ in range(count):
        corpus = rng.choice(corpora)
        people = rng.sample(sorted(p for p in voices if p.startswith(corpus)), rng.choice((2, 3)))
        order = [people[k % len(people)] for k in range(rng.choice((6, 7, 8)))]
        vectors = np.stack([voices[person][k // len(people)] for k, person in enumerate(order)])
        for threshold in THRESHOLDS:
            found = [f"S{c}" for c in cluster(vectors, threshold=threshold)]
            results[threshold].append((majority_accuracy(found, order), count_ok(found, order),
                                       len(set(found)) - len(people)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ravdess", type=Path, default=ROOT.parent / "shared" / "data" / "speech" / "ravdess")
    parser.add_argument("--conversations", type=int, default=200,
                        help="clean-speech conversations (RAVDESS actors 1-20, EmoDB) to cluster")
    parser.add_argument("--no-voice-cue", action="store_true", help="turns joined by their pauses alone")
    args = parser.parse_args()
    if args.no_voice_cue:
        import moodlens.pipeline

        moodlens.pipeline.voice_labels = lambda segments, evidence: [None] * len(segments)
    if not (args.clips / "labels.csv").is_file():
        sys.exit(f"no MELD clips at {args.clips}: this benchmark needs ../shared")

    from tests.media_factory import join_clips

    from moodlens.experts.face import face_track
    from moodlens.models.speaker import load_speaker_encoder
    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import analyze, warm_up
    from moodlens.speakers import cluster, diarize, gather_evidence
    from moodlens.utterances import Utterance

    with (args.clips / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    speakers: dict[str, list[Path]] = {}
    for row in rows:
        clip = args.clips / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
        speakers.setdefault(row["Speaker"], []).append(clip)

    warm_up(AnalyzeOptions())
    encoder = load_speaker_encoder()
    modes = {"voice": (True, False), "face tracks": (False, True), "voice + face tracks": (True, True)}
    scores: dict[tuple[str, float], list[tuple[float, bool]]] = {}
    extra = duration = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for v, order in enumerate(sequences(speakers, args.videos, args.seed)):
            path = Path(tmp) / f"joined{v}.mp4"
            spans = join_clips([clip for _, clip in order], path)
            analysis = analyze(path)
            duration += spans[-1][1]
            utterances = [Utterance(u.start, u.end, u.text) for u in analysis.utterances]
            truth = [order[int(np.argmax([max(0.0, min(u.end, e) - max(u.start, s)) for s, e in spans]))][0]
                     for u in utterances]
            tracks = [face_track(u.per_modality.get("face")) for u in analysis.utterances]
            start = time.perf_counter()
            evidence = gather_evidence(utterances, tracks, str(path), encoder, [])
            diarize(utterances, evidence)
            extra += time.perf_counter() - start
            shipped = [u.speaker for u in analysis.utterances]
            print(f"video {v}: truth {' '.join(truth)}", flush=True)
            print(f"         found {' '.join(str(s) for s in shipped)}", flush=True)
            for mode, (voice, faces) in modes.items():
                seen = replace(evidence, tracks=tracks if faces else [None] * len(tracks),
                               embeddings=evidence.embeddings if voice else {}, has_audio=voice)
                for threshold in THRESHOLDS if voice else (0.0,):
                    found = diarize(utterances, seen, threshold=threshold).labels
                    scores.setdefault((mode, threshold), []).append(
                        (majority_accuracy(found, truth), count_ok(found, truth)))

    print(f"\n{len(scores and next(iter(scores.values())))} joined videos, {duration:.0f} s in all")
    singles = one_speaker_counts(speakers, args.ravdess, encoder)
    print(f"{'evidence':<22}{'threshold':>10}{'accuracy':>10}{'count ok':>10}{'both':>8}{'one speaker':>14}")
    for (mode, threshold), results in scores.items():
        accuracy = np.mean([a for a, _ in results])
        ok = sum(c for _, c in results)
        both = sum(c and a >= 0.8 for a, c in results)
        one = (f"{sum(c == 1 for c in singles[threshold])}/{len(singles[threshold])}"
               if mode == "voice" else "")
        print(f"{mode:<22}{threshold if threshold else '-':>10}{accuracy:>10.3f}{ok:>7}/{len(results)}"
              f"{both:>5}/{len(results)}{one:>14}")
    print(f"speakers stage (voice embeddings + clustering): {extra / duration * 60:.2f} s per minute of video "
          f"({duration:.0f} s of video)")

    voices = clean_voices(args.ravdess.parent, encoder, 6, args.seed)
    talks = clean_conversations(voices, args.conversations, args.seed)
    print(f"\nclean acted speech: {args.conversations} conversations of 2-3 people (RAVDESS actors 1-20 or EmoDB), "
          "6-8 whole sentences, voice alone;\none speaker: each person's 6 sentences in mixed emotions")
    print(f"{'threshold':>10}{'accuracy':>10}{'count ok':>10}{'both':>8}{'too many':>10}{'too few':>9}"
          f"{'one speaker':>13}")
    for threshold, results in talks.items():
        ones = sum(len(set(cluster(np.stack(v), threshold=threshold))) == 1 for v in voices.values())
        print(f"{threshold:>10}{np.mean([a for a, _, _ in results]):>10.3f}"
              f"{sum(c for _, c, _ in results):>6}/{len(results)}"
              f"{sum(c and a >= 0.8 for a, c, _ in results):>4}/{len(results)}"
              f"{sum(d > 0 for *_, d in results):>10}{sum(d < 0 for *_, d in results):>9}"
              f"{ones:>10}/{len(voices)}")


if __name__ == "__main__":
    main()
