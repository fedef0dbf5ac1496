"""Our MPNet (models/mpnet.py) against transformers' on real MELD dev lines: the same token ids
and the same hidden states, so the shipped text model reads exactly what it was trained on."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from moodlens.models.mpnet import MPNetModel, PairTokenizer
from moodlens.models.text import encode_pairs
from moodlens.models.weights import resolve_text_encoder
from moodlens.transcripts import normalize_text
from tests.conftest import MELD_DIR, need_shared


@pytest.fixture(scope="module")
def folder() -> Path:
    return Path(resolve_text_encoder("all-mpnet-base-v2"))


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    """The first 40 dev lines, each with its three previous turns as context, as inference reads
    them; plus an empty context and a context far past 128 tokens (truncation cuts the context)."""
    with (need_shared(MELD_DIR) / "dev_sent_emo.csv").open(encoding="utf-8", newline="") as handle:
        rows = [normalize_text(r["Utterance"]) for r in csv.DictReader(handle)][:40]
    contexts = [" ".join(rows[max(0, i - 3): i]) for i in range(len(rows))]
    return [*contexts, "", "and then " * 200], [*rows, "Hi.", "What did you say?"]


def test_token_ids_match_transformers(folder: Path, pairs: tuple[list[str], list[str]]) -> None:
    from transformers import AutoTokenizer

    contexts, targets = pairs
    ours = encode_pairs(PairTokenizer(folder), contexts, targets, 128)
    theirs = encode_pairs(AutoTokenizer.from_pretrained(str(folder)), contexts, targets, 128)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    assert ours["input_ids"].shape[1] == 128  # the long context was cut to fit


def test_hidden_states_match_transformers(folder: Path, pairs: tuple[list[str], list[str]]) -> None:
    from transformers import AutoModel

    contexts, targets = pairs
    tokens = encode_pairs(PairTokenizer(folder), contexts, targets, 128)
    inputs = {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
    with torch.inference_mode():
        ours = MPNetModel.from_folder(folder)(**inputs).last_hidden_state
        theirs = AutoModel.from_pretrained(str(folder), add_pooling_layer=False).eval()(**inputs).last_hidden_state
    real = tokens["attention_mask"].bool()
    assert float((ours - theirs)[real].abs().max()) < 1e-4


def test_parameter_names_are_transformers(folder: Path) -> None:
    """Checkpoints and LoRA adapters name transformers' modules; ours must carry the same names."""
    from transformers import AutoModel

    theirs = AutoModel.from_pretrained(str(folder), add_pooling_layer=False).state_dict()
    assert MPNetModel.from_folder(folder).state_dict().keys() == theirs.keys()


def test_a_target_longer_than_the_limit_is_cut_rather_than_refused(folder: Path) -> None:
    """A turn past 128 tokens (a monologue, or Whisper repeating one line) with context before it:
    cutting the context alone cannot make room, so the longer of the two is cut, as
    transformers cuts it."""
    from transformers import AutoTokenizer

    contexts, targets = ["", "I said so.", "and then " * 200], ["Hi.", "kids are talking by the door. " * 40, "No!"]
    ours = encode_pairs(PairTokenizer(folder), contexts, targets, 128)
    theirs = encode_pairs(AutoTokenizer.from_pretrained(str(folder)), contexts, targets, 128)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    assert ours["input_ids"].shape[1] == 128
    assert all(int(row.sum()) > 0 for row in ours["target_mask"])  # every target is still read
