from moodlens.labels import EMOTIONS, FER_LABELS, FER_TO_MELD, SENTIMENTS, fer_to_meld_index


def test_label_orders_are_melds() -> None:
    assert EMOTIONS == ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
    assert SENTIMENTS == ("negative", "neutral", "positive")


def test_fer_columns_map_onto_meld_emotions() -> None:
    index = fer_to_meld_index()
    assert sorted(index) == list(range(7))
    for emotion, column in zip(EMOTIONS, index, strict=True):
        assert FER_TO_MELD[FER_LABELS[column]] == emotion
