"""The text model on one short line: bf16 by autocast alone against bf16 weights stored once.

    .venv/bin/python bench/text_bf16.py [--repeat R]

Where the CPU has native bf16 (models/text.py's fast_bf16), `analyze` runs MPNet in bf16. Under
the CLI's mmap threshold (process.limit_heap_growth), autocast re-casting 85M linear weights on
every call dominates a short line; LoraTextModel stores them in bf16 once. Prints the best of R
calls for each, and the largest difference in their probabilities.
"""

from __future__ import annotations

import argparse
import os
import time

LINE = "So I'm gonna go through the hotel and see if there's any other weddings going on."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["MOODLENS_BF16"] = "1"  # emulated, and slow, on a CPU without bf16: the ratio is what counts
    import numpy as np

    from moodlens.models.text import LoraTextModel, classify_pairs
    from moodlens.process import keep_memory_flat
    from moodlens.runtime import fast_bf16

    keep_memory_flat()  # as the CLI does
    stored = LoraTextModel()  # bf16 weights
    os.environ["MOODLENS_BF16"] = "0"
    fast_bf16.cache_clear()
    plain = LoraTextModel()  # float32 weights; bf16 only through autocast below

    def autocast() -> tuple[np.ndarray, np.ndarray]:
        return classify_pairs(plain.model, plain.tokenizer, [""], [LINE], plain.config.max_tokens, bf16=True)

    def best(run: object) -> float:
        run()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    cast, once = best(autocast), best(lambda: stored.predict([LINE], [""]))
    difference = max(float(np.abs(a - b).max()) for a, b in zip(autocast(), stored.predict([LINE], [""]), strict=True))
    print(f"one short line, best of {args.repeat}: autocast {cast:.3f} s, bf16 weights {once:.3f} s "
          f"({cast / once:.1f}x); largest probability difference {difference:.1e}")


if __name__ == "__main__":
    main()
