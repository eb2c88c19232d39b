"""Point-cloud latency: `num_points` queries of one 640x480 iBims-1 image through DepthLMPredictor, with MFU.

    python benchmarks/bench_point_cloud.py                                   # CPU: tiny model, 1,000 queries
    python benchmarks/bench_point_cloud.py --model qwen2.5-vl-3b --num_points 10000   # one GPU

The image is the first record of `../shared/data/ibims1` (a synthetic 640x480 scene when absent).
Models have random weights (real Qwen2.5-VL-3B/7B architectures from their published configs on a GPU,
the tiny offline model on CPU), so their answers are *forced* to a fixed text of the length a trained
model writes: the predictor generates "2.35 meters" (the number and the token that ends it), the baseline
the whole answer "The point is around 2.35 meters away from the camera." and the end-of-turn token. Each
query then costs what it costs with a trained checkpoint.

Baseline: plain `generate` with the official release's settings (each query prepared on its own, batch 3,
max_new_tokens 4096, stop at end of turn), timed on `--baseline_queries` queries and extrapolated.
MFU: model FLOPs per query (2 x parameters x tokens for the prompt's prefill and each generated token,
2 x vision parameters x patches, 4 x layers x hidden x prompt^2 / 2 for causal prefill attention) over
the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import LogitsProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from bench_predictor import official_generate  # noqa: E402
from bench_sft_throughput import PEAK_BF16_FLOPS, TEXT_CONFIGS, parameter_counts, real_config  # noqa: E402

from depthlm_hf.geometry import CameraIntrinsics  # noqa: E402
from depthlm_hf.inference.pointcloud import markable_pixels, point_cloud, query_grid  # noqa: E402
from depthlm_hf.inference.predictor import DepthLMPredictor  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ibims1"


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


def build(model_name: str, device: torch.device):
    """(model, processor): random weights of the real architecture on a GPU, the tiny model otherwise."""
    from depthlm_hf.models.tiny import tiny_processor, tiny_qwen2_5_vl

    if model_name == "tiny":
        return tiny_qwen2_5_vl(seed=0)
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    processor = tiny_processor(min_pixels=3136, max_pixels=12845056)
    # The PIL backend even where torchvision is installed: the one the marker-patch fast path reproduces.
    processor.image_processor = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    config = real_config(model_name, processor.tokenizer)
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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", choices=["tiny", *TEXT_CONFIGS])
    parser.add_argument("--num_points", type=int, default=None, help="queries (GPU 10,000, CPU 1,000)")
    parser.add_argument("--batch_size", type=int, default=None, help="predictor batch (GPU 64, CPU 32)")
    parser.add_argument("--baseline_queries", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    num_points = args.num_points or (10_000 if device.type == "cuda" else 1_000)
    batch_size = args.batch_size or (64 if device.type == "cuda" else 32)
    image, intrinsics, source = load_image()
    model, processor = build(args.model, device)
    tokenizer = processor.tokenizer
    number = tokenizer("2.35 meters", add_special_tokens=False)["input_ids"]
    full = tokenizer(processor.format_answer(2.35), add_special_tokens=False)["input_ids"] + [
        tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    ]
    predictor = DepthLMPredictor(model, processor, batch_size=batch_size, show_progress=True)

    force_answers(model, number)
    predictor.predict(image, intrinsics, [[320, 240]] * 2, progress=False)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    cloud = point_cloud(predictor, image, intrinsics, num_points=num_points)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    queries = len(cloud.pixels)
    with tempfile.TemporaryDirectory() as folder:
        saved = cloud.save_ply(Path(folder) / "cloud.ply")

    model.generate = type(model).generate.__get__(model)
    force_answers(model, full)
    camera = CameraIntrinsics.from_list(intrinsics)
    pixels, _ = query_grid(camera, args.baseline_queries, markable_pixels(predictor, camera))
    start = time.perf_counter()
    _, baseline_tokens = official_generate(model, processor, image, intrinsics, pixels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    baseline_qps = len(pixels) / (time.perf_counter() - start)

    inputs = processor(images=image, intrinsics=intrinsics, points=[[320, 240]], force_answer_prefix=True)
    patches, prompt = int(inputs["pixel_values"].shape[0]), int(inputs["input_ids"].shape[1])
    counts = parameter_counts(model)
    flops = query_flops(counts, model.config, patches, prompt, len(number)) * queries
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated() / 2**30
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    figures = {
        "model": args.model if args.model != "tiny" else "tiny Qwen2.5-VL (depthlm_hf.models.tiny, 224x168 cap)",
        "image": source,
        "queries": queries,
        "points_saved_to_ply": saved,
        "batch_size": batch_size,
        "seconds": seconds,
        "queries_per_second": queries / seconds,
        "image_patches_per_query": patches,
        "prompt_tokens_per_query": prompt,
        "achieved_tflops": flops / seconds / 1e12,
        "mfu": flops / seconds / peak if peak else None,
        "peak_memory_gb": memory,
        "baseline_queries": len(pixels),
        "baseline_new_tokens_per_query": baseline_tokens / len(pixels),
        "baseline_queries_per_second": baseline_qps,
        "baseline_seconds_for_all_queries": queries / baseline_qps,
        "speedup_vs_baseline": queries / seconds / baseline_qps,
        "threads": args.threads,
    }
    print(
        f"{queries} queries in {seconds:.1f} s ({queries / seconds:.1f} q/s, MFU {figures['mfu']}); "
        f"official settings {baseline_qps:.2f} q/s -> x{figures['speedup_vs_baseline']:.1f}"
    )
    write_result("point_cloud", figures)
    return figures


if __name__ == "__main__":
    main()
