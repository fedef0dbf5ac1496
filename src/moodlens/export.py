"""moodlens export: the LoRA text model (float32 or int8) and the face model (float32) as ONNX,
for onnxruntime. The voice expert is not exported: its encoder is Whisper's, already int8 in
CTranslate2, and its head is one linear layer in numpy.

int8 stores every weight MatMul as onnxruntime's MatMulNBits: 8-bit weights with one scale per
block of 128 inputs, multiplied in int8 (accuracy level 4) against activations quantized per
block of 128 too. Per-block activation scales are the point: dynamic quantization (one scale per
tensor, as QuantizeLinear does) lets the GELU outliers that feed the feed-forward output
projections blur every other value, and even with those projections kept in float its emotion
argmax agreed with float32 on only 95 % of MELD dev lines. Per block: 99 %, every MatMul in int8,
and faster (bench/export_text.py, whose --block-sizes measures 64/128/256).
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from moodlens.features import FACE_SIZE
from moodlens.labels import FER_LABELS
from moodlens.models import face
from moodlens.models.text import MANIFEST, ONNX_INPUTS, ONNX_KIND, LoraTextModel, encode_pairs, load_text_expert

QUANTIZE = ("int8",)
BLOCK_SIZE = 128  # inputs per weight and activation scale; 64 agrees a little more, 256 is faster
INT8_COMPUTE = 4  # MatMulNBits accuracy level: activations quantized to int8, integer dot products
OPSET = 17


@dataclass(frozen=True)
class ExportReport:
    folder: str
    quantize: str | None
    size_bytes: int
    seconds: float
    float_nodes: int  # text: weight MatMuls left in float32 (all without --quantize, none with int8)


class _Probabilities(torch.nn.Module):
    """The classifier with its inputs as separate tensors and softmax outputs, as ONNX wants."""

    def __init__(self, expert: LoraTextModel) -> None:
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
    if not isinstance(load_text_expert(weights, "cpu"), LoraTextModel):
        raise ValueError("only LoRA text models (finetune-text, and the shipped one) can be exported")
    # transformers' graph, on which the int8 layer choice (FLOAT_NODES) was measured
    expert = LoraTextModel(weights, "cpu", native=False)
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
        kept = weight_matmuls(plain)
        if quantize == "int8":
            quantize_blockwise(plain, folder / "model.onnx")
            kept = weight_matmuls(folder / "model.onnx")
    expert.tokenizer.save_pretrained(str(folder))
    manifest = {"kind": ONNX_KIND, "quantize": quantize, "model": asdict(expert.config),
                "metadata": expert.metadata, "float_nodes": kept, "opset": OPSET}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return ExportReport(str(folder), quantize, (folder / "model.onnx").stat().st_size,
                        round(time.perf_counter() - started, 1), len(kept))


class _FaceProbabilities(torch.nn.Module):
    def __init__(self, expert: face.FaceExpert) -> None:
        super().__init__()
        self.model = expert.model

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.model(faces).softmax(-1)


def export_face(out: str | Path, weights: str | None = None, quantize: str | None = None) -> ExportReport:
    """Write OUT/model.onnx (FER2013 probabilities, in FER's label order) and OUT/moodlens-export.json;
    `--face-weights OUT` uses it."""
    if quantize is not None:
        # 57k parameters in small convolutions: int8 would save 170 KB and no measurable time
        raise ValueError("--quantize applies to the text model; the face model exports as float32 only")
    started = time.perf_counter()
    expert = face.FaceExpert(weights)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 1, FACE_SIZE, FACE_SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's; tests/test_export.py checks the result
        torch.onnx.export(_FaceProbabilities(expert).eval(), (example,), str(folder / "model.onnx"),
                          input_names=[face.ONNX_INPUT], output_names=["probabilities"],
                          dynamic_axes={face.ONNX_INPUT: {0: "faces"}, "probabilities": {0: "faces"}},
                          opset_version=OPSET, dynamo=False)
    manifest = {"kind": face.ONNX_KIND, "quantize": None, "shipped": weights is None,
                "weights": weights or face.FaceExpressionWeights.FER2013_MINI_XCEPTION.value,
                "labels": list(FER_LABELS), "input": [FACE_SIZE, FACE_SIZE], "opset": OPSET}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return ExportReport(str(folder), None, (folder / "model.onnx").stat().st_size,
                        round(time.perf_counter() - started, 1), 0)


EXPORTERS = {"text": export_text, "face": export_face}


def quantize_blockwise(plain: Path, out: Path, block_size: int = BLOCK_SIZE) -> None:
    """Every weight MatMul of PLAIN as an 8-bit MatMulNBits, written to OUT as one file."""
    import logging

    import onnx

    # importing the quantizer calls logging.basicConfig(level=INFO) on the root logger, which
    # would print every node it looks at, here and in whatever logs later in this process
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    root.handlers[:], root.level = handlers, level
    quantizer = MatMulNBitsQuantizer(onnx.load(str(plain)), bits=8, block_size=block_size, is_symmetric=True,
                                     accuracy_level=INT8_COMPUTE)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)


def weight_matmuls(path: Path) -> list[str]:
    """MatMul nodes with a weight (an initializer) as one input: what int8 quantization touches."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and any(x in weights for x in n.input)]
