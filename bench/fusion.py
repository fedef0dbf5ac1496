"""Fusion, measured in four regimes: fused against each expert alone, with cross-validated fits.

    .venv/bin/python bench/fusion.py [--cache DIR] [--write] [--regimes meld,ravdess,spoken,dialogues]

Regimes (each analysed once with `moodlens.analyze`, ASR included, and cached in --cache):
- **meld**: the 11 real MELD test clips in ../shared (labels.csv): text, face and voice all
  matter. Scored per clip: the duration-weighted mean of its utterances' distributions.
- **ravdess**: RAVDESS actors 17-20 (../shared/data/speech, 240 files): real acted speech whose
  words ("Kids are talking by the door") say nothing, so the voice must lead. Calm counts as
  neutral. Actors 17-20 were the voice head's selection actors, never its training ones.
- **spoken**: English XED subtitle lines (CC BY 4.0) with one emotion each, 20 per class,
  spoken by espeak-ng: emotional words in a synthetic voice, so the text must lead.
- **dialogues**: each analysed turn of the 40 spoken MELD dev dialogues that
  bench/spoken_dialogues.py builds (espeak-ng, one voice per speaker), scored against the true
  line it overlaps most: MELD's words in synthetic voices over whole conversations, text leads.

What is fitted, and stored by --write in src/moodlens/weights/fusion_v3.json, which the
pipeline reads (`fusion.fuse_file`):
- each non-text expert's *baseline*: its mean output over the MELD clips' utterances, one
  pseudo-count per class, no labels (as before);
- the weights (text, face, voice) and the per-utterance trust (`fusion.Trust`): how far a face
  must depart from its own baseline to count fully, how much weight text keeps when it says
  the words are neutral, and how fast the voice's weight halves beyond its typicality limit
  (the TYPICAL_PERCENTILE of RAVDESS actors 17-20's atypicality, read off, not fitted). They
  maximise, by a full search over the weights that trade text against voice and then coordinate
  ascent on a grid, the mean over the regimes of each regime's mean log-likelihood of the
  true labels, less HARM_PENALTY times any accuracy shortfall below the expert that leads that
  regime (LEADS): fusion must first do no harm anywhere, then do good.
  4-fold cross-validation (folds by actor, clip, line and dialogue) refits on three folds and scores the
  fourth: that row is what the fit is worth on data it was not made on.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
CLIPS = SHARED / "meld" / "media" / "test"
RAVDESS = SHARED / "speech" / "ravdess"
XED = SHARED / "xed" / "AnnotatedData"
OUT = ROOT / "src" / "moodlens" / "weights" / "fusion_v3.json"
EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
EXPERT_NAMES = ("text", "face", "voice")
RAVDESS_EMOTIONS = {"01": "neutral", "02": "neutral", "03": "joy", "04": "sadness", "05": "anger",
                    "06": "fear", "07": "disgust", "08": "surprise"}
XED_EMOTIONS = {"1": "anger", "3": "disgust", "4": "fear", "5": "joy", "6": "sadness", "7": "surprise"}
SPOKEN_PER_CLASS = 20
DIALOGUES = 40  # spoken dev dialogues in the "dialogues" regime, as bench/spoken_dialogues.py speaks them
FOLDS = 4
GRIDS: dict[str, tuple[float, ...]] = {
    "text": tuple(round(0.1 * i, 1) for i in range(3, 11)),
    "face": tuple(round(0.1 * i, 1) for i in range(11)),
    "voice": tuple(round(0.1 * i, 1) for i in range(11)),
    "face_change": (0.05, 0.1, 0.2, 0.3, 0.5, 1.0),
    "text_neutral": tuple(round(0.1 * i, 1) for i in range(11)),
    "voice_halving": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    "voice_human_ramp": (0.005, 0.01, 0.02, 0.04),
}
# The voice is trusted fully up to this percentile of the atypicality of real voices it was not
# trained on (RAVDESS actors 17-20), and less beyond. Read off in-domain voices, not fitted
# against the regimes: fitted, the limit moved between 4 and "never" from fold to fold, and out
# of fold it let the synthetic voice harm the spoken lines.
TYPICAL_PERCENTILE = 80
# A voice counts fully where its file's pitch wobbles at least as much as this percentile of the
# same real voices' utterances do (fusion.Trust.voice_human), read off them for the same reason.
HUMAN_PERCENTILE = 10
TRUST_FIELDS = ("face_change", "text_neutral", "voice_typical", "voice_halving", "voice_human", "voice_human_ramp")


def _turns(analysis: dict) -> list[dict]:
    """Each judged turn once (its segments share its judgement): span and per-modality results."""
    turns: dict[object, dict] = {}
    for u in analysis["utterances"]:
        key = u.get("turn", u["index"])
        turn = turns.setdefault(key, {"start": u["start"], "end": u["end"], "per_modality": u["per_modality"]})
        turn["end"] = max(turn["end"], u["end"])
    return list(turns.values())


def _analysed(path: Path, label: str, group: str, options: object) -> dict:
    from moodlens.pipeline import analyze

    return {"name": path.name, "label": EMOTIONS.index(label), "group": group,
            "turns": _turns(analyze(path, options).to_dict())}


def collect_meld() -> list[dict]:
    from moodlens.options import AnalyzeOptions

    with (CLIPS / "labels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [_analysed(CLIPS / f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.mp4", r["Emotion"].strip().lower(),
                      f"clip{k % FOLDS}", AnalyzeOptions()) for k, r in enumerate(rows)]


def collect_ravdess() -> list[dict]:
    from moodlens.options import AnalyzeOptions

    options = AnalyzeOptions(modalities=("text", "voice"))
    files = sorted(p for actor in (17, 18, 19, 20) for p in (RAVDESS / f"Actor_{actor:02d}").glob("*.flac"))
    return [_analysed(p, RAVDESS_EMOTIONS[p.stem.split("-")[2]], p.stem.split("-")[-1], options) for p in files]


def spoken_lines() -> list[tuple[str, str]]:
    """(line, emotion): English XED lines with exactly one label that MELD has, SPOKEN_PER_CLASS
    per class (seeded), and as many neutral lines."""
    by_class: dict[str, list[str]] = {e: [] for e in XED_EMOTIONS.values()}
    with (XED / "en-annotated.tsv").open(encoding="utf-8") as handle:
        for row in handle:
            text, _, labels = row.rstrip("\n").rpartition("\t")
            codes = [c.strip() for c in labels.split(",") if c.strip()]
            if len(codes) == 1 and codes[0] in XED_EMOTIONS and 3 <= len(text.split()) <= 20:
                by_class[XED_EMOTIONS[codes[0]]].append(text.strip())
    neutral = [line.strip() for line in (XED / "neu_en.txt").read_text(encoding="utf-8").splitlines()
               if 3 <= len(line.split()) <= 20]
    by_class["neutral"] = [line.split("\t")[-1] if "\t" in line else line for line in neutral]
    rng = random.Random(0)
    return [(line, emotion) for emotion in EMOTIONS
            for line in rng.sample(sorted(set(by_class[emotion])), SPOKEN_PER_CLASS)]


def collect_spoken() -> list[dict]:
    from scripts.spoken_dialogues import SAMPLE_RATE, speak, write_wav

    from moodlens.options import AnalyzeOptions

    options = AnalyzeOptions(modalities=("text", "voice"))
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (line, emotion) in enumerate(spoken_lines()):
            audio = speak(line, "en-us", 50, Path(tmp))
            path = Path(tmp) / f"line{k}.wav"
            silence = np.zeros(SAMPLE_RATE // 2, np.float32)
            write_wav(path, np.concatenate([silence, audio, silence]))
            files.append(_analysed(path, emotion, f"line{k % FOLDS}", options))
    return files


def collect_dialogues() -> list[dict]:
    """Each analysed turn of the spoken MELD dev dialogues (scripts/spoken_dialogues.py: espeak-ng,
    one voice per speaker), labelled with the true line it overlaps most: MELD's words, neutral
    ones included, in synthetic voices over a whole conversation, which is what the voice is
    centred over. Folds by dialogue."""
    from scripts.spoken_dialogues import DEV_CSV, build

    from moodlens.fusion import file_jitter
    from moodlens.options import AnalyzeOptions
    from moodlens.pipeline import analyze

    options = AnalyzeOptions(modalities=("text", "voice"), speakers=None)
    files = []
    for k, dialogue in enumerate(build(DEV_CSV, ROOT / ".cache" / "spoken_dialogues", DIALOGUES)):
        turns = _turns(analyze(dialogue.wav, options).to_dict())
        jitter = file_jitter([_results(turn["per_modality"]) for turn in turns])
        for t, turn in enumerate(turns):
            overlaps = [min(turn["end"], line.end) - max(turn["start"], line.start) for line in dialogue.lines]
            best = int(np.argmax(overlaps))
            if overlaps[best] > 0:
                files.append({"name": f"{dialogue.wav.stem}#{t}", "label": EMOTIONS.index(dialogue.lines[best].emotion),
                              "group": f"dialogue{k % FOLDS}", "turns": [turn], "jitter": jitter})
    return files


COLLECTORS: dict[str, Callable[[], list[dict]]] = {"meld": collect_meld, "ravdess": collect_ravdess,
                                                   "spoken": collect_spoken, "dialogues": collect_dialogues}


def _results(per_modality: dict) -> dict:
    from moodlens.analysis import ModalityResult, Prediction

    def prediction(raw: dict | None) -> Prediction | None:
        return Prediction(**raw) if raw else None

    return {m: ModalityResult(prediction(r["emotion"]), prediction(r["sentiment"]), r["coverage"], r.get("detail", {}))
            for m, r in per_modality.items()}


def file_distribution(file: dict, how: str, params: dict, baselines: dict) -> np.ndarray | None:
    """The file's emotion distribution, duration-weighted over its turns: fused with `params`
    (how="fused"), or one expert's own (how = its name)."""
    from moodlens.fusion import FusionWeights, Trust, fuse_file

    per_modality = [_results(t["per_modality"]) for t in file["turns"]]
    if how == "fused":
        weights = FusionWeights(text=params["text"], face=params["face"], voice=params["voice"])
        trust = Trust(**{k: params[k] for k in TRUST_FIELDS})
        emotions = [e for e, _, _ in fuse_file(per_modality, weights, baselines, trust, jitter=file.get("jitter"))]
    else:
        emotions = [r[how].emotion if how in r and r[how].coverage > 0 else None for r in per_modality]
    total, weight = np.zeros(len(EMOTIONS)), 0.0
    for turn, emotion in zip(file["turns"], emotions, strict=True):
        if emotion is not None:
            seconds = max(turn["end"] - turn["start"], 0.05)
            total += seconds * np.array([emotion.probabilities[e] for e in EMOTIONS])
            weight += seconds
    return total / weight if weight else None


def scores(files: list[dict], how: str, params: dict, baselines: dict) -> dict[str, float]:
    """Accuracy, macro-F1 over the classes present and mean log-likelihood; a file nothing was
    read from counts as wrong, at chance likelihood."""
    truth, predicted, loglik = [], [], 0.0
    for file in files:
        p = file_distribution(file, how, params, baselines)
        truth.append(file["label"])
        predicted.append(int(p.argmax()) if p is not None else -1)
        loglik += math.log(max(float(p[file["label"]]), 1e-4)) if p is not None else math.log(1 / 7)
    f1s = []
    for c in sorted(set(truth)):
        tp = sum(t == c and q == c for t, q in zip(truth, predicted, strict=True))
        fp = sum(t != c and q == c for t, q in zip(truth, predicted, strict=True))
        fn = sum(t == c and q != c for t, q in zip(truth, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": sum(t == q for t, q in zip(truth, predicted, strict=True)) / len(files),
            "hits": sum(t == q for t, q in zip(truth, predicted, strict=True)), "count": len(files),
            "macro_f1": float(np.mean(f1s)), "loglik": loglik / len(files)}


# Nats of mean log-likelihood that each accuracy point lost to harm costs, times 100: enough to
# make "no harm" a constraint that the likelihood is then maximised under.
HARM_PENALTY = 100.0
# The expert each regime is led by, whose accuracy fused must not fall below. On the MELD clips
# text and voice both matter, but the floor is the text's: the voice alone is right on 7 of 11
# there because TV voices are trusted however unlike its training they sound, and by that measure
# (atypicality) espeak-ng's voices are less unlike, so holding fused to the voice on 11 clips
# cost the text a tenth of the spoken dialogues' lines. The voice counts on MELD as far as the
# other regimes allow.
LEADS = {"meld": "text", "ravdess": "voice", "spoken": "text", "dialogues": "text"}


def floors_of(regimes: dict[str, list[dict]], baselines: dict) -> dict[str, float]:
    """Per regime, the accuracy of its leading expert alone: what fusion must not fall below."""
    return {name: scores(files, LEADS[name], {}, baselines)["accuracy"] for name, files in regimes.items()}


def objective(regimes: dict[str, list[dict]], params: dict, baselines: dict,
              floors: dict[str, float] | None = None) -> float:
    """Mean over regimes of the fused mean log-likelihood, less HARM_PENALTY times any accuracy
    shortfall below that regime's leading expert: fusion that never does harm, then does good."""
    floors = floors or floors_of(regimes, baselines)
    total = 0.0
    for name, files in regimes.items():
        fused = scores(files, "fused", params, baselines)
        total += fused["loglik"] + HARM_PENALTY * min(0.0, fused["accuracy"] - floors[name])
    return total / len(regimes)


def voice_details(files: list[dict], key: str) -> list[float]:
    """The voice's `key` detail over these files' judged turns, where it has one."""
    return [v for f in files for t in f["turns"] if (t["per_modality"].get("voice") or {}).get("emotion")
            and (v := t["per_modality"]["voice"]["detail"].get(key)) is not None]


def read_off(files: list[dict], key: str, percentile: float, digits: int) -> float:
    """A percentile of the voice's `key` detail over these files (the RAVDESS regime); 1e9 (never)
    without any."""
    values = voice_details(files, key)
    return round(float(np.percentile(values, percentile)), digits) if values else 1e9


# Searched in full before the coordinate ascent: the weights that trade text against voice.
# Ascent from one start alone stopped, whatever the penalty, at a fit that let a confident
# synthetic voice take lines from the text; and from the best of this search alone, once the
# voice's human pitch counted, at one that scored 0.1 nats below a fit it could not reach. So it
# ascends from each of the ASCENT_STARTS best points of this search and keeps the best ascent.
COARSE: dict[str, tuple[float, ...]] = {
    "text": (0.6, 0.8, 1.0),
    "voice": GRIDS["voice"],
    "voice_halving": GRIDS["voice_halving"],
    "text_neutral": (0.0, 0.5, 1.0),
}
ASCENT_STARTS = 5


def fit(regimes: dict[str, list[dict]], baselines: dict, start: dict) -> dict:
    """The best of coordinate ascents over GRIDS, each until a full pass changes nothing (3 at
    most), from the ASCENT_STARTS best points of a full search over COARSE (the rest at `start`);
    the voice's typicality and human-pitch limits are read off the RAVDESS files given (read_off)."""
    floors = floors_of(regimes, baselines)
    real = regimes.get("ravdess", [])
    start = start | {"voice_typical": read_off(real, "atypicality", TYPICAL_PERCENTILE, 2),
                     "voice_human": read_off(real, "pitch_jitter", HUMAN_PERCENTILE, 3)}
    trials = [start | dict(zip(COARSE, values, strict=True)) for values in itertools.product(*COARSE.values())]
    scored = sorted(((objective(regimes, trial, baselines, floors), k) for k, trial in enumerate(trials)), reverse=True)
    ascents = [ascend(regimes, baselines, floors, trials[k], score) for score, k in scored[:ASCENT_STARTS]]
    return max(ascents, key=lambda pair: pair[0])[1]


def ascend(regimes: dict[str, list[dict]], baselines: dict, floors: dict[str, float], params: dict,
           best: float) -> tuple[float, dict]:
    """Coordinate ascent over GRIDS from `params` (scoring `best`) until a full pass changes nothing
    (3 at most): (its score, where it stopped)."""
    for _ in range(3):
        changed = False
        for name, grid in GRIDS.items():
            for value in grid:
                trial = params | {name: value}
                score = objective(regimes, trial, baselines, floors)
                if score > best + 1e-9:
                    params, best, changed = trial, score, True
        if not changed:
            break
    return best, params


def measure_baselines(files: list[dict]) -> dict:
    """Each non-text expert's mean output over the utterances, plus one pseudo-count per class."""
    from moodlens.fusion import Baseline
    from moodlens.labels import SENTIMENTS

    out = {}
    for name in EXPERT_NAMES[1:]:
        seen = [t["per_modality"][name] for f in files for t in f["turns"]
                if (t["per_modality"].get(name) or {}).get("emotion")]
        if seen:
            emotion = (np.sum([[r["emotion"]["probabilities"][e] for e in EMOTIONS] for r in seen], axis=0) + 1) / (
                len(seen) + 7)
            sentiment = (np.sum([[r["sentiment"]["probabilities"][s] for s in SENTIMENTS] for r in seen], axis=0)
                         + 1) / (len(seen) + 3)
            out[name] = Baseline(emotion, sentiment)
    return out


def cross_validated(regimes: dict[str, list[dict]], baselines: dict, start: dict) -> dict[str, dict]:
    """Per regime, the fused scores of each fold's files under the fit made without that fold."""
    groups = {name: sorted({f["group"] for f in files}) for name, files in regimes.items()}
    held: dict[str, list[tuple[dict, dict]]] = {name: [] for name in regimes}
    for fold in range(FOLDS):
        def out_of_fold(name: str, f: dict, fold: int = fold) -> bool:
            return groups[name].index(f["group"]) % FOLDS == fold
        train = {n: [f for f in files if not out_of_fold(n, f)] for n, files in regimes.items()}
        params = fit(train, baselines, start)
        for name, files in regimes.items():
            held[name] += [(f, params) for f in files if out_of_fold(name, f)]
    out = {}
    for name, pairs in held.items():
        hits = [int((p := file_distribution(f, "fused", params, baselines)) is not None and p.argmax() == f["label"])
                for f, params in pairs]
        out[name] = {"hits": sum(hits), "count": len(hits)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "fusion")
    parser.add_argument("--regimes", default="meld,ravdess,spoken,dialogues")
    parser.add_argument("--refresh", action="store_true", help="analyse again instead of reading the cache")
    parser.add_argument("--write", action="store_true", help=f"store the fit in {OUT.name}")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    regimes = {}
    for name in args.regimes.split(","):
        cached = args.cache / f"{name}.json"
        if cached.is_file() and not args.refresh:
            regimes[name] = json.loads(cached.read_text(encoding="utf-8"))
        else:
            started = time.monotonic()
            regimes[name] = COLLECTORS[name]()
            cached.write_text(json.dumps(regimes[name]), encoding="utf-8")
            print(f"analysed {name}: {len(regimes[name])} files in {time.monotonic() - started:.0f} s")
    baselines = measure_baselines(regimes.get("meld", []))
    old = {"text": 1.0, "face": 0.34, "voice": 0.5, "face_change": 1e-9, "text_neutral": 1.0,
           "voice_typical": 1e9, "voice_halving": 1.0, "voice_human": 1e9, "voice_human_ramp": 0.01}
    # (release 0f4cec4: global weights, the TV baseline, no trust)
    # a fixed start, not the stored fit, so that a rerun finds the same optimum
    start = {"text": 1.0, "face": 0.3, "voice": 0.5, "face_change": 0.2, "text_neutral": 1.0, "voice_typical": 1e9,
             "voice_halving": 1.0, "voice_human": 1e9, "voice_human_ramp": 0.01}
    params = fit(regimes, baselines, start)
    print("fitted:", ", ".join(f"{k}={v:g}" for k, v in params.items()))
    for key in ("atypicality", "pitch_jitter"):
        for name, files in regimes.items():
            if values := voice_details(files, key):
                low, median, high = np.percentile(values, [10, 50, 90])
                print(f"voice {key} on {name}: 10/50/90 % {low:.3f} / {median:.3f} / {high:.3f}")
    cv = cross_validated(regimes, baselines, start)
    table: dict[str, dict[str, dict]] = {}
    print(f"\n{'regime':8} {'files':>5} " + " ".join(f"{h:>14}" for h in
          ("text alone", "face alone", "voice alone", "0f4cec4 wts", "fused (fit)", "fused (4-fold)")))
    for name, files in regimes.items():
        rows = {how: scores(files, how, params, baselines) for how in EXPERT_NAMES}
        rows["fused_old"] = scores(files, "fused", old, baselines)
        rows["fused"] = scores(files, "fused", params, baselines)
        table[name] = rows
        cells = [f"{r['accuracy']:.3f}/{r['macro_f1']:.3f}" for r in rows.values()]
        print(f"{name:8} {len(files):>5} " + " ".join(f"{c:>14}" for c in cells)
              + f" {cv[name]['hits'] / cv[name]['count']:>14.3f}")
    print("(accuracy/macro-F1; the 4-fold column is accuracy; a file with no reading counts as wrong)")
    meld = table.get("meld")
    if meld:
        print(f"MELD clips: text {meld['text']['hits']}/11, fused {meld['fused']['hits']}/11, "
              f"4-fold {cv['meld']['hits']}/11")
    if args.write:
        record = {
            "weights": {m: params[m] for m in EXPERT_NAMES},
            "trust": {k: params[k] for k in TRUST_FIELDS},
            "baselines": {name: {"emotion": [round(float(x), 6) for x in b.emotion],
                                 "sentiment": [round(float(x), 6) for x in b.sentiment]}
                          for name, b in baselines.items()},
            "how": "bench/fusion.py: baselines are each expert's mean output over the MELD test clips' utterances "
                   "(one pseudo-count per class, no labels); weights and trust maximise the mean over four regimes "
                   "(11 MELD clips; RAVDESS actors 17-20; XED lines and MELD dev dialogues spoken by espeak-ng) of "
                   "the mean log-likelihood of the true labels, fused never below each regime's leading expert, "
                   "by a full search over COARSE, then coordinate ascent on a grid; "
                   f"voice_typical is the {TYPICAL_PERCENTILE}th percentile of the voice's atypicality, and "
                   f"voice_human the {HUMAN_PERCENTILE}th of its pitch jitter, on RAVDESS actors 17-20",
            "leads": {name: LEADS[name] for name in table},
            "scores": {name: {how: {k: round(v, 4) for k, v in r.items()} for how, r in rows.items()}
                       for name, rows in table.items()},
            "cross_validated": cv,
        }
        OUT.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
