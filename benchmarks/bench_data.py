"""Data pipeline figures, one core: training rows per CPU-second on iBims-1 against the official release's image
side (same process, interleaved), synthetic scene rendering, and the memory of streaming a 1,000,000-line curated
jsonl (which must stay flat).

    python benchmarks/bench_data.py [--rows 200] [--rows_per_image 4] [--lines 1000000] [--scenes 200]
    python benchmarks/bench_data.py --lines 0 --scenes 0      # the training-row figures only

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


def _library_rows(source, processor, rows_per_image: int, count: int):
    """Rows as `depthlm sft` feeds them to the trainer: the index dataset's `__getitems__` on consecutive batches."""
    from depthlm_hf.data import GroupedTrainingView
    from depthlm_hf.data.views import index_dataset

    config = TrainingViewConfig()
    if rows_per_image > 1:
        view = GroupedTrainingView(source, processor, config, seed=0, rows_per_image=rows_per_image)
    else:
        view = TrainingView(source, processor, config, seed=0)
    dataset = index_dataset(count, view, "sft")
    return lambda start, size: [row["images"][0] for row in dataset.__getitems__(list(range(start, start + size)))]


def _official_rows(ibims: Path, undistort: bool):
    from _official import OfficialRows, read_records

    rows = OfficialRows(read_records(str(ibims / "ibims1_val.jsonl")), str(ibims), undistort=undistort)
    return lambda start, size: [rows[index]["image"] for index in range(start, start + size)]


def row_speed(rows: int, chunk: int, rows_per_image: int) -> dict:
    """Rows per CPU-second of the official image side and of the library's rows, interleaved in chunks, plus
    the full sample: the row and the Qwen image processor (real-size settings) on its image."""
    import torch

    from depthlm_hf.models.tiny import tiny_processor

    torch.set_num_threads(1)
    ibims = SHARED / "ibims1"
    if not (ibims / "ibims1_val.jsonl").exists():
        return {"skipped": f"{ibims} not found"}
    processor = tiny_processor(unified_focal_length=1000.0, min_pixels=3136, max_pixels=12845056)
    source = load_curated(ibims / "ibims1_val.jsonl", ibims)
    variants = {
        "official": _official_rows(ibims, undistort=True),
        "official_no_undistort": _official_rows(ibims, undistort=False),
        "library_row_per_image": _library_rows(source, processor, 1, rows + chunk),
        f"library_grouped_{rows_per_image}": _library_rows(source, processor, rows_per_image, rows + chunk),
    }
    for make in variants.values():  # imports, first-call setup
        make(rows, 1)
    totals = {
        name: {"rows": 0, "row_cpu": 0.0, "row_wall": 0.0, "proc_cpu": 0.0, "proc_wall": 0.0} for name in variants
    }
    names = list(variants)
    for round_, start in enumerate(range(0, rows, chunk)):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            images = variants[name](start, chunk)
            totals[name]["row_wall"] += time.perf_counter() - wall
            totals[name]["row_cpu"] += time.process_time() - cpu
            wall, cpu = time.perf_counter(), time.process_time()
            for image in images:
                processor.image_processor(images=[image], return_tensors="pt")
            totals[name]["proc_wall"] += time.perf_counter() - wall
            totals[name]["proc_cpu"] += time.process_time() - cpu
            totals[name]["rows"] += len(images)
    figures = {}
    for name, t in totals.items():
        figures[name] = {
            "rows": t["rows"],
            "rows_per_cpu_second": t["rows"] / t["row_cpu"],
            "rows_per_wall_second": t["rows"] / t["row_wall"],
            "cpu_ms_per_row": 1000 * t["row_cpu"] / t["rows"],
            "cpu_ms_per_full_sample": 1000 * (t["row_cpu"] + t["proc_cpu"]) / t["rows"],
            "full_samples_per_cpu_second": t["rows"] / (t["row_cpu"] + t["proc_cpu"]),
            "full_samples_per_wall_second": t["rows"] / (t["row_wall"] + t["proc_wall"]),
        }
    for name in names[2:]:
        for base in names[:2]:
            figures[name][f"row_cpu_ratio_vs_{base}"] = (
                figures[name]["rows_per_cpu_second"] / figures[base]["rows_per_cpu_second"]
            )
            figures[name][f"full_sample_cpu_ratio_vs_{base}"] = (
                figures[name]["full_samples_per_cpu_second"] / figures[base]["full_samples_per_cpu_second"]
            )
    figures["what"] = (
        "iBims-1 (640x480 PNG), focal unified to 1000 px, centred crop 1000-1400 x 700-1200, one arrow per row; "
        "official: benchmarks/_official.py (a faithful reimplementation of the release's image side; it undistorts "
        "with OpenCV because iBims-1 has fx != fy); library: rows through the SFT index dataset in index order; "
        "full sample: + Qwen2-VL image processor (min 3136, max 12845056 px, the backend transformers picks here). "
        f"Interleaved in chunks of {chunk} rows, rotating which variant goes first; one thread."
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
    parser.add_argument("--rows", type=int, default=200, help="rows per variant (iBims-1)")
    parser.add_argument("--chunk", type=int, default=8, help="rows per variant per interleaved turn")
    parser.add_argument("--rows_per_image", type=int, default=4)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--scenes", type=int, default=200)
    args = parser.parse_args()
    figures = {
        "threads": 1,
        "training_rows_ibims1": row_speed(args.rows, args.chunk, args.rows_per_image),
        "synthetic_render_224x168": synthetic_speed(args.scenes) if args.scenes else None,
        "streaming_jsonl": streaming_memory(args.lines) if args.lines else None,
    }
    write_result("data", figures)


if __name__ == "__main__":
    main()
