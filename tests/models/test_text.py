from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.text import FrozenTextModel, LoraTextModel, TextHeadWeights, load_text_expert

SHIPPED = list(TextHeadWeights)


def test_default_is_the_fine_tuned_model() -> None:
    assert isinstance(load_text_expert(), LoraTextModel)
    assert isinstance(load_text_expert(str(TextHeadWeights.MELD_MINILM_V1.path)), FrozenTextModel)


@pytest.mark.parametrize("weights", SHIPPED, ids=lambda w: w.name)
def test_shipped_models_load_with_their_dev_scores(weights: TextHeadWeights) -> None:
    expert = load_text_expert(str(weights.path))
    dev = expert.metadata["dev"]
    assert dev["emotion_weighted_f1"] > 0.55 and dev["sentiment_weighted_f1"] > 0.64
    assert weights.path.stat().st_size < 20_000_000
    given = np.array(expert.metadata["sentiment_given_emotion"])
    assert given.shape == (7, 3) and np.allclose(given.sum(1), 1.0, atol=1e-3)


@pytest.mark.parametrize("weights", SHIPPED, ids=lambda w: w.name)
def test_clearly_angry_and_clearly_happy_lines(weights: TextHeadWeights) -> None:
    expert = load_text_expert(str(weights.path))
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


def test_order_of_inputs_does_not_change_results() -> None:
    """Length-sorted batching must put every result back in its row."""
    expert = load_text_expert()
    texts = ["No.", "I can't believe you did that to me, after everything!", "Okay, fine, whatever."]
    forward, _ = expert.predict(texts, ["", "", ""])
    backward, _ = expert.predict(texts[::-1], ["", "", ""])
    assert np.allclose(forward, backward[::-1], atol=1e-5)


def test_missing_weights_file() -> None:
    with pytest.raises(FileNotFoundError):
        FrozenTextModel("/nonexistent/heads.safetensors")


def test_merge_without_peft_equals_peft_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    """LoraTextModel merges the adapters itself (importing peft costs 2.3 s at start-up); the
    weights must be the ones peft's own merge_and_unload gives."""
    from safetensors.torch import load_file

    from moodlens.models.text import build_lora_classifier
    from moodlens.runtime import fast_bf16

    shipped = TextHeadWeights.MELD_MPNET_LORA_V1.path
    monkeypatch.setenv("MOODLENS_BF16", "0")  # float32 weights, to compare exactly
    fast_bf16.cache_clear()
    try:
        ours = LoraTextModel(shipped).model.state_dict()
    finally:
        fast_bf16.cache_clear()
    reference, _ = build_lora_classifier(LoraTextModel(shipped).config)
    reference.load_state_dict(load_file(str(shipped)), strict=False)
    reference.encoder = reference.encoder.merge_and_unload()
    theirs = reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) < 1e-5
    from moodlens.models.text import pretrained_encoder

    raw = pretrained_encoder(LoraTextModel(shipped).config)[0].state_dict()
    key = "encoder.layer.0.attention.attn.q.weight"
    assert float((ours[f"encoder.{key}"] - raw[key]).abs().max()) > 1e-3  # the adapters did change it


def test_a_file_without_adapters_is_refused(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    shipped = TextHeadWeights.MELD_MPNET_LORA_V1.path
    with safe_open(str(shipped), "pt") as handle:
        metadata = handle.metadata()
    heads_only = {k: v for k, v in load_file(str(shipped)).items() if not k.startswith("encoder.")}
    broken = tmp_path / "heads.safetensors"
    save_file(heads_only, str(broken), metadata)
    with pytest.raises(ValueError, match="not a LoRA text model"):
        LoraTextModel(broken)


def test_bf16_weights_give_what_autocast_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where bf16 is used, the linear layers' weights are stored in bf16 once rather than cast by
    autocast on every call: the probabilities must be the same."""
    import torch

    from moodlens.models.text import classify_pairs
    from moodlens.runtime import fast_bf16

    lines = ["Oh my God, he's lost it. He's totally lost it.", "What?", "I'm so happy for you!"]
    contexts = ["", "Joey, where were you?", "We're getting married!"]
    try:
        monkeypatch.setenv("MOODLENS_BF16", "0")
        fast_bf16.cache_clear()
        plain = LoraTextModel()
        assert not plain.bf16 and plain.model.emotion.weight.dtype == torch.float32
        monkeypatch.setenv("MOODLENS_BF16", "1")
        fast_bf16.cache_clear()
        stored = LoraTextModel()
        assert stored.bf16 and stored.model.emotion.weight.dtype == torch.bfloat16
        autocast = classify_pairs(plain.model, plain.tokenizer, contexts, lines, plain.config.max_tokens, bf16=True)
        for ours, theirs in zip(stored.predict(lines, contexts), autocast, strict=True):
            assert np.abs(ours - theirs).max() < 1e-6
    finally:
        fast_bf16.cache_clear()
