"""`analyze --model DIR/best`: utterances -> text/video/audio features -> one multimodal model.

The bundle's video branch sees whole frames (r3d_18), and its audio branch log-mels: in the
Analysis they fill the `face` (how it looks) and `voice` (how it sounds) slots, and the
modality descriptions say exactly which model produced them and what it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import torch

from moodlens.analysis import FusionSettings, ModalityInfo, ModalityResult, Prediction, UtteranceResult
from moodlens.experts import MediaContext
from moodlens.features import utterance_features
from moodlens.fusion import assemble
from moodlens.labels import EMOTIONS, SENTIMENTS
from moodlens.models.multimodal import MODALITIES, FrozenTextBackbone, MultimodalSentimentModel, load_bundle
from moodlens.utterances import Utterance

Progress = Callable[[str, float], None]
SLOTS = {"text": "text", "video": "face", "audio": "voice"}  # model modality -> Analysis modality


@lru_cache(maxsize=2)
def load_feature_model(folder: str, device: str = "cpu"
                       ) -> tuple[MultimodalSentimentModel, dict, FrozenTextBackbone]:
    model, document = load_bundle(folder, device)
    backbone = FrozenTextBackbone(document["config"]["text_encoder"], model.config.text_max_tokens, device)
    if backbone.dim != model.config.text_dim:
        raise ValueError(f"{folder}: trained on {model.config.text_encoder} features, but that encoder "
                         f"could not be loaded here (got {backbone.name})")
    return model, document, backbone


def analyze_feature_level(media: MediaContext, utterances: Sequence[Utterance]
                          ) -> tuple[list[UtteranceResult], dict[str, ModalityInfo], FusionSettings]:
    info, options, notes, damage, report = media.info, media.options, media.notes, media.damage, media.report
    model, document, backbone = load_feature_model(str(options.model), options.device)
    config = model.config
    spec = config.feature_spec()  # what the model was trained on: the cache was made with the same
    spans = [(u.start, u.end) for u in utterances]

    # Each modality is encoded as its inputs complete, and only the 128-d embeddings are kept,
    # so memory does not grow with video length (a raw clip is 600 KB, its embedding 512 bytes).
    embeddings: dict[str, torch.Tensor] = {
        m: torch.zeros(len(spans), config.embed_dim, device=options.device) for m in MODALITIES}
    present = torch.zeros(len(spans), len(MODALITIES), dtype=torch.bool)
    with torch.inference_mode():
        report("text", 0.0)
        for begin in range(0, len(utterances), 16):
            rows = slice(begin, begin + 16)
            features = torch.from_numpy(backbone.embed([u.text for u in utterances[rows]]))
            embeddings["text"][rows] = model.encoders["text"](features.to(options.device))
        present[:, 0] = torch.tensor([bool(u.text) for u in utterances], dtype=torch.bool)
        report("text", 1.0)
        report("face", 0.0)
        stages = {"video": "face", "audio": "voice"}
        for kind, i, features in utterance_features(info.path, spans, spec, notes, damage,
                                                    video=info.has_video, audio=info.has_audio):
            if kind == "audio":
                report("face", 1.0)
            report(stages[kind], i / max(len(spans), 1))
            embeddings[kind][i] = model.encoders[kind](torch.from_numpy(features[None]).to(options.device))[0]
            present[i, MODALITIES.index(kind)] = True
        report("face", 1.0)
        report("voice", 1.0)
        report("fusion", 0.0)
        per_modality, fused = [], []
        for begin in range(0, len(utterances), 16):
            rows = range(begin, min(begin + 16, len(utterances)))
            mask = present[begin : rows.stop]
            out = model.fuse({m: e[begin : rows.stop] for m, e in embeddings.items()}, mask.to(options.device))
            for row in range(len(rows)):
                modalities, prediction = _heads(out, row, mask[row])
                per_modality.append(modalities)
                fused.append(prediction)
    results = assemble(utterances, per_modality, fused)
    report("fusion", 1.0)
    fusion = FusionSettings("feature-level", model=str(options.model))
    return results, _modality_info(document, backbone, results), fusion


def _probabilities(logits: torch.Tensor, labels: Sequence[str]) -> Prediction:
    return Prediction.from_probabilities(labels, logits.float().softmax(-1).cpu().numpy())


def _heads(out: object, row: int, mask: torch.Tensor
           ) -> tuple[dict[str, ModalityResult], tuple[Prediction | None, Prediction | None, list[str]]]:
    """The auxiliary heads as per-modality results, and the fused head as the fusion."""
    present = [m for m, on in zip(MODALITIES, mask.tolist(), strict=True) if on]
    per_modality = {
        SLOTS[m]: ModalityResult(_probabilities(out.aux_emotion[m][row], EMOTIONS),
                                 _probabilities(out.aux_sentiment[m][row], SENTIMENTS), coverage=1.0,
                                 detail={"head": f"auxiliary {m} head of the multimodal model"})
        for m in present
    }
    if not present:
        return per_modality, (None, None, [])
    return per_modality, (_probabilities(out.emotion[row], EMOTIONS), _probabilities(out.sentiment[row], SENTIMENTS),
                          [SLOTS[m] for m in present])


def _modality_info(document: dict, backbone: FrozenTextBackbone, results: Sequence[UtteranceResult]
                   ) -> dict[str, ModalityInfo]:
    trained = document.get("trained_on", {})
    dev = document.get("dev", {})
    where = (f"{trained.get('clips')} clips of {trained.get('root')} ({trained.get('split')}); "
             f"dev weighted-F1 emotion {dev.get('emotion_weighted_f1')}, sentiment {dev.get('sentiment_weighted_f1')}")
    models = {"text": f"{backbone.name} (frozen) [CLS] -> 128, in a feature-level multimodal model",
              "face": f"{trained.get('video_init', 'r3d_18')} over whole frames (not face crops) -> 128",
              "voice": "Conv1d + BatchNorm over 64-band log-mel -> 128"}
    info = {}
    for slot in ("text", "face", "voice"):
        used = any(slot in r.modalities_used for r in results)
        info[slot] = ModalityInfo(available=used, model=models[slot], trained_on=where,
                                  reason=None if used else f"no {slot} input found in this file")
    return info
