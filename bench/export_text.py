"""The text model exported to ONNX, float32 and int8, against the torch original on MELD dev.

    .venv/bin/python bench/export_text.py [--meld-csv ../shared/data/meld/MELD/dev_sent_emo.csv]
        [--block-sizes 64 256]

Prints, for the shipped torch model (float32, and bfloat16 where the CPU has it natively, as
`analyze` runs it there), for `moodlens export text` with and without `--quantize int8`, for
int8 at other block sizes (--block-sizes), and for the previous release's int8 (dynamic
quantization, one activation scale per tensor, feed-forward outputs kept in float): emotion and
sentiment weighted F1 on every dev row, how often each export's argmax agrees with torch
float32, the largest probability difference, and the time to score all rows (2 threads on the
reference machine; batches of 64, length-sorted, as `analyze` batches them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "data" / "meld" / "MELD" / "dev_sent_emo.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meld-csv", type=Path, default=DEV)
    parser.add_argument("--block-sizes", type=int, nargs="*", default=[],
                        help="also time int8 with these block sizes (the shipped one is 128)")
    args = parser.parse_args()
    if not args.meld_csv.is_file():
        sys.exit(f"{args.meld_csv} is absent: this benchmark needs MELD dev in ../shared")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sklearn.metrics import f1_score

    from moodlens.data.meld import dialogue_texts, read_meld_csv
    from moodlens.export import export_text, quantize_blockwise, weight_matmuls
    from moodlens.features import text_with_context
    from moodlens.models.text import LoraTextModel, OnnxTextModel, classify_pairs
    from moodlens.runtime import fast_bf16

    rows = read_meld_csv(args.meld_csv)
    torch_model = LoraTextModel(None, "cpu", native=False)  # float32 weights; bf16 by autocast only
    pairs = [text_with_context(h, torch_model.config.context_turns) for h in dialogue_texts(rows)]
    targets, contexts = [p[0] for p in pairs], [p[1] for p in pairs]
    truth_e, truth_s = np.array([r.emotion for r in rows]), np.array([r.sentiment for r in rows])

    def timed(predict: object) -> tuple[np.ndarray, np.ndarray, float]:
        start = time.perf_counter()
        emotion, sentiment = predict()
        return emotion, sentiment, time.perf_counter() - start

    def torch_run(bf16: bool) -> tuple[np.ndarray, np.ndarray]:
        return classify_pairs(torch_model.model, torch_model.tokenizer, contexts, targets,
                              torch_model.config.max_tokens, bf16=bf16)

    results = {"torch float32 (shipped)": timed(lambda: torch_run(False))}
    if fast_bf16():
        results["torch bfloat16 (analyze here)"] = timed(lambda: torch_run(True))
    reference = results["torch float32 (shipped)"]
    with tempfile.TemporaryDirectory() as tmp:
        for quantize in (None, "int8"):
            folder = Path(tmp) / (quantize or "float32")
            report = export_text(folder, quantize=quantize)
            expert = OnnxTextModel(folder)
            label = f"ONNX {quantize or 'float32'} ({report.size_bytes / 1e6:.0f} MB)"
            results[label] = timed(lambda expert=expert: expert.predict(targets, contexts))
        plain = Path(tmp) / "float32" / "model.onnx"
        for block_size in args.block_sizes:
            folder = variant(Path(tmp), f"blocks-{block_size}",
                             lambda out, b=block_size: quantize_blockwise(plain, out, b))
            expert = OnnxTextModel(folder)
            label = f"ONNX int8, blocks of {block_size}"
            results[label] = timed(lambda expert=expert: expert.predict(targets, contexts))
        # the previous release's recipe: one activation scale per tensor, feed-forward outputs in float
        from onnxruntime.quantization import QuantType, quantize_dynamic

        folder = variant(Path(tmp), "dynamic", lambda out: quantize_dynamic(
            str(plain), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True,
            nodes_to_exclude=[n for n in weight_matmuls(plain) if "/output/dense/MatMul" in n]))
        expert = OnnxTextModel(folder)
        results["ONNX int8 dynamic (before)"] = timed(lambda expert=expert: expert.predict(targets, contexts))

    print(f"{args.meld_csv.name}: {len(rows)} rows; agreement and differences are against torch float32")
    print(f"{'model':34}{'emotion wF1':>12}{'sentiment wF1':>15}{'agree e/s':>14}{'max |dp|':>10}{'seconds':>9}")
    for name, (emotion, sentiment, seconds) in results.items():
        wf1 = [f1_score(t, p.argmax(1), average="weighted") for t, p in ((truth_e, emotion), (truth_s, sentiment))]
        agree = [(p.argmax(1) == r.argmax(1)).mean() for p, r in ((emotion, reference[0]), (sentiment, reference[1]))]
        diff = max(np.abs(emotion - reference[0]).max(), np.abs(sentiment - reference[1]).max())
        print(f"{name:34}{wf1[0]:>12.4f}{wf1[1]:>15.4f}{agree[0]:>8.3f}/{agree[1]:.3f}{diff:>10.3f}{seconds:>9.1f}")


def variant(tmp: Path, name: str, write: object) -> Path:
    """A copy of the int8 export's folder whose model.onnx WRITE(path) replaces."""
    folder = tmp / name
    folder.mkdir()
    for item in (tmp / "int8").iterdir():
        if item.name != "model.onnx":
            (folder / item.name).write_bytes(item.read_bytes())
    write(folder / "model.onnx")
    return folder


if __name__ == "__main__":
    main()
