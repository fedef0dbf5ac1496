"""Does the audio tell Whisper where an exclamation mark goes? On espeak-ng speech, no.

    .venv/bin/python bench/exclamation_marks.py [--dialogues 40] [--seed 0]

The spoken dev dialogues (`bench/spoken_dialogues.py`) lose most of their score to punctuation:
their true lines end in "!" 154 times, and Whisper writes almost none. This asks whether the
mark is in the audio at all. For every line that ends in "!" or ".", Whisper tiny.en is given
the line's true words as a forced prefix and scores the next token; the figure is
log P("!") - log P("."). It does so three times, with different audio under the same words:

- the line's own audio;
- the audio of the line before it (another line, another voice);
- silence.

It prints how well each separates the "!" lines from the "." lines (AUC, 0.5 = chance) and how
many "!" Whisper would choose. If the audio carried the mark, its own audio would separate them
better than another line's or silence. What separation there is comes from the words, which the
text model reads anyway. The 11 real MELD clips are printed line by line beside it, for the
same comparison on real voices (too few to be a figure).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.spoken_dialogues import DEV_CSV, build  # noqa: E402

CLIPS = ROOT.parent / "shared" / "data" / "meld" / "media" / "test"
FINAL_MARK = re.compile(r"^(.*?)\s*([.!])$", re.S)
AUDIO_KINDS = ("own audio", "another line's audio", "silence")


class ExclamationScorer:
    """log P("!") - log P(".") from Whisper after a forced prefix of true words."""

    def __init__(self) -> None:
        from moodlens.asr import TranscribeOptions, load_asr_model

        self.whisper = load_asr_model(TranscribeOptions())
        self.tokenizer = self.whisper.hf_tokenizer
        self.start = [self.tokenizer.token_to_id("<|startoftranscript|>"),
                      self.tokenizer.token_to_id("<|notimestamps|>")]
        self.bang, self.dot = (self.tokenizer.encode(mark, add_special_tokens=False).ids[0] for mark in "!.")

    def __call__(self, audio: np.ndarray, words: str) -> float:
        import ctranslate2

        features = self.whisper.feature_extractor(audio)[:, :3000]
        features = np.pad(features, ((0, 0), (0, 3000 - features.shape[1])))[None].astype(np.float32)
        prefix = self.tokenizer.encode(" " + words, add_special_tokens=False).ids
        # the prefix is forced; its logits come back step by step, so the next step is the mark's
        result = self.whisper.model.generate(ctranslate2.StorageView.from_array(features), [self.start + prefix],
                                             beam_size=1, max_length=448, return_logits_vocab=True)[0]
        logits = np.array(result.logits[0][len(prefix)])
        return float(logits[self.bang] - logits[self.dot])


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The chance that a "!" line scores above a "." line (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "spoken_dialogues")
    args = parser.parse_args()

    from moodlens.media import SAMPLE_RATE, read_audio

    score = ExclamationScorer()
    marks: list[str] = []
    scores: dict[str, list[float]] = {kind: [] for kind in AUDIO_KINDS}
    for dialogue in build(DEV_CSV, args.cache, args.dialogues, args.seed):
        audio = read_audio(dialogue.wav)
        previous: np.ndarray | None = None
        for line in dialogue.lines:
            found = FINAL_MARK.match(line.text.strip())
            own = audio[int(line.start * SAMPLE_RATE): int((line.end + 0.1) * SAMPLE_RATE)]
            if found:
                marks.append(found.group(2))
                other = previous if previous is not None else own[::-1].copy()
                for kind, clip in zip(AUDIO_KINDS, (own, other, np.zeros_like(own)), strict=True):
                    scores[kind].append(score(clip, found.group(1)))
            previous = own
    positive = np.array([mark == "!" for mark in marks])
    print(f"{len(marks)} spoken dev lines ending in '!' ({positive.sum()}) or '.' ({(~positive).sum()}); "
          "Whisper tiny.en given each line's true words, then the mark:")
    print(f"{'audio under the words':<24} {'AUC':>6} {'! chosen':>9} {'of them right':>14}")
    for kind in AUDIO_KINDS:
        values = np.array(scores[kind])
        chosen = values > 0
        print(f"{kind:<24} {auc(values, positive):>6.3f} {chosen.sum():>9} {(chosen & positive).sum():>14}")

    if not CLIPS.is_dir():
        print(f"\n(the real MELD clips are not here: {CLIPS})")
        return
    import csv

    print("\nreal MELD test clips, log P('!') - log P('.') with the clip's audio / with silence:")
    with (CLIPS / "labels.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            clip = CLIPS / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
            found = FINAL_MARK.match(row["Utterance"].replace("\u2019", "'").strip())
            if not found or not clip.exists():
                continue
            audio = read_audio(clip)
            print(f"  {row['Utterance'][:48]:<50} {score(audio, found.group(1)):>6.2f} / "
                  f"{score(np.zeros_like(audio), found.group(1)):>6.2f}")


if __name__ == "__main__":
    main()
