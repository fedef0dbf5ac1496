"""Speech recognition settings on short, quick dialogue: word error rate and lines lost.

    .venv/bin/python bench/asr_settings.py [--dialogues 40] [--cache DIR]

For each setting below (faster-whisper's beam size, Silero VAD's threshold, minimum silence and
padding, Whisper's no-speech and log-prob checks), it transcribes the spoken MELD dev dialogues
(scripts/spoken_dialogues.py) and the 7 MELD test clips whose audio is their CSV line, and prints
the word error rate of each, how many dialogue lines got no recognised word at all, how many
exclamation marks Whisper wrote (the true lines have 97), and the share of the recognised
segments' edges (starts and ends) that fall in a pause between two true lines, more than 0.1 s
from either line: a segment whose time drifted onto the silence or the next line. The shipped
setting is `TranscribeOptions()`'s defaults; "Whisper's own times" leaves the segments where
Whisper put them instead of moving their boundaries onto the speech Silero hears.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.spoken_dialogues import DEV_CSV, build  # noqa: E402
from tests.test_meld_clips import aligned, word_errors, words  # noqa: E402

CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
SETTINGS = {
    "shipped": {},
    "Whisper's own times": {"snap_to_speech": False},
    "beam 5": {"beam_size": 5},
    "VAD min silence 500 ms": {"vad_min_silence_ms": 500},
    "VAD threshold 0.35": {"vad_threshold": 0.35},
    "VAD padding 200 ms": {"vad_speech_pad_ms": 200},
    "no-speech check off": {"no_speech_threshold": None},
    "log-prob check -1.5": {"log_prob_threshold": -1.5},
    "prompt with '!'": {"initial_prompt": "Oh my God! What?! No way! I love it! Get out! Okay."},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=40)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "spoken_dialogues")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma list of the names above")
    args = parser.parse_args()

    from moodlens.asr import TranscribeOptions, transcribe
    from moodlens.media import probe

    dialogues = build(DEV_CSV, args.cache, args.dialogues, 0)
    with (CLIPS / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    clips = [(CLIPS / f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.mp4", r) for r in rows]
    clips = [(path, row) for path, row in clips if aligned(row, probe(path).duration)]
    print(f"{len(dialogues)} spoken dialogues ({sum(len(d.lines) for d in dialogues)} lines), "
          f"{len(clips)} aligned MELD clips")
    print(f"{'setting':26} {'dialogue WER':>12} {'lines lost':>10} {'!':>4} {'in a pause':>10} {'MELD WER':>9} "
          f"{'time':>6}")
    for name in args.settings.split(","):
        options = replace(TranscribeOptions(), **SETTINGS[name])
        started = time.perf_counter()
        errors = total = lost = marks = edges = astray = 0
        for dialogue in dialogues:
            found = list(transcribe(dialogue.wav, options))
            pauses = [(a.end, b.start) for a, b in itertools.pairwise(dialogue.lines)]
            for edge in (t for u in found for t in (u.start, u.end)):
                edges += 1
                astray += any(left + 0.1 < edge < right - 0.1 for left, right in pauses)
            marks += sum(u.text.count("!") for u in found)
            reference = words(" ".join(line.text for line in dialogue.lines))
            errors += word_errors(reference, words(" ".join(u.text for u in found)))
            total += len(reference)
            lost += sum(not any(min(line.end, u.end) > max(line.start, u.start) for u in found)
                        for line in dialogue.lines)
        clip_errors = clip_total = 0
        for path, row in clips:
            reference = words(row["Utterance"])
            clip_errors += word_errors(reference, words(" ".join(u.text for u in transcribe(path, options))))
            clip_total += len(reference)
        print(f"{name:26} {errors / total:>12.3f} {lost:>10} {marks:>4} {astray / max(edges, 1):>10.3f} "
              f"{clip_errors / clip_total:>9.3f} "
              f"{time.perf_counter() - started:>5.0f}s")


if __name__ == "__main__":
    main()
