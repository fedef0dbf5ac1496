"""moodlens export: the LoRA text model as ONNX, in float32 or int8, for onnxruntime.

int8 is onnxruntime's dynamic quantization (weights per channel, activations per batch), of
every weight MatMul except the feed-forward output projections (`layer.N.output.dense`). Those
read GELU activations with large outliers, and one int8 scale for such a tensor blurs the rest:
quantized alone, they move the emotion argmax on 16 % of dev lines (every other group alone: at
most 4 %). With them in int8 too, dev emotion weighted F1 is 0.608 and the argmax agrees with
float32 on 86 % of lines; kept in float, 0.616 and 95 % (bench/export_text.py, with --search for
the per-group measurement).
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from moodlens.models.text import MANIFEST, ONNX_INPUTS, ONNX_KIND, LoraTextExpert, encode_pairs, load_text_expert

QUANTIZE = ("int8",)
FLOAT_NODES = "/output/dense/MatMul"  # the feed-forward output projections, kept in float
OPSET = 17


@dataclass(frozen=True)
class ExportReport:
    folder: str
    quantize: str | None
    size_bytes: int
    seconds: float
    float_nodes: int  # weight MatMuls left in float32 (all of them without --quantize)


class _Probabilities(torch.nn.Module):
    """The classifier with its inputs as separate tensors and softmax outputs, as ONNX wants."""

    def __init__(self, expert: LoraTextExpert) -> None:
        super().__init__()
        self.model = expert.model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, target_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        emotion, sentiment = self.model({"input_ids": input_ids, "attention_mask": attention_mask,
                                         "target_mask": target_mask})
        return emotion.softmax(-1), sentiment.softmax(-1)


def export_text(out: str | Path, weights: str | None = None, quantize: str | None = None) -> ExportReport:
    """Write OUT/model.onnx, the tokenizer and OUT/moodlens-export.json; `--text-weights OUT` uses it."""
    if quantize not in (None, *QUANTIZE):
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    started = time.perf_counter()
    if not isinstance(load_text_expert(weights, "cpu"), LoraTextExpert):
        raise ValueError("only LoRA text models (finetune-text, and the shipped one) can be exported")
    # transformers' graph, on which the int8 layer choice (FLOAT_NODES) was measured
    expert = LoraTextExpert(weights, "cpu", native=False)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    example = encode_pairs(expert.tokenizer, ["Where were you?"], ["I was at the hotel."], expert.config.max_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "model.onnx" if quantize else folder / "model.onnx"
        axes = {name: {0: "batch", 1: "tokens"} for name in ONNX_INPUTS}
        with warnings.catch_warnings():
            # the tracer's warnings are about the exporter; tests/test_export.py checks the result
            warnings.simplefilter("ignore")
            torch.onnx.export(_Probabilities(expert).eval(), tuple(example[name] for name in ONNX_INPUTS),
                              str(plain), input_names=list(ONNX_INPUTS), output_names=["emotion", "sentiment"],
                              dynamic_axes={**axes, "emotion": {0: "batch"}, "sentiment": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        kept = _weight_matmuls(plain)
        if quantize == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            kept = [n for n in kept if FLOAT_NODES in n]
            quantize_dynamic(str(plain), str(folder / "model.onnx"), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], per_channel=True, nodes_to_exclude=kept)
    expert.tokenizer.save_pretrained(str(folder))
    manifest = {"kind": ONNX_KIND, "quantize": quantize, "model": asdict(expert.config),
                "metadata": expert.metadata, "float_nodes": kept, "opset": OPSET}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return ExportReport(str(folder), quantize, (folder / "model.onnx").stat().st_size,
                        round(time.perf_counter() - started, 1), len(kept))


def _weight_matmuls(path: Path) -> list[str]:
    """MatMul nodes with a weight (an initializer) as one input: what dynamic quantization touches."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and any(x in weights for x in n.input)]
