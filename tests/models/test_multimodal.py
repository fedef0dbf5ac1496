from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("torchvision", reason="the multimodal extra is not installed")

from moodlens.errors import ModelNotFoundError
from moodlens.models.multimodal import (
    MultimodalConfig,
    MultimodalSentimentModel,
    load_bundle,
    save_bundle,
)

CONFIG = MultimodalConfig(text_dim=32, clip_frames=4, clip_size=32, mel_frames=40)


def _inputs(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 32, generator=g),
            torch.randint(0, 255, (batch, 4, 32, 32, 3), generator=g, dtype=torch.uint8),
            torch.randn(batch, 64, 40, generator=g))


def test_masking_a_modality_changes_only_what_it_should() -> None:
    torch.manual_seed(0)
    model = MultimodalSentimentModel(CONFIG).eval()
    text, video, audio = _inputs()
    everything = model(text, video, audio, torch.ones(3, 3, dtype=torch.bool))
    no_video = torch.tensor([[True, False, True]] * 3)
    masked = model(text, video, audio, no_video)
    assert not torch.allclose(everything.emotion, masked.emotion)  # the fused head lost an input
    for modality in ("text", "audio"):  # the other modalities' own heads see exactly the same
        assert torch.equal(everything.aux_emotion[modality], masked.aux_emotion[modality])
    # a masked modality contributes nothing: whatever its input, the output is identical
    noise = torch.randint(0, 255, video.shape, dtype=torch.uint8)
    assert torch.equal(masked.emotion, model(text, noise, audio, no_video).emotion)
    # masking one row leaves the other rows untouched
    one_row = torch.tensor([[True, True, True], [True, False, True], [True, True, True]])
    partial = model(text, video, audio, one_row)
    assert torch.allclose(partial.emotion[[0, 2]], everything.emotion[[0, 2]], atol=1e-6)
    assert torch.allclose(partial.emotion[1], masked.emotion[1], atol=1e-6)


def test_bundle_round_trip(tmp_path: Path) -> None:
    model = MultimodalSentimentModel(CONFIG).eval()
    save_bundle(model, tmp_path / "best", {"trained_on": {"clips": 3}})
    loaded, document = load_bundle(tmp_path / "best")
    text, video, audio = _inputs()
    mask = torch.ones(3, 3, dtype=torch.bool)
    assert torch.equal(model(text, video, audio, mask).emotion, loaded(text, video, audio, mask).emotion)
    assert document["trained_on"] == {"clips": 3} and document["config"]["clip_size"] == 32
    with pytest.raises(ModelNotFoundError, match="not a moodlens multimodal model"):
        load_bundle(tmp_path)


def test_fusing_rows_encoded_one_at_a_time_matches_forward() -> None:
    """analyze --model encodes each clip as it streams past and fuses later; in eval mode that
    must give what one batched forward gives."""
    torch.manual_seed(0)
    model = MultimodalSentimentModel(CONFIG).eval()
    text, video, audio = _inputs()
    mask = torch.tensor([[True, True, False], [True, False, True], [False, True, True]])
    with torch.inference_mode():
        batched = model(text, video, audio, mask)
        inputs = {"text": text, "video": video, "audio": audio}
        embeddings = {m: torch.cat([model.encoders[m](x[i : i + 1]) for i in range(3)]) for m, x in inputs.items()}
        streamed = model.fuse(embeddings, mask)
    assert torch.allclose(batched.emotion, streamed.emotion, atol=1e-5)
    assert torch.allclose(batched.sentiment, streamed.sentiment, atol=1e-5)
    for m in inputs:
        assert torch.allclose(batched.aux_emotion[m], streamed.aux_emotion[m], atol=1e-5)


def test_a_typo_in_video_weights_is_an_error_not_random_init() -> None:
    from moodlens.models.multimodal import r3d_18_backbone

    with pytest.raises(ValueError, match="unknown video_weights 'KINETICS400_V2'"):
        r3d_18_backbone("KINETICS400_V2")


def test_a_broken_local_text_encoder_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    from moodlens.models.multimodal import FrozenTextBackbone

    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="cannot be loaded"):
        FrozenTextBackbone(str(tmp_path))


def test_a_missing_text_encoder_falls_back_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from moodlens.models.multimodal import FrozenTextBackbone

    with caplog.at_level("WARNING", logger="moodlens"):
        backbone = FrozenTextBackbone("bert-base-uncased")  # offline in tests: not installed here
    assert backbone.name == "all-MiniLM-L6-v2"
    assert "bert-base-uncased unavailable" in caplog.text and "using the packaged all-MiniLM-L6-v2" in caplog.text
