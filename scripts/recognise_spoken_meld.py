"""MELD lines as the shipped speech recognition writes them: spoken by espeak-ng, read back by ASR.

    apt-get install espeak-ng
    python scripts/recognise_spoken_meld.py OUT.csv [--csv MELD_CSV] [--dialogues N] [--seed 0]

Each dialogue of the CSV is spoken as in scripts/spoken_dialogues.py (one voice per speaker,
seeded gaps), transcribed by `moodlens.asr.transcribe` with the shipped English settings,
and every recognised utterance is given to the true line that it overlaps most. OUT.csv is the
MELD CSV again with `Utterance` replaced by what was recognised for that line and the line as
typed kept in `Typed_Utterance`; lines with nothing recognised are left out, as the text model
never sees them either. `moodlens refit-text --asr-csv OUT.csv` trains on it: real word errors,
merges and splits, not a simulation of them.

The run appends one dialogue at a time and skips dialogues already in OUT.csv, so it can be
stopped and resumed. Each wav is deleted once read. The speech is synthetic: it teaches the text
model what ASR writes, never how real voices sound; MELD text stays in a local file, never shipped.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.spoken_dialogues import SpokenLine, speak_dialogue  # noqa: E402

TRAIN_CSV = ROOT.parent / "shared" / "data" / "meld" / "MELD" / "train_sent_emo.csv"
COLUMNS = ("Dialogue_ID", "Utterance_ID", "Speaker", "Emotion", "Sentiment", "Utterance", "Typed_Utterance")


def recognised_per_line(lines: list[SpokenLine], utterances: list[tuple[float, float, str]]) -> list[str]:
    """Each recognised (start, end, text) joined to the line it overlaps most, in order."""
    texts: list[list[str]] = [[] for _ in lines]
    for start, end, text in utterances:
        shares = [min(end, line.end) - max(start, line.start) for line in lines]
        best = max(range(len(lines)), key=shares.__getitem__, default=None)
        if best is not None and shares[best] > 0:
            texts[best].append(text)
    return [" ".join(t).strip() for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--csv", type=Path, default=TRAIN_CSV)
    parser.add_argument("--dialogues", type=int, help="how many dialogues, chosen by --seed; default: all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from moodlens.asr import TranscribeOptions, transcribe
    from moodlens.data.meld import read_meld_csv
    from moodlens.labels import EMOTIONS, SENTIMENTS

    by_dialogue: dict[int, list] = {}
    for row in read_meld_csv(args.csv):
        by_dialogue.setdefault(row.dialogue_id, []).append(row)
    rng = random.Random(args.seed)
    chosen = sorted(rng.sample(sorted(by_dialogue), min(args.dialogues or len(by_dialogue), len(by_dialogue))))
    done: set[int] = set()
    if args.out.is_file():
        with args.out.open(encoding="utf-8", newline="") as handle:
            done = {int(r["Dialogue_ID"]) for r in csv.DictReader(handle)}
    todo = [d for d in chosen if d not in done]
    options = TranscribeOptions(language="en")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not args.out.is_file()
    started, speech = time.perf_counter(), 0.0
    with args.out.open("a", encoding="utf-8", newline="") as handle, tempfile.TemporaryDirectory() as tmp:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(COLUMNS)
        for k, dialogue_id in enumerate(todo, start=1):
            rows = by_dialogue[dialogue_id]
            # a dialogue's own seed, so a resumed run speaks it exactly as an uninterrupted one
            spoken = speak_dialogue(rows, Path(tmp), random.Random(f"{args.seed}-{dialogue_id}"))
            recognised = [(u.start, u.end, u.text) for u in transcribe(spoken.wav, options)]
            spoken.wav.unlink()
            spoken.srt.unlink()
            speech += spoken.duration
            by_id = {r.utterance_id: r for r in rows}
            for line, text in zip(spoken.lines, recognised_per_line(spoken.lines, recognised), strict=True):
                row = by_id[line.utterance_id]
                if text:
                    writer.writerow((row.dialogue_id, row.utterance_id, row.speaker, EMOTIONS[row.emotion],
                                     SENTIMENTS[row.sentiment], text, row.text))
            handle.flush()
            if k % 20 == 0 or k == len(todo):
                elapsed = time.perf_counter() - started
                print(f"{k}/{len(todo)} dialogues, {speech / 60:.0f} min of speech in {elapsed:.0f} s",
                      flush=True)


if __name__ == "__main__":
    main()
