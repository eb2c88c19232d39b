"""Queries per second: DepthLMPredictor vs plain `model.generate` with the official release's settings.

    python benchmarks/bench_predictor.py        # CPU: tiny Qwen2.5-VL trained to emit the template
    python benchmarks/bench_predictor.py --queries 96 --threads 1

Baseline (the official `eval.py`): each query prepared on its own (focal resize + marker), batches of 3,
the full answer generated ("The point is around 2.50 meters away from the camera."), `max_new_tokens`
4096, greedy, stopping at the end of the turn, then parsed. A random tiny model never ends its turn,
so the model is first trained (plain torch, a few hundred steps on 4 fixed rows) to answer with the
template; the answers of every variant are checked against the baseline's.

Variants, each adding one lever: batch 32; the answer prefix forced and generation stopped at the end of
the number (max_new_tokens 8); the focal resize shared by all queries of the image; the image processor
run once per image, each query re-processing only the patches its marker changes (the full predictor).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from _official import official_generate  # noqa: E402

from depthlm_hf.inference.predictor import DepthLMPredictor  # noqa: E402
from depthlm_hf.models.tiny import tiny_qwen2_5_vl  # noqa: E402
from depthlm_hf.testing import fit_answer_template, flat_image  # noqa: E402

W, H = 112, 84
CAMERA = [100.0, 100.0, W / 2, H / 2, W, H]
TRAIN_VALUES = (1.25, 2.5, 4.75, 8.0)


def fit_template(model, processor, values=TRAIN_VALUES, steps: int = 300, lr: float = 3e-3, camera=CAMERA) -> float:
    """The shared tiny-model SFT (`depthlm_hf.testing.fit_answer_template`); returns the last loss."""
    return fit_answer_template(model, processor, values, camera, steps, lr)


@torch.inference_mode()
def prefix_generate(predictor, image, camera, points, batch_size: int):
    """Forced prefix + number stop, but each query still prepared from the raw image (no shared resize)."""
    values = []
    for start in range(0, len(points), batch_size):
        inputs = predictor.processor(
            images=image,
            intrinsics=camera,
            points=points[start : start + batch_size],
            force_answer_prefix=True,
        )
        values += predictor.postprocess(predictor.generate(inputs)).values
    return values


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def query_points(n: int, width: int = W, height: int = H, margin: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(margin, width - margin, n), rng.integers(margin, height - margin, n)], axis=1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=96, help="queries on one image")
    parser.add_argument("--batch_size", type=int, default=32, help="predictor batch size")
    parser.add_argument("--train_steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, processor = tiny_qwen2_5_vl(seed=1)
    loss, train_seconds = timed(lambda: fit_template(model, processor, steps=args.train_steps))
    image, points = flat_image(140), query_points(args.queries)
    predictor = DepthLMPredictor(model, processor, batch_size=args.batch_size, show_progress=False)
    predictor.predict(image, CAMERA, points[:4])  # warm-up

    (base_values, base_tokens), base_s = timed(lambda: official_generate(model, processor, image, CAMERA, points))
    (big_values, _), big_s = timed(
        lambda: official_generate(model, processor, image, CAMERA, points, batch_size=args.batch_size)
    )
    prefix_values, prefix_s = timed(lambda: prefix_generate(predictor, image, CAMERA, points, args.batch_size))
    slow = DepthLMPredictor(model, processor, batch_size=args.batch_size, show_progress=False, fast_images=False)
    shared, shared_s = timed(lambda: slow.predict(image, CAMERA, points))
    ours, ours_s = timed(lambda: predictor.predict(image, CAMERA, points))

    def row(name, values, seconds):
        agree = float(np.mean([a == b for a, b in zip(values, base_values, strict=True)]))
        return {
            "variant": name,
            "seconds": seconds,
            "queries_per_second": len(points) / seconds,
            "speedup_vs_baseline": base_s / seconds,
            "answers_equal_to_baseline": agree,
        }

    variants = [
        row("official: batch 3, full answer, max_new_tokens 4096, stop at end of turn", base_values, base_s),
        row(f"+ batch {args.batch_size}", big_values, big_s),
        row("+ forced answer prefix, stop at end of number (max_new_tokens 8)", prefix_values, prefix_s),
        row("+ focal resize shared per image (predict, fast_images=False)", shared.values, shared_s),
        row("+ only the marker's patches re-processed (DepthLMPredictor.predict)", ours.values, ours_s),
    ]
    for v in variants:
        print(
            f"{v['queries_per_second']:8.2f} q/s  x{v['speedup_vs_baseline']:5.2f}  "
            f"agree {v['answers_equal_to_baseline']:.3f}  {v['variant']}"
        )
    figures = {
        "model": "tiny Qwen2.5-VL (depthlm_hf.models.tiny.tiny_qwen2_5_vl, seed 1), template-trained",
        "queries": len(points),
        "image": f"{W}x{H} grey, unified focal 1000 px -> {processor.focal_transform(CAMERA).out_width}x"
        f"{processor.focal_transform(CAMERA).out_height}, Qwen max_pixels 224x168",
        "threads": args.threads,
        "train_steps": args.train_steps,
        "train_seconds": train_seconds,
        "train_final_loss": loss,
        "baseline_new_tokens_per_query": base_tokens / len(points),
        "queries_per_second": variants[-1]["queries_per_second"],
        "baseline_queries_per_second": variants[0]["queries_per_second"],
        "speedup_vs_baseline": variants[-1]["speedup_vs_baseline"],
        "mfu": None,
        "peak_memory_gb": None,
        "variants": variants,
    }
    write_result("predictor", figures)
    return figures


if __name__ == "__main__":
    main()
