"""Point-cloud latency: `num_points` queries of one 640x480 iBims-1 image through DepthLMPredictor, with MFU.

    python benchmarks/bench_point_cloud.py                                  # CPU: tiny model
    python benchmarks/bench_point_cloud.py --model qwen2.5-vl-3b --rounds 3  # one GPU
    python benchmarks/bench_point_cloud.py --model qwen2.5-vl-3b --shrink    # CPU dry run of the GPU path

The image is the first record of `$DEPTHLM_IBIMS` or `../shared/data/ibims1` (a synthetic 640x480 scene when absent).
Models have random weights (real Qwen2.5-VL-3B/7B architectures from their published configs on a GPU,
the tiny offline model on CPU), so their answers are *forced* to a fixed text of the length a trained
model writes: the predictor generates "2.35 meters" (the number and the token that ends it), the baseline
the whole answer "The point is around 2.35 meters away from the camera." and the end-of-turn token. Each
query then costs what it costs with a trained checkpoint.

Variants, interleaved in one process over `--rounds` rounds (rotating which goes first), every query timed, wall
and CPU time: the predictor (batched vision attention), the predictor with transformers' own vision attention,
and plain `generate` with the official release's settings (each query prepared on its own, batch 3,
max_new_tokens 4096, stop at end of turn). Queries are distinct pixels of a grid over the markable pixels.
MFU: model FLOPs per query (2 x parameters x tokens for the prompt's prefill and each generated token,
2 x vision parameters x patches, 4 x layers x hidden x prompt^2 / 2 for causal prefill attention) over
the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import LogitsProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from _models import PEAK_BF16_FLOPS, TEXT_CONFIGS, parameter_counts, real_config  # noqa: E402
from _official import official_generate  # noqa: E402

from depthlm_hf.geometry import CameraIntrinsics  # noqa: E402
from depthlm_hf.inference.pointcloud import query_grid  # noqa: E402
from depthlm_hf.inference.predictor import DepthLMPredictor  # noqa: E402
from depthlm_hf.models import vision_attention  # noqa: E402

SHARED = Path(os.environ.get("DEPTHLM_IBIMS", Path(__file__).resolve().parents[2] / "shared" / "data" / "ibims1"))


class ForcedAnswer(LogitsProcessor):
    """Makes the generated text `token_ids` (then repeats the last id): answers of a fixed length."""

    def __init__(self, token_ids: list[int], prompt_length: int) -> None:
        self.token_ids, self.prompt_length = token_ids, prompt_length

    def __call__(self, input_ids, scores):
        step = min(input_ids.shape[1] - self.prompt_length, len(self.token_ids) - 1)
        forced = torch.full_like(scores, -1e4)
        forced[:, self.token_ids[step]] = 0.0
        return forced


def force_answers(model, token_ids: list[int]) -> None:
    """Wrap `model.generate` so that every call generates `token_ids` (before any other logits processor)."""
    generate = model.generate

    def forced_generate(*args, **kwargs):
        from transformers import LogitsProcessorList

        processors = LogitsProcessorList([ForcedAnswer(token_ids, kwargs["input_ids"].shape[1])])
        processors.extend(kwargs.pop("logits_processor", None) or [])
        return generate(*args, logits_processor=processors, **kwargs)

    model.generate = forced_generate


def load_image():
    """(image, intrinsics, source): the first iBims-1 record, else a synthetic 640x480 scene."""
    if (SHARED / "ibims1_val.jsonl").exists():
        record = json.loads((SHARED / "ibims1_val.jsonl").read_text().splitlines()[0])
        return (
            Image.open(SHARED / record["image"]).convert("RGB"),
            record["intrinsics"],
            f"iBims-1 {record['image']}",
        )
    from depthlm_hf.data.synthetic.scenes import SyntheticDataset

    record = SyntheticDataset("indoor", num_scenes=1, seed=0, width=(640, 640), height=(480, 480))[0]
    return record["image"], record["intrinsics"], "synthetic indoor 640x480"


def build(model_name: str, device: torch.device, shrink: bool = False):
    """(model, processor): random weights of the real architecture on a GPU, the tiny model otherwise."""
    from depthlm_hf.models.tiny import tiny_processor, tiny_qwen2_5_vl

    if model_name == "tiny":
        return tiny_qwen2_5_vl(seed=0)
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    processor = tiny_processor(min_pixels=3136, max_pixels=12845056)
    # The PIL backend even where torchvision is installed: the one the marker-patch fast path reproduces.
    processor.image_processor = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    config = real_config(model_name, processor.tokenizer, shrink)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with device:
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, attn_implementation="sdpa", dtype=dtype)
    return model.eval(), processor


def query_flops(counts: dict[str, int], config, patches: int, prompt: int, new_tokens: float) -> float:
    """Inference FLOPs of one query (see the module docstring)."""
    text = config.text_config
    body = 2 * counts["text_body"] * (prompt + new_tokens) + 2 * counts["lm_head"] * (1 + new_tokens)
    attention = 4 * text.num_hidden_layers * text.hidden_size * prompt * prompt / 2
    return body + attention + 2 * counts["vision"] * patches


def timed(fn) -> tuple[object, float, float]:
    """`fn()`, its wall and CPU seconds (the device synchronised before each clock read)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    sync()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", choices=["tiny", *TEXT_CONFIGS])
    parser.add_argument("--shrink", action="store_true", help="2 layers of width 64 (a CPU dry run of the GPU path)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=None, help="predictor batch (GPU 64, CPU 32)")
    parser.add_argument("--predictor_batches", type=int, default=2, help="predictor batches per variant per round")
    parser.add_argument("--official_queries", type=int, default=6, help="official-loop queries per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="point_cloud", help="results file stem")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch_size = args.batch_size or (64 if device.type == "cuda" else 32)
    image, intrinsics, source = load_image()
    model, processor = build(args.model, device, args.shrink)
    tokenizer = processor.tokenizer
    number = tokenizer("2.35 meters", add_special_tokens=False)["input_ids"]
    full = tokenizer(processor.format_answer(2.35), add_special_tokens=False)["input_ids"] + [
        tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    ]
    predictor = DepthLMPredictor(model, processor, batch_size=batch_size, show_progress=False)
    camera = CameraIntrinsics.from_list(intrinsics)
    per_round = batch_size * args.predictor_batches
    needed = per_round * 2 * args.rounds + args.official_queries * args.rounds
    pixels, _ = query_grid(camera, 2 * needed + 16, processor.markable(camera))  # a grid holds "about" that many
    if len(pixels) < needed:
        raise RuntimeError(f"the query grid holds {len(pixels)} pixels, the rounds need {needed}.")
    pixels = pixels[np.random.default_rng(0).permutation(len(pixels))]
    stock_generate = type(model).generate.__get__(model)

    def run_predictor(points, batched: bool):
        (vision_attention.enable if batched else vision_attention.disable)(model)
        force_answers(model, number)
        try:
            return predictor.predict(image, intrinsics, points).values
        finally:
            model.generate = stock_generate

    def run_official(points):
        vision_attention.disable(model)
        force_answers(model, full)
        try:
            return official_generate(model, processor, image, intrinsics, points)[1]
        finally:
            model.generate = stock_generate

    run_predictor(pixels[:2], True), run_predictor(pixels[:2], False), run_official(pixels[:1])  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    totals = {
        name: {"queries": 0, "wall": 0.0, "cpu": 0.0} for name in ("predictor", "predictor_stock_attention", "official")
    }
    baseline_tokens, cursor = 0, 0
    for round_ in range(args.rounds):
        jobs = [
            ("predictor", lambda p: run_predictor(p, True), per_round),
            ("predictor_stock_attention", lambda p: run_predictor(p, False), per_round),
            ("official", run_official, args.official_queries),
        ]
        for name, fn, count in jobs[round_ % 3 :] + jobs[: round_ % 3]:
            points, cursor = pixels[cursor : cursor + count], cursor + count
            result, wall, cpu = timed(lambda fn=fn, points=points: fn(points))
            totals[name]["queries"] += len(points)
            totals[name]["wall"] += wall
            totals[name]["cpu"] += cpu
            baseline_tokens += result if name == "official" else 0

    inputs = processor(images=image, intrinsics=intrinsics, points=[[320, 240]], force_answer_prefix=True)
    patches, prompt = int(inputs["pixel_values"].shape[0]), int(inputs["input_ids"].shape[1])
    counts = parameter_counts(model)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    memory = (
        torch.cuda.max_memory_allocated() / 2**30
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    variants = {}
    for key, t in totals.items():
        new_tokens = baseline_tokens / t["queries"] if key == "official" else len(number)
        flops = query_flops(counts, model.config, patches, prompt, new_tokens) * t["queries"]
        variants[key] = {
            "queries": t["queries"],
            "queries_per_second": t["queries"] / t["wall"],
            "queries_per_cpu_second": t["queries"] / t["cpu"],
            "new_tokens_per_query": new_tokens,
            "achieved_tflops": flops / t["wall"] / 1e12,
            "mfu": flops / t["wall"] / peak if peak else None,
        }
    for key in variants:
        variants[key]["speedup_vs_official"] = (
            variants[key]["queries_per_second"] / variants["official"]["queries_per_second"]
        )
    figures = {
        "model": args.model + (" (shrunk)" if args.shrink else ""),
        "image": source,
        "batch_size": batch_size,
        "official_settings": "each query prepared on its own, batch 3, max_new_tokens 4096, full answer + end of turn",
        "order": f"{args.rounds} rounds, variants interleaved (rotating first), every query timed",
        "image_patches_per_query": patches,
        "prompt_tokens_per_query": prompt,
        "peak_memory_gb": memory,
        "variants": variants,
        "threads": args.threads,
    }
    write_result(args.name, figures)
    for key, v in variants.items():
        print(
            f"{key:26s}: {v['queries_per_second']:.2f} q/s ({v['queries_per_cpu_second']:.2f} per CPU-s), "
            f"MFU {v['mfu']}, x{v['speedup_vs_official']:.2f} vs official"
        )
    return figures


if __name__ == "__main__":
    main()
