"""Language: told from the speech, read in it, translated for the text model; transcripts English only."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scripts.spoken_dialogues import write_wav

from moodlens.analysis import UtteranceResult, validate
from moodlens.errors import ModelNotFoundError, TranscriptError
from moodlens.language import (
    ENGLISH_SHARE,
    check_language,
    english_share,
    file_language,
    looks_english,
    transcript_language,
    trim_padding,
)
from moodlens.options import AnalyzeOptions
from moodlens.utterances import Utterance
from tests.conftest import MELD_DIR, SHARED, need_shared
from tests.media_factory import lines_joined

EMODB = SHARED / "data" / "speech" / "emodb"
XED = SHARED / "data" / "xed" / "Projections"
MELD_SAMPLES = SHARED / "data" / "meld" / "samples"


def test_language_codes_are_checked() -> None:
    assert check_language("auto") == "auto" and check_language(" DE ") == "de"
    with pytest.raises(ValueError, match="language must be auto or a code"):
        check_language("klingon")
    with pytest.raises(ValueError, match="language must be"):
        AnalyzeOptions(language="xx")
    assert AnalyzeOptions(language="Es").language == "es"


def test_file_language_is_the_one_spoken_longest() -> None:
    guess = file_language([(4.0, "de", 0.9), (1.0, "en", 0.99), (2.0, "de", 0.6), (3.0, None, None)])
    assert guess.code == "de" and guess.probability == pytest.approx((4 * 0.9 + 2 * 0.6) / 6, abs=1e-4)
    assert file_language([]).code is None and file_language([]).reason == "no speech"


def test_english_share_separates_meld_from_other_languages() -> None:
    meld = [row["Utterance"] for row in csv.DictReader(
        need_shared(MELD_DIR / "dev_sent_emo.csv").open(encoding="utf-8"))]
    rng = random.Random(0)
    assert min(english_share(rng.sample(meld, 10))[0] for _ in range(100)) >= ENGLISH_SHARE
    for path in sorted(need_shared(XED).glob("*.tsv")):
        lines = [row.rpartition("\t")[0] for row in path.read_text(encoding="utf-8").splitlines()]
        shares = [english_share(rng.sample(lines, 10)) for _ in range(100)]
        # a 10-line sample with too few words is "can't tell", never "English"
        assert all(share < ENGLISH_SHARE for share, count in shares if count >= 20), path.name


def test_transcripts_in_another_language_are_refused_not_read_as_english() -> None:
    dutch = ["Ik moest er gewoon even uit.", "Komt het wel goed met hem?", "Een kwart miljoen dollar?",
             "Na een moment van woede volgen er duizend nachten van spijt.", "Dit is de beste dag van mijn leven."]
    assert looks_english(dutch) is False
    with pytest.raises(ValueError, match="transcript is not English"):
        transcript_language(dutch, "auto")
    english = ["I can't believe you did that to me.", "Why didn't you tell me before?",
               "This is the best news of the year!", "We were on a break, and you know it."]
    assert transcript_language(english, "auto").code == "en"
    with pytest.raises(ValueError, match="--language de was given"):
        transcript_language(english, "de")
    short = transcript_language(["Okay."], "auto")
    assert short.code == "en" and "too few words" in (short.reason or "")


def test_a_non_english_transcript_file_is_a_one_line_error(media_dir: Path, tmp_path: Path) -> None:
    from moodlens.pipeline import analyze

    cues = ["Ik moest er gewoon even uit, want het was te veel voor mij.",
            "Komt het wel goed met hem, denk je? Ik weet het niet.",
            "Na een moment van woede volgen er duizend nachten van spijt."]
    srt = tmp_path / "dutch.srt"
    srt.write_text("\n".join(f"{i + 1}\n00:00:0{i},000 --> 00:00:0{i},900\n{line}\n" for i, line in enumerate(cues)),
                   encoding="utf-8")
    with pytest.raises(TranscriptError, match="not English") as caught:
        analyze(media_dir / "tone.wav", AnalyzeOptions(transcript=str(srt), modalities=("text",)))
    assert "\n" not in str(caught.value)


def _multilingual_whisper() -> None:
    from moodlens.models.weights import resolve_asr_model

    try:
        resolve_asr_model("whisper-base")
    except ModelNotFoundError as err:
        pytest.skip(f"multilingual Whisper is not installed ({err}); `make` installs it")


def _emodb(count: int) -> list[Path]:
    files = sorted(need_shared(EMODB).glob("*.flac"))
    return random.Random(1).sample(files, count)


def test_german_speech_is_told_and_translated_for_the_text_model() -> None:
    from moodlens.pipeline import analyze

    _multilingual_whisper()
    for path in _emodb(3):  # real German speech (EmoDB), each a short sentence
        analysis = analyze(path, AnalyzeOptions(modalities=("text",), diarize=False))
        data = analysis.to_dict()
        validate(data)
        assert analysis.language["code"] == "de" and analysis.language["given"] is False, analysis.language
        assert 0.5 < analysis.language["probability"] <= 1
        spoken = [u for u in analysis.utterances if u.text]
        assert spoken and all(u.language == "de" and u.text_en is not None for u in spoken)
        # the English, not the German, was read (a short split-off line may get no translation of its own)
        english = " ".join(u.text_en or "" for u in spoken).strip()
        assert english and english != " ".join(u.text for u in spoken)
        assert "translated to English" in (analysis.modalities["text"].languages or "")
        assert "English speech" in (analysis.modalities["voice"].languages or "")


def test_language_given_skips_detection() -> None:
    from moodlens.pipeline import analyze

    _multilingual_whisper()
    path = _emodb(1)[0]
    german = analyze(path, AnalyzeOptions(modalities=("text",), diarize=False, language="de"))
    assert german.language["code"] == "de" and german.language["given"] and german.language["probability"] is None
    english = analyze(path, AnalyzeOptions(modalities=("text",), diarize=False, language="en"))
    assert english.language["code"] == "en" and all(u.text_en is None for u in english.utterances)


def test_a_video_that_changes_language_is_read_in_each(tmp_path: Path) -> None:
    """Real English (MELD) then real German (EmoDB), a pause between: each part in its language."""
    from moodlens.asr import TranscribeOptions, transcribe

    _multilingual_whisper()
    english = lines_joined(sorted(need_shared(MELD_SAMPLES).glob("*.wav")), pause=0.0)
    german = lines_joined(_emodb(4), pause=0.0)
    pause = np.zeros(16_000 * 2, np.float32)
    path = tmp_path / "mixed.wav"
    write_wav(path, np.concatenate([english, pause, german]), 16_000)
    split = english.size / 16_000 + 1.0
    chunk = split + 1.0  # the first chunk holds the English; the cut lands in the pause
    utterances = list(transcribe(path, TranscribeOptions(chunk_seconds=chunk)))
    before = {u.language for u in utterances if u.end <= split}
    after = {u.language for u in utterances if u.start >= split}
    assert before == {"en"} and after == {"de"}, [(u.start, u.language, u.text) for u in utterances]
    assert " ".join(u.text_en or "" for u in utterances if u.language == "de").strip()


def test_lines_in_another_language_within_one_minute_are_read_in_it(tmp_path: Path) -> None:
    """Real English (MELD) then eight real German lines (EmoDB), all within one minute of audio:
    the minute is told English from its first speech, and the German lines, which tiny.en reads
    unsurely or as one invented line over and over, are each told again and read in German. A
    minute of German alone keeps every line German."""
    from moodlens.asr import TranscribeOptions, transcribe

    _multilingual_whisper()
    english = lines_joined(sorted(need_shared(MELD_SAMPLES).glob("*.wav")))
    german = lines_joined(_emodb(8))
    split = english.size / 16_000
    write_wav(tmp_path / "mixed.wav", np.concatenate([english, german]), 16_000)
    write_wav(tmp_path / "german.wav", german, 16_000)
    mixed = list(transcribe(tmp_path / "mixed.wav", TranscribeOptions()))
    assert_read_in_each(mixed, split)
    alone = list(transcribe(tmp_path / "german.wav", TranscribeOptions()))
    assert alone and all(u.language == "de" for u in alone), [(u.language, u.text) for u in alone]


def assert_read_in_each(utterances: Sequence[Utterance | UtteranceResult], split: float) -> None:
    """English before `split` (seconds), and at least half of the speech after it read in German,
    with the English the text model reads."""
    shown = [(round(u.start, 1), u.language, u.text) for u in utterances]
    assert all(u.language == "en" for u in utterances if u.end <= split), shown
    after = [u for u in utterances if u.start >= split - 0.2]
    told = sum(u.end - u.start for u in after if u.language == "de" and (u.text_en or "").strip())
    assert after and told >= 0.5 * sum(u.end - u.start for u in after), shown


def test_silence_gets_no_invented_language(media_dir: Path) -> None:
    from moodlens.asr import TranscribeOptions, load_asr_model
    from moodlens.language import detect_language

    _multilingual_whisper()
    model = load_asr_model(TranscribeOptions(model="whisper-base"))
    guess = detect_language(model, np.zeros(8_000, np.float32))
    assert guess.code is None and "too little speech" in (guess.reason or "")
    from moodlens.pipeline import analyze

    tone = analyze(media_dir / "tone.wav", AnalyzeOptions(modalities=("text",)))
    assert tone.language["code"] is None and tone.language["reason"] == "no speech" and not tone.utterances


def test_translated_segments_go_to_the_utterance_they_overlap() -> None:
    from moodlens.asr import assign_translations
    from moodlens.utterances import Utterance

    heard = [Utterance(0.0, 2.0, "Hallo zusammen."), Utterance(2.1, 4.0, "Wie geht's?"), Utterance(6.0, 6.5, "Ja.")]
    english = [Utterance(0.1, 1.8, "Hello everyone."), Utterance(1.9, 4.2, "How are you?"),
               Utterance(4.3, 5.0, "Well.")]
    assert assign_translations(heard, english) == ["Hello everyone.", "How are you? Well.", ""]
    assert assign_translations(heard, []) == ["", "", ""]


def test_trim_padding_keeps_the_audio_and_that_much_padding() -> None:
    features = np.zeros((80, 3000), np.float32)
    features[:, :231] = -0.6
    features[:, 100] = 0.0  # digital silence inside the audio is not padding
    trimmed = trim_padding(features, 1000)
    assert trimmed.shape == (80, 1232)  # 231 + 1000, made even for the encoder's stride of 2
    np.testing.assert_array_equal(trimmed, features[:, :1232])
    assert trim_padding(features[None], 1000).shape == (1, 80, 1232)
    assert trim_padding(features, 3000) is features
    features[7, 2100] = 0.2
    assert trim_padding(features, 1000) is features  # speech to 2101 + 1000 reaches the end
    assert trim_padding(np.zeros((80, 3000), np.float32), 500).shape == (80, 500)
