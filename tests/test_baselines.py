from __future__ import annotations

import numpy as np
import pytest

from moodlens.baselines import nade_emotion, sentiment_from_score, textblob_sentiment, vader_sentiment
from moodlens.labels import EMOTIONS, SENTIMENTS

LINES = ["I hate you, this is the worst, awful day.", "The meeting is at three.",
         "I love this, it's wonderful and great!"]


def test_score_thresholds() -> None:
    predicted = sentiment_from_score(np.array([-0.5, -0.05, 0.0, 0.04, 0.05]), 0.05)
    assert [SENTIMENTS[i] for i in predicted] == ["negative", "negative", "neutral", "neutral", "positive"]


@pytest.mark.parametrize("baseline", [vader_sentiment, textblob_sentiment])
def test_lexicon_sentiment_on_clear_lines(baseline) -> None:
    assert [SENTIMENTS[i] for i in baseline(LINES)] == ["negative", "neutral", "positive"]


def test_nade_maps_onto_meld_emotions() -> None:
    lines = ["I am so angry at you, get out!", "I love it, wonderful!", "I am so furious with you!"]
    predicted = [EMOTIONS[i] for i in nade_emotion(lines)]
    # nade rates the last line anger 0.46: under the 0.5 bar, so it counts as neutral
    assert predicted == ["anger", "joy", "neutral"]
