from __future__ import annotations

import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from moodlens.labels import SENTIMENTS
from moodlens.training.metrics import task_metrics

TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 1]
PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2, 1]


def test_matches_scikit_learn_on_a_hand_made_case() -> None:
    m = task_metrics(TRUE, PRED, SENTIMENTS)
    assert m.n == 10
    assert m.accuracy == pytest.approx(7 / 10)
    assert m.weighted_f1 == pytest.approx(f1_score(TRUE, PRED, average="weighted"))
    assert m.macro_f1 == pytest.approx(f1_score(TRUE, PRED, average="macro"))
    # by hand: negative has 2 of 3 recalled; predicted negative 3 times, 2 right
    assert m.per_class["negative"].recall == pytest.approx(2 / 3)
    assert m.per_class["negative"].precision == pytest.approx(2 / 3)
    assert m.per_class["positive"].support == 4
    assert [c.precision for c in m.per_class.values()] == pytest.approx(
        list(precision_score(TRUE, PRED, average=None)))
    assert [c.recall for c in m.per_class.values()] == pytest.approx(
        list(recall_score(TRUE, PRED, average=None)))
    assert m.confusion == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]


def test_a_class_never_predicted_or_seen_still_counts() -> None:
    m = task_metrics([0, 0, 1], [0, 0, 0], SENTIMENTS)
    assert m.per_class["neutral"].f1 == 0.0 and m.per_class["positive"].support == 0
    assert m.macro_f1 == pytest.approx(f1_score([0, 0, 1], [0, 0, 0], labels=[0, 1, 2],
                                                average="macro", zero_division=0))
    assert m.confusion == [[2, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError):
        task_metrics([0, 1], [0], SENTIMENTS)
    with pytest.raises(ValueError):
        task_metrics([], [], SENTIMENTS)
