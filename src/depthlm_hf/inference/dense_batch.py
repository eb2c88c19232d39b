"""Dense prediction over many images: a point cloud and a depth map per image, shared across ranks, resumable.

The input is a jsonl file in the curated format (`depthlm_hf.data.records`) of which only `image` (relative to
an image root) and `intrinsics` `[fx, fy, cx, cy, width, height]` [px] are read, so unlabelled images work too.
Image `k` (in file order, repeated images dropped) goes to rank `k mod world_size`. For an image `rgb/a.png`
the output folder gets

- `rgb/a.ply`: the valid points (x, y, z [m], colour, confidence; `PointCloud.save_ply`);
- `rgb/a.depth.npy`: the (H, W) float32 z-depth map [m] of the input image (`PointCloud.depth_map`);
- `rgb/a.json`: the image, its camera, the grid and the number of valid points, written last.

Each file is written to a temporary name and moved into place (`os.replace`), so an image whose `.json` exists
is complete and a rerun skips it; `run.json` holds the model fingerprint and settings, and a rerun with another
model or grid is refused unless `overwrite`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from depthlm_hf.data.curated import resolve_image_path
from depthlm_hf.data.records import InvalidRecordError
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.inference.pointcloud import point_cloud
from depthlm_hf.inference.ranks import Ranks
from depthlm_hf.inference.runstate import atomic_output, check_run_info, model_fingerprint, write_atomic


@dataclass(frozen=True)
class ImageJob:
    """One input image: `key` names its outputs (its path relative to the image root, without suffix)."""

    key: str
    image: Path
    intrinsics: list[float]


def read_image_list(jsonl: str | os.PathLike, image_root: str | os.PathLike) -> tuple[list[ImageJob], Counter[str]]:
    """The images of a curated jsonl file, in file order, and the skipped lines counted by reason.

    Reasons: `bad_json`, `missing_field`, `bad_intrinsics`, `bad_path`, `unsafe_path`, `missing_image`,
    `duplicate_image` (the same image again: its outputs would be the same files).
    """
    jsonl, root = Path(jsonl), Path(image_root)
    if not jsonl.is_file():
        raise ValueError(f"`jsonl` {str(jsonl)!r} is not a file.")
    if not root.is_dir():
        raise ValueError(f"`image_root` {str(root)!r} is not a folder.")
    real_root = Path(os.path.realpath(root))
    jobs: list[ImageJob] = []
    seen: set[str] = set()
    skipped: Counter[str] = Counter()
    for line in jsonl.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            job = _job(line, root, real_root)
        except InvalidRecordError as err:
            skipped[err.reason] += 1
            continue
        if job.key in seen:
            skipped["duplicate_image"] += 1
            continue
        seen.add(job.key)
        jobs.append(job)
    return jobs, skipped


def _job(line: bytes, root: Path, real_root: Path) -> ImageJob:
    try:
        raw = json.loads(line)
    except ValueError as err:
        raise InvalidRecordError("bad_json", f"not valid JSON: {err}") from None
    if not isinstance(raw, dict) or raw.get("image") is None or raw.get("intrinsics") is None:
        raise InvalidRecordError("missing_field", "a line needs `image` and `intrinsics`.")
    try:
        camera = CameraIntrinsics.from_list(raw["intrinsics"])
    except (TypeError, ValueError) as err:
        raise InvalidRecordError("bad_intrinsics", str(err)) from None
    path = resolve_image_path(raw["image"], root)
    if not path.is_file():
        raise InvalidRecordError("missing_image", f"`image` {str(path)!r} is not a file.")
    key = path.relative_to(real_root).with_suffix("").as_posix()
    return ImageJob(key, path, camera.to_list())


def output_paths(output_dir: str | os.PathLike, key: str) -> dict[str, Path]:
    """The files written for image `key`: `{"ply", "depth", "info"}` (the info file is written last).

    >>> sorted(p.name for p in output_paths("out", "rgb/a").values())
    ['a.depth.npy', 'a.json', 'a.ply']
    """
    base = Path(output_dir) / key
    names = {"ply": ".ply", "depth": ".depth.npy", "info": ".json"}
    return {kind: base.with_name(base.name + suffix) for kind, suffix in names.items()}


def is_complete(output_dir: str | os.PathLike, key: str) -> bool:
    """Whether every output of image `key` is in place (its info file is the last one written)."""
    return all(path.is_file() for path in output_paths(output_dir, key).values())


def predict_image(predictor, job: ImageJob, output_dir: str | os.PathLike, num_points: int) -> dict[str, Any]:
    """Point cloud and depth map of one image, written atomically; returns what the info file holds."""
    cloud = point_cloud(predictor, str(job.image), job.intrinsics, num_points=num_points, progress=False)
    paths = output_paths(output_dir, job.key)
    with atomic_output(paths["ply"]) as tmp:
        written = cloud.save_ply(tmp)
    with atomic_output(paths["depth"]) as tmp, open(tmp, "wb") as f:
        np.save(f, cloud.depth_map("z").astype(np.float32))
    info = {
        "image": str(job.image),
        "intrinsics": job.intrinsics,
        "grid_shape": list(cloud.grid_shape),
        "queries": len(cloud.distance),
        "valid_points": int(cloud.valid.sum()),
        "ply_points": written,
    }
    write_atomic(paths["info"], json.dumps(info, indent=1))
    return info


def predict_images(
    predictor,
    jobs: list[ImageJob],
    output_dir: str | os.PathLike,
    num_points: int,
    ranks: Ranks | None = None,
) -> dict[str, int]:
    """This rank's share of `jobs` (image `k` to rank `k mod world_size`), skipping complete images.

    Returns `{"predicted", "resumed"}` counts of this rank. A progress bar shows on rank 0.
    """
    ranks = ranks or Ranks()
    mine = ranks.shard(jobs)
    todo = [job for job in mine if not is_complete(output_dir, job.key)]
    desc = "images" + (f" ({ranks.name()})" if ranks.distributed else "")
    for job in tqdm(todo, desc=desc, unit="img", disable=not ranks.is_main):
        predict_image(predictor, job, output_dir, num_points)
    return {"predicted": len(todo), "resumed": len(mine) - len(todo)}


def run_dense(
    predictor,
    model: str,
    jsonl: str | os.PathLike,
    image_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    num_points: int,
    ranks: Ranks | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The whole sharded run: check or record `run.json`, predict this rank's images, meet, summarise on rank 0.

    `model` is the checkpoint the `predictor` came from (its fingerprint is recorded). With `overwrite`, outputs
    of another run are predicted again. Rank 0 writes and returns `summary.json`'s content: `images`,
    `predicted`, `resumed` (all ranks) and `skipped` lines by reason; other ranks return `{}`.
    """
    ranks = ranks or Ranks()
    out = Path(output_dir)
    info = {"fingerprint": model_fingerprint(model), "jsonl": str(jsonl), "num_points": num_points}
    check_run_info(out / "run.json", info, overwrite)
    jobs, skipped = read_image_list(jsonl, image_root)
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for job in jobs:
                output_paths(out, job.key)["info"].unlink(missing_ok=True)
        write_atomic(out / "run.json", json.dumps(info, indent=1))
    ranks.barrier()
    counts = predict_images(predictor, jobs, out, num_points, ranks)
    ranks.barrier()
    totals = _sum_over_ranks(counts, ranks)
    if not ranks.is_main:
        return {}
    missing = [job.key for job in jobs if not is_complete(out, job.key)]
    if missing:
        raise RuntimeError(f"{len(missing)} image(s) have no complete outputs after the run: {missing[:5]}.")
    summary = {"images": len(jobs), **totals, "skipped": dict(skipped)}
    write_atomic(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _sum_over_ranks(counts: dict[str, int], ranks: Ranks) -> dict[str, int]:
    if not ranks.distributed:
        return dict(counts)
    import torch

    keys = sorted(counts)
    values = torch.tensor([counts[k] for k in keys], dtype=torch.int64)
    if torch.distributed.get_backend() == "nccl":
        values = values.to(ranks.device())
    torch.distributed.all_reduce(values)
    return dict(zip(keys, values.tolist(), strict=True))
