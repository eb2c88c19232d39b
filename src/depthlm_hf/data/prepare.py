"""Dense RGB-D data (or synthetic scenes) to the curated DepthLM format (jsonl + images): `depthlm prepare`.

A manifest is a jsonl file, one RGB-D image per line: `{"rgb": "a.png", "depth": "a_depth.png",
"intrinsics": [fx, fy, cx, cy, width, height], "mask": "a_mask.png" (optional), "scene": "..." (optional)}`,
paths relative to the manifest's folder. Depth files are `.npy` arrays or 16-bit/float images.
The output folder gets `rgb/<n>.png` and `<dataset>.jsonl` with `num_points` labelled pixels per
image (paper: 100), drawn deterministically from `seed`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from depthlm_hf.data.convert import rgbd_to_record
from depthlm_hf.data.records import to_jsonable
from depthlm_hf.data.synthetic.scenes import SyntheticDataset
from depthlm_hf.prompting.imaging import load_image

logger = logging.getLogger(__name__)


@dataclass
class PrepareArguments:
    """Arguments of `depthlm prepare`."""

    output_dir: str = field(metadata={"help": "Folder to write `<dataset>.jsonl` and `rgb/` into."})
    source: str = field(default="synthetic", metadata={"help": "'synthetic' (procedural scenes) or 'manifest'."})
    manifest: str | None = field(default=None, metadata={"help": "RGB-D manifest jsonl (for `source=manifest`)."})
    preset: str = field(default="indoor", metadata={"help": "Synthetic scene preset: indoor, outdoor or ground."})
    num_images: int = field(default=100, metadata={"help": "Synthetic images to render (manifest: all lines)."})
    num_points: int = field(default=100, metadata={"help": "Labelled pixels sampled per image (paper: 100)."})
    seed: int = field(default=0, metadata={"help": "Seed of the pixel sampling (and of the synthetic scenes)."})
    depth_kind: str = field(default="z", metadata={"help": "Manifest depth holds 'z' (principal-axis) or 'euclidean'."})
    depth_scale: float = field(default=1.0, metadata={"help": "Depth units per metre (1000 for millimetre PNGs)."})
    min_depth: float = field(default=0.0, metadata={"help": "Smallest Euclidean distance kept [m]."})
    max_depth: float = field(default=float("inf"), metadata={"help": "Largest Euclidean distance kept [m]."})
    border: int = field(default=0, metadata={"help": "Keep sampled pixels this far from the image edges [px]."})
    dataset: str | None = field(default=None, metadata={"help": "Dataset name (default: the output folder's name)."})

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "manifest"):
            raise ValueError(f"`source` must be 'synthetic' or 'manifest', got {self.source!r}.")
        if self.source == "manifest" and not self.manifest:
            raise ValueError("`manifest` is required with `source=manifest`.")
        if self.depth_kind not in ("z", "euclidean"):
            raise ValueError(f"`depth_kind` must be 'z' or 'euclidean', got {self.depth_kind!r}.")
        for name in ("num_images", "num_points"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}.")


def read_depth(path: Path) -> np.ndarray:
    """A depth map (H, W) from `.npy` or an image file (16-bit PNG, float TIFF), as stored (not scaled)."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with Image.open(path) as image:
        return np.asarray(image)


def _manifest_items(args: PrepareArguments) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    manifest = Path(args.manifest)
    with open(manifest) as f:
        for index, line in enumerate(line for line in f if line.strip()):
            try:
                entry = json.loads(line)
                rgb = load_image(manifest.parent / entry["rgb"])
                depth = read_depth(manifest.parent / entry["depth"])
                mask = read_depth(manifest.parent / entry["mask"]).astype(bool) if entry.get("mask") else None
                record = rgbd_to_record(
                    rgb,
                    depth,
                    entry["intrinsics"],
                    args.num_points,
                    np.random.SeedSequence([args.seed, index]).generate_state(1)[0],
                    depth_kind=args.depth_kind,
                    depth_scale=args.depth_scale,
                    valid_mask=mask,
                    depth_range=(args.min_depth, args.max_depth),
                    border=args.border,
                    scene=str(entry.get("scene", Path(entry["rgb"]).stem)),
                )
            except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
                yield index, None, f"{type(err).__name__}: {err}"
                continue
            yield index, record, ""


def _synthetic_items(args: PrepareArguments) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    scenes = SyntheticDataset(
        args.preset,
        num_scenes=args.num_images,
        seed=args.seed,
        num_points=args.num_points,
        border=args.border,
    )
    for index in range(len(scenes)):
        record = scenes[index]
        keep = (record["depth"] >= args.min_depth) & (record["depth"] <= args.max_depth)
        for key in ("pixel_coords", "depth", "z_depth"):
            record[key] = record[key][keep]
        yield index, record, ""


def prepare(args: PrepareArguments) -> dict[str, Any]:
    """Write the curated dataset; returns a summary (`images`, `points`, `skipped` by reason, `jsonl`)."""
    out = Path(args.output_dir)
    (out / "rgb").mkdir(parents=True, exist_ok=True)
    name = args.dataset or out.resolve().name
    jsonl = out / f"{name}.jsonl"
    items = _synthetic_items(args) if args.source == "synthetic" else _manifest_items(args)
    total = args.num_images if args.source == "synthetic" else None
    summary: dict[str, Any] = {"images": 0, "points": 0, "skipped": Counter(), "jsonl": str(jsonl)}
    with open(jsonl, "w") as f:
        for index, record, error in tqdm(items, total=total, desc=f"prepare {name}", unit="img"):
            if record is None:
                summary["skipped"]["unreadable"] += 1
                logger.warning("manifest line %d skipped: %s", index, error)
                continue
            if len(record["depth"]) == 0:
                summary["skipped"]["no_valid_pixel"] += 1
                continue
            relative = f"rgb/{index:07d}.png"
            image = record["image"] if isinstance(record["image"], Image.Image) else load_image(record["image"])
            image.save(out / relative)
            record = {**record, "image": relative, "dataset": name}
            record.pop("index", None)
            f.write(json.dumps(to_jsonable(record)) + "\n")
            summary["images"] += 1
            summary["points"] += len(record["depth"])
    summary["skipped"] = dict(summary["skipped"])
    return summary
