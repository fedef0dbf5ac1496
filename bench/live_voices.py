"""Live utterances in one voice: two real people answering each other quickly, read as a stream.

    .venv/bin/python bench/live_voices.py [--trials N] [--seed S] [--gap SECONDS] [--modalities text,voice]
                                          [--paths live file]

Each trial joins six whole RAVDESS sentences of two actors (A A B A B B, as people take turns and
go on), with `--gap` seconds of silence between sentences (0.15 by default: quicker than the
0.4 s pause that closes a live span, so before voices were asked every trial was one utterance).
One actor of each pair is from 17-20, whom the voice head never trained on; the other is any of
1-20. Each trial is read by `moodlens.live.run_live` from the file at full speed, the same
session `moodlens live` runs.

Printed, over all trials:
- voice changes kept apart: of the boundaries between two actors' sentences, those that no
  utterance crosses (an utterance crosses a boundary when it holds at least 0.3 s of speech on
  each side of it);
- same voice kept together: of the boundaries between one actor's two sentences, those that one
  utterance does cross (a turn is one person's, however many sentences);
- sentences cut: sentences whose speech falls in more than one utterance (a fragment judged alone);
- emotion right: the sentences of actors 17-20 whose utterance (the one holding most of the
  sentence) has the sentence's RAVDESS emotion, as `fusion` fuses the modalities given;
- speakers found: the final Analysis's speakers (after the end-of-stream clustering), against 2;
- seconds of analysis per trial.

--paths live file also analyses each trial as a file (`analyze`), scored by its turns, for the
same figures from the file path. Its time is mostly Whisper's fallback decodings: six
near-identical sentences in one window fail faster-whisper's compression-ratio check.

RAVDESS is licensed for non-commercial use: read from ../shared, never shipped.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.io import wavfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RAVDESS = ROOT.parent / "shared" / "data" / "speech" / "ravdess"
HELD_OUT = (17, 18, 19, 20)  # actors the voice head never trained on
ORDER = (0, 0, 1, 0, 1, 1)  # whose each sentence is: A A B A B B
CROSS_SECONDS = 0.3


def trials(count: int, seed: int) -> list[list[tuple[int, Path]]]:
    """`count` lists of six (actor, sentence file), ORDER of two actors."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        first = rng.choice(HELD_OUT)
        second = rng.choice([a for a in range(1, 21) if a != first])
        pools = {a: rng.sample(sorted((RAVDESS / f"Actor_{a:02d}").glob("*.flac")), 3) for a in (first, second)}
        out.append([(a, pools[a].pop()) for a in ((first, second)[k] for k in ORDER)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gap", type=float, default=0.15)
    parser.add_argument("--modalities", default="text,voice")
    parser.add_argument("--paths", nargs="+", default=["live"], choices=("live", "file"),
                        help="file: also `analyze` each trial, for the same figures from the file path")
    args = parser.parse_args()
    if not RAVDESS.is_dir():
        sys.exit(f"{RAVDESS} not found: RAVDESS actors are read from ../shared/data/speech")

    from tests.media_factory import voiced_part

    from moodlens.live import LiveModels, LiveOptions, run_live
    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import analyze
    from moodlens.process import keep_memory_flat
    from moodlens.sources import parse_source
    from moodlens.training.voice import RAVDESS as EMOTIONS

    keep_memory_flat()
    options = LiveOptions(analyze=AnalyzeOptions(modalities=tuple(args.modalities.split(","))))
    models = LiveModels(options.analyze) if "live" in args.paths else None
    tally: dict[str, Counter] = {path: Counter() for path in args.paths}
    found_speakers: dict[str, list[int]] = {path: [] for path in args.paths}
    seconds: dict[str, list[float]] = {path: [] for path in args.paths}
    gap = np.zeros(int(args.gap * 16000), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for n, trial in enumerate(trials(args.trials, args.seed)):
            pieces, lines, at = [], [], 0.0
            for actor, path in trial:
                speech = voiced_part(path)
                pieces += [speech, gap]
                lines.append((at, at + speech.size / 16000, actor, EMOTIONS[path.stem.split("-")[2]]))
                at += (speech.size + gap.size) / 16000
            wav = Path(tmp) / f"trial{n}.wav"
            wavfile.write(wav, 16000, (np.concatenate(pieces) * 32767).astype(np.int16))
            for way in args.paths:
                began = time.monotonic()
                analysis = (run_live(parse_source(str(wav)), options, emit=lambda event: None, models=models)
                            if way == "live" else analyze(wav, options.analyze))
                seconds[way].append(time.monotonic() - began)
                score(tally[way], lines, judged_spans(analysis))
                found_speakers[way].append(len(analysis.speakers))
                print(f"trial {n:2d} {way}: actors {trial[0][0]:2d} and {trial[2][0]:2d}, "
                      f"{len(analysis.utterances)} utterances, {len(analysis.speakers)} speakers, "
                      f"{seconds[way][-1]:.1f} s", flush=True)
    print(f"\n{args.trials} trials, {args.gap:g} s between sentences, modalities {args.modalities}")
    print(f"{'':34s}" + "".join(f"{way:>14s}" for way in args.paths))
    rows = [("voice changes kept apart", "apart", "changes"), ("same voice kept together", "together", "sames"),
            ("sentences cut", "cut", "sentences"), ("emotion right (actors 17-20)", "right", "judged")]
    for label, hit, of in rows:
        print(f"{label:34s}" + "".join(f"{f'{tally[w][hit]}/{tally[w][of]}':>14s}" for w in args.paths))
    print(f"{'2 speakers found':34s}" + "".join(f"{f'{found_speakers[w].count(2)}/{args.trials}':>14s}"
                                                for w in args.paths))
    print(f"{'seconds per trial (median)':34s}" + "".join(f"{statistics.median(seconds[w]):>14.2f}"
                                                          for w in args.paths))


def judged_spans(analysis: object) -> list[tuple[float, float, str]]:
    """(start, end, emotion) of each unit judged: a live utterance, or a file's turn (its segments
    share the turn's judgement; a turn is what a change of voice ends)."""
    turns: dict[int, list] = {}
    for u in analysis.utterances:
        turns.setdefault(u.turn if u.turn is not None else u.index, []).append(u)
    return [(min(u.start for u in us), max(u.end for u in us), us[0].emotion.label) for us in turns.values()]


def score(tally: Counter, lines: list[tuple[float, float, int, str]], spans: list[tuple[float, float, str]]) -> None:
    """Add one trial's boundaries, cut sentences and emotions to `tally`."""

    def held(span: tuple[float, float, str], start: float, end: float) -> float:
        return max(0.0, min(span[1], end) - max(span[0], start))

    for before, after in itertools.pairwise(lines):
        crossed = any(held(s, *before[:2]) >= CROSS_SECONDS and held(s, *after[:2]) >= CROSS_SECONDS for s in spans)
        if before[2] != after[2]:
            tally["changes"] += 1
            tally["apart"] += not crossed
        else:
            tally["sames"] += 1
            tally["together"] += crossed
    for start, end, actor, emotion in lines:
        tally["sentences"] += 1
        holding = [s for s in spans if held(s, start, end) > 0.1]
        tally["cut"] += len(holding) > 1
        if actor in HELD_OUT and holding:
            tally["judged"] += 1
            tally["right"] += max(holding, key=lambda s: held(s, start, end))[2] == emotion


if __name__ == "__main__":
    main()
