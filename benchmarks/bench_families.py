"""Per VLM family: what keeping the unified scale costs, on each family's tiny offline model (one core).

python benchmarks/bench_families.py [--repeats 20] [--families qwen2_5_vl gemma3 ...]

For each registered family (`depthlm_hf.models.tiny_vlm`), one 100x70 unified query image (a 50x35 camera at
f* = 2 f): the padded model size of its rule, the image tokens the model reads, the processor call (unify,
marker, padding, the family's image processor and tokenizer) and one forward pass, median over `--repeats`,
with the stock resize (`image_scale="processor"`) beside it for the processor call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import write_result  # noqa: E402
from PIL import Image  # noqa: E402

from depthlm_hf.models import FAMILIES, tiny_vlm  # noqa: E402
from depthlm_hf.models.families import scale_rule  # noqa: E402
from depthlm_hf.prompting.image_scale import model_size  # noqa: E402

CAMERA = [50.0, 50.0, 24.5, 17.0, 50, 35]


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (35, 50, 3), dtype=np.uint8))
    rows = {}
    for model_type in args.families:
        model, processor = tiny_vlm(model_type, unified_focal_length=100.0)

        def call(processor=processor):
            return processor(images=image, intrinsics=CAMERA, points=[[26, 18]], force_answer_prefix=True)

        batch = call()
        kept_ms = _median_ms(call, args.repeats)
        processor.image_scale = "processor"
        stock_ms = _median_ms(call, args.repeats)
        processor.image_scale = "keep"
        with torch.inference_mode():
            forward_ms = _median_ms(lambda model=model, batch=batch: model(**batch), args.repeats)
        config = model.config
        image_token = getattr(config, "image_token_id", None) or getattr(config, "image_token_index", None)
        rows[model_type] = {
            "rule": scale_rule(processor.image_processor).kind,
            "model_size": list(model_size(processor.image_processor, (100, 70))),
            "prompt_tokens": int(batch["input_ids"].shape[1]),
            "image_tokens": None if image_token is None else int((batch["input_ids"] == image_token).sum()),
            "processor_ms_kept": kept_ms,
            "processor_ms_stock_resize": stock_ms,
            "forward_ms": forward_ms,
        }
    write_result(
        "families",
        {"task": "tiny model of each family, 100x70 unified query image", "repeats": args.repeats, "rows": rows},
    )


if __name__ == "__main__":
    main()
