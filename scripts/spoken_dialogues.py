"""Speak MELD dialogues with espeak-ng: one wav per dialogue and an SRT of its true lines.

    apt-get install espeak-ng
    python scripts/spoken_dialogues.py OUT_DIR [--csv MELD_CSV] [--dialogues 40] [--seed 0]

Each speaker of a dialogue gets a voice of their own (an espeak-ng accent, variant and pitch,
in order of first appearance), and a seeded gap of TURN_GAP_SECONDS separates the lines. The
result is clean synthetic speech: it measures what segmentation and context cost between audio
and text (bench/spoken_dialogues.py), never how real voices sound. The wavs are built from MELD
text, so they stay in a local cache and are never shipped.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEV_CSV = ROOT.parent / "shared" / "data" / "meld" / "MELD" / "dev_sent_emo.csv"
SAMPLE_RATE = 22_050  # espeak-ng's own rate; analyze resamples
TURN_GAP_SECONDS = (0.3, 1.2)  # uniform, seeded: a quick reply to a pause
LEAD_SECONDS = 0.5
# (voice, pitch 0-99): distinct accents, sexes and pitches, so that speakers differ in voice
VOICES = (("en-us+m3", 45), ("en-us+f2", 60), ("en-gb+m1", 35), ("en-us+f4", 70), ("en-gb-x-rp+m7", 50),
          ("en-us+f1", 55), ("en-gb+f3", 65), ("en-us+m5", 40), ("en-gb-scotland+m2", 45))
BUILD_VERSION = 1  # bump when the way a dialogue is spoken changes: the cache is rebuilt


@dataclass(frozen=True)
class SpokenLine:
    start: float
    end: float
    text: str
    speaker: str
    emotion: str
    sentiment: str
    utterance_id: int = -1  # the MELD row's; -1 in caches built before it was kept


@dataclass(frozen=True)
class SpokenDialogue:
    dialogue_id: int
    wav: Path
    srt: Path
    lines: list[SpokenLine]

    @property
    def duration(self) -> float:
        return self.lines[-1].end + LEAD_SECONDS if self.lines else 0.0


def speak(text: str, voice: str, pitch: int, folder: Path) -> np.ndarray:
    path = folder / "line.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "165", "-w", str(path), text],
                   check=True, capture_output=True)
    with wave.open(str(path)) as handle:
        if handle.getframerate() != SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng wrote {handle.getframerate()} Hz, expected {SAMPLE_RATE}")
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return trim_silence(pcm.astype(np.float32) / 32768.0)


def trim_silence(samples: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """espeak-ng pads its lines with silence of its own; the gaps here are the script's."""
    loud = np.flatnonzero(np.abs(samples) > floor)
    return samples[loud[0]: loud[-1] + 1] if loud.size else samples[:0]


def srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """16-bit mono PCM of `samples` (floats in [-1, 1]) at `rate`."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


def speak_dialogue(rows: list, out: Path, rng: random.Random) -> SpokenDialogue:
    from moodlens.labels import EMOTIONS, SENTIMENTS

    voices: dict[str, tuple[str, int]] = {}
    pieces = [np.zeros(int(LEAD_SECONDS * SAMPLE_RATE), np.float32)]
    position = LEAD_SECONDS
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, row in enumerate(rows):
            voice, pitch = voices.setdefault(row.speaker, VOICES[len(voices) % len(VOICES)])
            audio = speak(row.text, voice, pitch, Path(tmp))
            if not audio.size:
                continue
            if k:
                gap = rng.uniform(*TURN_GAP_SECONDS)
                pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
                position += int(gap * SAMPLE_RATE) / SAMPLE_RATE
            pieces.append(audio)
            lines.append(SpokenLine(position, position + audio.size / SAMPLE_RATE, row.text, row.speaker,
                                    EMOTIONS[row.emotion], SENTIMENTS[row.sentiment], row.utterance_id))
            position += audio.size / SAMPLE_RATE
    pieces.append(np.zeros(int(LEAD_SECONDS * SAMPLE_RATE), np.float32))
    dialogue = rows[0].dialogue_id
    wav, srt = out / f"dia{dialogue}.wav", out / f"dia{dialogue}.srt"
    write_wav(wav, np.concatenate(pieces))
    srt.write_text("".join(f"{i}\n{srt_time(line.start)} --> {srt_time(line.end)}\n{line.text}\n\n"
                           for i, line in enumerate(lines, start=1)), encoding="utf-8")
    return SpokenDialogue(dialogue, wav, srt, lines)


def build(csv_path: Path, out: Path, count: int, seed: int = 0) -> list[SpokenDialogue]:
    """`count` dialogues of the CSV, chosen by `seed`, spoken into `out` (reused where built)."""
    from moodlens.data.meld import read_meld_csv

    # one folder per build: builds with another count or seed draw other turn gaps for the same
    # dialogue, and must not overwrite each other's wavs under an index that still holds the old times
    out = out / f"{csv_path.stem}-{count}-{seed}-v{BUILD_VERSION}"
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.json"
    if index.is_file():
        saved = json.loads(index.read_text(encoding="utf-8"))
        dialogues = [SpokenDialogue(d["dialogue_id"], Path(d["wav"]), Path(d["srt"]),
                                    [SpokenLine(**line) for line in d["lines"]]) for d in saved]
        if all(d.wav.is_file() for d in dialogues):
            return dialogues
    by_dialogue: dict[int, list] = {}
    for row in read_meld_csv(csv_path):
        by_dialogue.setdefault(row.dialogue_id, []).append(row)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(sorted(by_dialogue), min(count, len(by_dialogue))))
    dialogues = [speak_dialogue(by_dialogue[d], out, rng) for d in chosen]
    index.write_text(json.dumps([{**asdict(d), "wav": str(d.wav), "srt": str(d.srt)} for d in dialogues]),
                     encoding="utf-8")
    return dialogues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--csv", type=Path, default=DEV_CSV)
    parser.add_argument("--dialogues", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dialogues = build(args.csv, args.out, args.dialogues, args.seed)
    print(f"{len(dialogues)} dialogues, {sum(len(d.lines) for d in dialogues)} lines in {args.out}")


if __name__ == "__main__":
    main()
