"""Vision attention, stock (one SDPA call per window) against batched (one call per window length), at real size.

    python benchmarks/bench_vision_attention.py [--reps 5] [--threads 1] [--height 868 --width 1148]

One Qwen2.5-VL vision block with the published widths (hidden 1280, 16 heads, MLP 3420; the 3B and 7B towers
are the same) on a 1148x868 image (62x82 patches, 88 windows): the attention module alone and the whole block,
forward (inference) and forward + backward (training), windowed and full-attention blocks. Stock and batched
run interleaved in one process (alternating which goes first), fp32, and each figure is the median of `--reps`;
CPU time (`time.process_time`) is reported beside wall time. The tower figure is projected from the block
medians as 28 windowed + 4 full-attention blocks, the real tower's layout (patch embedding and merger, which do
not change, are left out). On a GPU the gain is larger: there each of the 2,464 per-window calls of a
tower costs host time that the arithmetic cannot hide; `benchmarks/gpu/run.sh` measures it in training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import Qwen2_5_VLConfig
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from depthlm_hf.models import vision_attention  # noqa: E402

VISION = {
    "depth": 2,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [1],
}
TOWER = {"windowed": 28, "full": 4}


def block_inputs(tower: torch.nn.Module, height: int, width: int) -> dict[str, dict]:
    """The keyword inputs of the tower's windowed block and full-attention block for one image, captured."""
    captured: dict[str, dict] = {}
    for name, block in (("windowed", tower.blocks[0]), ("full", tower.blocks[1])):

        def hook(module, args, kwargs, name=name):
            captured[name] = {"hidden_states": args[0] if args else kwargs["hidden_states"], **kwargs}

        block.register_forward_pre_hook(hook, with_kwargs=True)
    grid = torch.tensor([[1, height // 14, width // 14]])
    with torch.no_grad():
        tower(torch.randn(int(grid.prod()), 3 * 2 * 14 * 14), grid_thw=grid)
    return captured


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(module: torch.nn.Module, inputs: dict, train: bool, reps: int) -> dict:
    """Median wall and CPU seconds of stock and batched, interleaved."""
    inputs = {k: v for k, v in inputs.items() if k in ("hidden_states", "cu_seqlens", "position_embeddings")}

    def run():
        if train:
            hidden = inputs["hidden_states"].detach().requires_grad_()
            module(**{**inputs, "hidden_states": hidden}).square().mean().backward()
        else:
            with torch.no_grad():
                module(**inputs)

    samples = {"stock": [], "batched": []}
    for rep in range(reps + 1):
        order = ("stock", "batched") if rep % 2 == 0 else ("batched", "stock")
        for name in order:
            with (vision_attention.stock if name == "stock" else vision_attention.batched)(module):
                result = timed(run)
            if rep:  # rep 0 warms up both
                samples[name].append(result)
    figures = {}
    for name, values in samples.items():
        figures[f"{name}_wall_ms"] = 1000 * statistics.median(w for w, _ in values)
        figures[f"{name}_cpu_ms"] = 1000 * statistics.median(c for _, c in values)
    figures["cpu_speedup"] = figures["stock_cpu_ms"] / figures["batched_cpu_ms"]
    figures["wall_speedup"] = figures["stock_wall_ms"] / figures["batched_wall_ms"]
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--height", type=int, default=868)
    parser.add_argument("--width", type=int, default=1148)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(vision_config=VISION).vision_config
    config._attn_implementation = "sdpa"
    tower = qwen.Qwen2_5_VisionTransformerPretrainedModel._from_config(config).eval()
    inputs = block_inputs(tower, args.height, args.width)
    windows = len(inputs["windowed"]["cu_seqlens"]) - 1
    figures: dict = {
        "image": f"{args.width}x{args.height}",
        "patches": int(inputs["windowed"]["hidden_states"].shape[0]),
    }
    figures["windows_per_block"] = windows
    for mode, train in (("inference", False), ("training", True)):
        for kind in ("windowed", "full"):
            block = tower.blocks[0 if kind == "windowed" else 1]
            for part, module in (("attention", block.attn), ("block", block)):
                result = measure(module, inputs[kind], train, args.reps)
                figures[f"{mode}_{kind}_{part}"] = result
                print(
                    f"{mode:9s} {kind:8s} {part:9s}: stock {result['stock_cpu_ms']:8.1f} ms CPU "
                    f"({result['stock_wall_ms']:8.1f} wall), batched {result['batched_cpu_ms']:8.1f} ms CPU "
                    f"({result['batched_wall_ms']:8.1f} wall): {result['cpu_speedup']:.3f}x CPU",
                    flush=True,
                )
        tower_ms = {
            name: sum(TOWER[kind] * figures[f"{mode}_{kind}_block"][f"{name}_cpu_ms"] for kind in TOWER)
            for name in ("stock", "batched")
        }
        figures[f"{mode}_tower_projected"] = {
            "stock_cpu_ms": tower_ms["stock"],
            "batched_cpu_ms": tower_ms["batched"],
            "cpu_speedup": tower_ms["stock"] / tower_ms["batched"],
            "how": "28 x windowed block + 4 x full block medians (CPU time)",
        }
    figures.update(threads=args.threads, dtype="float32", reps=args.reps, order="interleaved, alternating first")
    write_result("vision_attention", figures)
    return figures


if __name__ == "__main__":
    main()
