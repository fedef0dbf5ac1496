"""Where the audio path loses emotion, one piece at a time, on the spoken MELD dev dialogues.

    .venv/bin/python bench/spoken_losses.py [--dialogues 40] [--text-weights FILE]

The text model alone (no fusion, no turns) scores each true line, weighted F1 of emotion, from:
- the true lines as typed, with the true previous lines as context (the reference);
- the true lines with only their punctuation written as Whisper writes it (features.asr_shaped);
- the recognised text cut at the true line boundaries (each recognised segment given to the line
  it overlaps most): word errors and lost lines, without segmentation;
- the recognised segments themselves, each line taking the overlap-weighted mean of the segments
  over it: what `analyze` does with `--turn-gap 0`.
It also prints the pauses between consecutive recognised segments, inside one true line and
between two lines, which is what a pause rule for turns has to tell apart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scripts.spoken_dialogues import DEV_CSV, build  # noqa: E402

from spoken_dialogues import EMOTIONS, weighted_f1  # noqa: E402


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=40)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "spoken_dialogues")
    parser.add_argument("--text-weights", help="a text model file; default: the shipped one")
    args = parser.parse_args()

    from moodlens.asr import transcribe
    from moodlens.features import asr_shaped, text_with_context
    from moodlens.models.text import load_text_expert

    model = load_text_expert(args.text_weights)
    turns = model.config.context_turns
    dialogues = build(DEV_CSV, args.cache, args.dialogues, 0)
    recognised = [[((u.start, u.end), u.text) for u in transcribe(d.wav)] for d in dialogues]
    truth = [line.emotion for d in dialogues for line in d.lines]

    def score(units_of: Callable[[int], list[str]],
              weights_of: Callable[[int, int], list[tuple[int, float]]]) -> tuple[float, int]:
        """Each dialogue's units (texts, each read with the units before it as context), and per
        true line the units and weights that make its prediction."""
        predicted: list[str | None] = []
        for k, dialogue in enumerate(dialogues):
            units = units_of(k)
            spoken = [i for i, t in enumerate(units) if t]
            pairs = [text_with_context([t for t in units[: i + 1] if t], turns) for i in spoken]
            emotion, _ = model.predict([p[0] for p in pairs], [p[1] for p in pairs])
            by_unit = dict(zip(spoken, emotion, strict=True))
            for j in range(len(dialogue.lines)):
                parts = [(by_unit[i], w) for i, w in weights_of(k, j) if i in by_unit and w > 0]
                predicted.append(EMOTIONS[int(sum(w * p for p, w in parts).argmax())] if parts else None)
        return weighted_f1(truth, predicted, EMOTIONS), sum(p is None for p in predicted)

    def span(k: int, j: int) -> tuple[float, float]:
        line = dialogues[k].lines[j]
        return line.start, line.end

    def cut_at_lines(k: int) -> list[str]:
        texts: list[list[str]] = [[] for _ in dialogues[k].lines]
        for when, text in recognised[k]:
            shares = [overlap(when, span(k, j)) for j in range(len(texts))]
            if max(shares, default=0.0) > 0:
                texts[int(np.argmax(shares))].append(text)
        return [" ".join(t) for t in texts]

    rows = {
        "true lines, typed": score(lambda k: [line.text for line in dialogues[k].lines], lambda k, j: [(j, 1.0)]),
        "true lines, ASR-shaped punctuation": score(
            lambda k: [asr_shaped(line.text) for line in dialogues[k].lines], lambda k, j: [(j, 1.0)]),
        "recognised text, cut at true lines": score(cut_at_lines, lambda k, j: [(j, 1.0)]),
        "recognised segments": score(lambda k: [text for _, text in recognised[k]],
                                     lambda k, j: [(i, overlap(when, span(k, j)))
                                                   for i, (when, _) in enumerate(recognised[k])]),
    }
    print(f"{len(dialogues)} dialogues, {len(truth)} lines; text model alone, emotion weighted F1")
    for name, (f1, lost) in rows.items():
        print(f"  {name:38} {f1:.3f}   lines with nothing to read: {lost}")

    inside, between = [], []
    for k in range(len(dialogues)):
        def line_of(when: tuple[float, float], k: int = k) -> int:
            shares = [overlap(when, span(k, j)) for j in range(len(dialogues[k].lines))]
            return int(np.argmax(shares)) if max(shares) > 0 else -1
        for (a, _), (b, _) in zip(recognised[k], recognised[k][1:], strict=False):
            (inside if line_of(a) == line_of(b) else between).append(b[0] - a[1])
    for name, gaps in (("inside one line", inside), ("between two lines", between)):
        p10, p50, p90 = np.percentile(gaps, [10, 50, 90])
        print(f"pauses between recognised segments {name:18}: 10/50/90 % {p10:.2f} / {p50:.2f} / {p90:.2f} s "
              f"({len(gaps)})")
    print(f"exclamation marks: {sum(t.count('!') for r in recognised for _, t in r)} recognised, "
          f"{sum(line.text.count('!') for d in dialogues for line in d.lines)} in the true lines")


if __name__ == "__main__":
    main()
