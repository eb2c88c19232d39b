"""Data pipeline figures, one core: training-view rows/s on iBims-1, synthetic scene rendering, and the
memory of streaming a 1,000,000-line curated jsonl (which must stay flat).

    python benchmarks/bench_data.py [--rows 100] [--lines 1000000] [--scenes 200]

iBims-1 comes from ../shared/data/ibims1 (or $DEPTHLM_SHARED_DATA/ibims1); without it that figure is
skipped. The jsonl is generated in a temporary folder and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _common import write_result  # noqa: E402
from PIL import Image  # noqa: E402

from depthlm_hf.data import TrainingView, TrainingViewConfig, load_curated  # noqa: E402
from depthlm_hf.data.synthetic.scenes import SCENE_PRESETS, render_scene  # noqa: E402

SHARED = Path(os.environ.get("DEPTHLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def rss_mib() -> float:
    """Resident memory of this process now [MiB] (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def training_view_speed(rows: int) -> dict:
    import torch

    from depthlm_hf.models.tiny import tiny_processor

    torch.set_num_threads(1)
    ibims = SHARED / "ibims1"
    if not (ibims / "ibims1_val.jsonl").exists():
        return {"skipped": f"{ibims} not found"}
    processor = tiny_processor(unified_focal_length=1000.0)
    source = load_curated(ibims / "ibims1_val.jsonl", ibims)
    figures = {}
    for name, config in {
        "paper_crop_center": TrainingViewConfig(),
        "no_crop": TrainingViewConfig(crop=False),
    }.items():
        view = TrainingView(source, processor, config, seed=0, num_samples=rows)
        view.sample(rows)  # warm-up
        start = time.perf_counter()
        for index in range(rows):
            view.sample(index)
        seconds = time.perf_counter() - start
        figures[name] = {"rows_per_second": rows / seconds, "ms_per_row": 1000 * seconds / rows}
    figures["what"] = (
        "SFT row: random record, PNG decode (640x480), focal unification to 1000 px, crop "
        "1000-1400 x 700-1200 centred on the principal point, arrow marker, chat messages"
    )
    return figures


def synthetic_speed(scenes: int) -> dict:
    figures = {}
    for preset in SCENE_PRESETS:
        from dataclasses import replace

        config = replace(SCENE_PRESETS[preset], width=(224, 224), height=(168, 168))
        render_scene(config, 0)
        wall, cpu = [], []
        for seed in range(scenes):
            w0, c0 = time.perf_counter(), time.process_time()
            render_scene(config, seed)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        figures[preset] = {
            "median_wall_ms": 1000 * float(np.median(wall)),
            "median_cpu_ms": 1000 * float(np.median(cpu)),
        }
    figures["what"] = "one 224x168 RGB-D scene: random layout, ray casting, shading (colour, depth, z-depth, mask)"
    return figures


def write_jsonl(path: Path, lines: int) -> None:
    rng = np.random.default_rng(0)
    coords = rng.integers(0, [64, 48], size=(1000, 5, 2)).tolist()
    depth = np.round(rng.uniform(0.5, 10, size=(1000, 5)), 4).tolist()
    with open(path, "w") as f:
        for i in range(lines):
            f.write(
                json.dumps(
                    {
                        "image": "rgb/a.png",
                        "intrinsics": [50.0, 50.0, 31.5, 23.5, 64, 48],
                        "pixel_coords": coords[i % 1000],
                        "depth": depth[i % 1000],
                    }
                )
                + "\n"
            )


def streaming_memory(lines: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "rgb").mkdir()
        Image.new("RGB", (64, 48)).save(root / "rgb" / "a.png")
        write_jsonl(root / "big.jsonl", lines)
        size_mib = (root / "big.jsonl").stat().st_size / 2**20
        dataset = load_curated(root / "big.jsonl", root, decode_images=False)
        before = rss_mib()
        samples, points = [], 0
        start = time.perf_counter()
        for count, record in enumerate(dataset, 1):
            points += len(record["depth"])
            if count % (lines // 10) == 0:
                samples.append(round(rss_mib(), 1))
        seconds = time.perf_counter() - start
        return {
            "lines": lines,
            "file_mib": round(size_mib, 1),
            "records_ok": dataset.stats["ok"],
            "points": points,
            "lines_per_second": lines / seconds,
            "rss_mib_before": round(before, 1),
            "rss_mib_every_tenth": samples,
            "rss_growth_mib": round(max(samples) - before, 1),
            "peak_rss_mib_process": round(peak_rss_mib(), 1),
            "what": "iterate a curated jsonl (5 points per line, image paths checked, not decoded)",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--scenes", type=int, default=200)
    args = parser.parse_args()
    figures = {
        "threads": 1,
        "training_view_ibims1": training_view_speed(args.rows),
        "synthetic_render_224x168": synthetic_speed(args.scenes),
        "streaming_jsonl": streaming_memory(args.lines),
    }
    write_result("data", figures)


if __name__ == "__main__":
    main()
