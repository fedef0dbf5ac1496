"""The text expert: each utterance read with the turns before it as context."""

from __future__ import annotations

import numpy as np

from moodlens.experts.text import TextExpert
from moodlens.options import AnalyzeOptions
from moodlens.utterances import Utterance

LINES = ("We got the apartment!", "Wait, you got it?", "", "I can't believe they took my sandwich.")


def test_judging_one_utterance_reads_the_same_context_as_judging_all() -> None:
    expert = TextExpert(AnalyzeOptions())
    utterances = [Utterance(start=float(i), end=i + 0.9, text=text) for i, text in enumerate(LINES)]
    every = expert.judge(utterances)
    assert every[2] is None  # nothing said: nothing to read
    last = expert.judge(utterances, only=[3])
    # the others are context only (a live utterance's earlier turns were judged when they ended)
    assert last[:3] == [None, None, None]
    assert every[3] is not None and last[3] is not None
    assert last[3].detail == every[3].detail == {"context_turns": 3}
    assert every[3].emotion is not None and last[3].emotion is not None
    # one row alone or in a padded batch: the same up to bf16 rounding
    np.testing.assert_allclose(list(last[3].emotion.probabilities.values()),
                               list(every[3].emotion.probabilities.values()), atol=0.02)
    # context changes the reading: the same line alone is read otherwise
    alone = expert.judge(utterances[3:])[0]
    assert alone is not None and alone.detail == {"context_turns": 0}
    assert alone.emotion is not None
    assert not np.allclose(list(alone.emotion.probabilities.values()),
                           list(last[3].emotion.probabilities.values()), atol=1e-3)
