from __future__ import annotations

import numpy as np
import pytest

from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.text import TextExpert, TextHeadWeights, load_text_expert


def test_shipped_heads_load_with_their_dev_scores() -> None:
    expert = load_text_expert()
    dev = expert.metadata["dev"]
    assert dev["emotion_weighted_f1"] > 0.5 and dev["sentiment_weighted_f1"] > 0.6
    assert TextHeadWeights.MELD_MINILM_V1.path.stat().st_size < 2_000_000
    given = np.array(expert.metadata["sentiment_given_emotion"])
    assert given.shape == (7, 3) and np.allclose(given.sum(1), 1.0, atol=1e-3)


def test_clearly_angry_and_clearly_happy_lines() -> None:
    expert: TextExpert = load_text_expert()
    emotion, sentiment = expert.predict(
        ["I am so furious with you, get out of my apartment right now!",
         "Oh my god, this is wonderful, I'm so happy for you!"],
        ["", ""],
    )
    assert emotion.shape == (2, 7) and sentiment.shape == (2, 3)
    assert np.allclose(emotion.sum(1), 1.0) and np.allclose(sentiment.sum(1), 1.0)
    assert EMOTIONS[emotion[0].argmax()] == "anger"
    assert SENTIMENTS[sentiment[0].argmax()] == "negative"
    assert EMOTIONS[emotion[1].argmax()] == "joy"
    assert SENTIMENTS[sentiment[1].argmax()] == "positive"


def test_empty_input() -> None:
    emotion, sentiment = load_text_expert().predict([], [])
    assert emotion.shape == (0, 7) and sentiment.shape == (0, 3)


def test_context_changes_the_prediction() -> None:
    expert = load_text_expert()
    alone, _ = expert.predict(["Really?"], [""])
    after_news, _ = expert.predict(["Really?"], ["I'm pregnant! We're having a baby!"])
    assert not np.allclose(alone, after_news)


@pytest.mark.parametrize("bad", ["/nonexistent/heads.safetensors"])
def test_missing_weights_file(bad: str) -> None:
    with pytest.raises(FileNotFoundError):
        TextExpert(bad)
