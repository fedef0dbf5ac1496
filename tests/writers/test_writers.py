from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from moodlens.analysis import Analysis, validate
from moodlens.writers import parse_formats, render_captions, render_csv, write
from tests.test_analysis import sample_analysis


def test_json_csv_srt_files(tmp_path: Path) -> None:
    analysis = sample_analysis()
    written = [Path(p) for p in write(analysis, tmp_path, ["json", "csv", "srt", "vtt"])]
    assert [p.name for p in written] == ["clip.analysis.json", "clip.utterances.csv", "clip.srt", "clip.vtt"]
    data = json.loads(written[0].read_text(encoding="utf-8"))
    validate(data)
    assert Analysis.from_dict(data) == analysis


def test_csv_has_a_row_per_utterance_with_probabilities() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(sample_analysis()))))
    assert len(rows) == 4
    assert rows[0]["emotion"] == "joy" and rows[0]["modalities_used"] == "text+face"
    assert [r["speaker"] for r in rows] == ["Rachel", "", "S1", "unknown"]
    assert float(rows[0]["emotion_p_joy"]) == pytest.approx(0.7)
    # emotion and sentiment both have a "neutral": each has a column of its own
    assert float(rows[0]["emotion_p_neutral"]) + float(rows[0]["sentiment_p_neutral"]) > 0
    assert len(set(next(csv.reader(io.StringIO(render_csv(sample_analysis())))))) == len(rows[0])
    assert rows[1]["emotion"] == ""  # no prediction stays empty, not invented


def test_captions_carry_emotion_and_sentiment() -> None:
    srt = render_captions(sample_analysis())
    assert "00:00:01,000 --> 00:00:02,500" in srt
    assert "Rachel: Oh it's so much more fun with you." in srt
    assert "[joy 0.70 · positive 0.80 · text+face]" in srt
    assert "S1: Yes." in srt and "unknown: Oh." not in srt  # no prefix where no one is known
    vtt = render_captions(sample_analysis(), vtt=True)
    assert vtt.startswith("WEBVTT") and "00:00:01.000 --> 00:00:02.500" in vtt
    assert "<v Rachel>Oh it's so much more fun with you." in vtt and "<v S1>Yes." in vtt


def test_parse_formats() -> None:
    assert parse_formats("json, srt") == ["json", "srt"]
    with pytest.raises(ValueError, match="unknown format"):
        parse_formats("json,pdf")


def test_html_page_is_self_contained_and_points_at_the_video(tmp_path: Path) -> None:
    import dataclasses
    import re

    analysis = sample_analysis()
    media = tmp_path / "videos" / "clip.mp4"
    sneaky = dataclasses.replace(analysis.utterances[0], text="</script><script>alert(1)</script>")
    analysis = dataclasses.replace(analysis, media=dataclasses.replace(analysis.media, path=str(media)),
                                   utterances=[sneaky, *analysis.utterances[1:]])
    (where,) = write(analysis, tmp_path / "out", ["html"])
    written = Path(where)
    html = written.read_text(encoding="utf-8")
    assert written.name == "clip.html"
    assert '"../videos/clip.mp4");' in html  # relative to the page, so the folder can move as a whole
    assert "function render(" in html and "<style>" in html
    assert not re.search(r"<(script|link)[^>]+(src|href)=", html)  # nothing fetched: no CDN, works offline
    assert html.count("</script>") == 1  # the utterance text can't close the script early
    payload = html[html.rindex("render(") + len("render("): html.rindex(', "../videos')]
    assert json.loads(payload.replace("<\\/", "</"))["utterances"][0]["text"].startswith("</script>")


def _spanish() -> Analysis:
    import dataclasses

    analysis = sample_analysis()
    spoken = dataclasses.replace(analysis.utterances[0], text="¡Es la mejor noticia del año!", language="es",
                                 language_probability=0.93, text_en="It's the best news of the year!")
    return dataclasses.replace(analysis, utterances=[spoken, *analysis.utterances[1:]],
                               language={"code": "es", "probability": 0.93, "given": False, "reason": None,
                                         "languages": {"es": 1.5}})


def test_every_writer_keeps_the_original_and_the_english() -> None:
    analysis = _spanish()
    data = json.loads(analysis.to_json())
    validate(data)
    assert data["utterances"][0]["text_en"] == "It's the best news of the year!" and data["language"]["code"] == "es"
    assert Analysis.from_dict(data) == analysis
    rows = list(csv.DictReader(io.StringIO(render_csv(analysis))))
    assert rows[0]["text"] == "¡Es la mejor noticia del año!" and rows[0]["language"] == "es"
    assert rows[0]["text_en"] == "It's the best news of the year!" and rows[1]["text_en"] == ""
    original = render_captions(analysis)
    english = render_captions(analysis, english=True)
    assert "¡Es la mejor noticia del año!" in original and "best news" not in original
    assert "It's the best news of the year!" in english and "¡Es" not in english
    assert "S1: Yes." in english  # lines already in English stay as they are
    assert parse_formats("srt-en,vtt-en") == ["srt-en", "vtt-en"]
