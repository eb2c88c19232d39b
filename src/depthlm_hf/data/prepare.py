"""Dense RGB-D data (or synthetic scenes) to the curated DepthLM format (jsonl + images): `depthlm prepare`.

A manifest is a jsonl file, one RGB-D image per line: `{"rgb": "a.png", "depth": "a_depth.png",
"intrinsics": [fx, fy, cx, cy, width, height], "mask": "a_mask.png" (optional), "scene": "..." (optional)}`,
paths relative to the manifest's folder. Depth files are `.npy` arrays or 16-bit/float images.
The output folder gets `rgb/<n>.png` and `<dataset>.jsonl` with `num_points` labelled pixels per
image (paper: 100), drawn deterministically from `seed`.

Arguments are checked before anything is read (scales > 0, 0 <= min_depth < max_depth, a manifest that is
a regular jsonl file of entries). A manifest entry that cannot be converted is skipped, logged and counted
in the summary's `skipped` by reason: `bad_json`, `missing_field`, `unreadable_rgb`, `unreadable_depth`,
`unreadable_mask` (missing, special, corrupt or larger than `max_pixels` files), `bad_entry` (e.g.
intrinsics that do not match the image) and `no_valid_pixel`.

A public dataset (`--dataset NAME --root ROOT [--split SPLIT]`, or `--source public`) is read by its reader
in `depthlm_hf.data.public` (Argoverse 2, Waymo, nuScenes, ScanNet++, Matterport3D, DDAD, ETH3D, SUN RGB-D,
NYUv2): the output gets `<NAME>_<SPLIT>.jsonl` and `rgb/<SPLIT>/<n>.png`, records named NAME, every frame of
the split (`num_images` does not apply). A frame that cannot be read is skipped as `bad_frame`.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from depthlm_hf.choices import check_choice
from depthlm_hf.data.convert import rgbd_to_record
from depthlm_hf.data.records import to_jsonable
from depthlm_hf.data.synthetic.scenes import SyntheticDataset
from depthlm_hf.geometry import DistanceKind
from depthlm_hf.prompting.imaging import DEFAULT_MAX_PIXELS, check_regular_file, load_image, open_image

logger = logging.getLogger(__name__)

Source = Literal["synthetic", "manifest", "public"]


@dataclass
class PrepareArguments:
    """Arguments of `depthlm prepare`."""

    output_dir: str = field(
        metadata={"help": "Folder to write `<dataset>.jsonl` and `rgb/` into.", "aliases": ["--output"]}
    )
    source: str | None = field(
        default=None,
        metadata={"help": "'synthetic' (procedural scenes), 'manifest' or 'public' (default: 'public' with `root`)."},
    )
    root: str | None = field(default=None, metadata={"help": "Public dataset: its root folder (as downloaded)."})
    split: str | None = field(
        default=None, metadata={"help": "Public dataset: the split to read (default: the dataset's first)."}
    )
    depth_decoding: str = field(
        default="release",
        metadata={"help": "SUN RGB-D / NYUv2 depth PNGs: 'release' (value / 10000) or 'toolbox' (bit shift, mm)."},
    )
    manifest: str | None = field(default=None, metadata={"help": "RGB-D manifest jsonl (for `source=manifest`)."})
    preset: str = field(default="indoor", metadata={"help": "Synthetic scene preset: indoor, outdoor or ground."})
    num_images: int = field(default=100, metadata={"help": "Synthetic images to render (manifest: all lines)."})
    num_points: int = field(default=100, metadata={"help": "Labelled pixels sampled per image (paper: 100)."})
    seed: int = field(default=0, metadata={"help": "Seed of the pixel sampling (and of the synthetic scenes)."})
    depth_kind: DistanceKind = field(
        default="z", metadata={"help": "Manifest depth holds 'z' (principal-axis) or 'euclidean'."}
    )
    depth_scale: float = field(default=1.0, metadata={"help": "Depth units per metre (1000 for millimetre PNGs)."})
    min_depth: float = field(default=0.0, metadata={"help": "Smallest Euclidean distance kept [m]."})
    max_depth: float = field(default=float("inf"), metadata={"help": "Largest Euclidean distance kept [m]."})
    border: int = field(default=0, metadata={"help": "Keep sampled pixels this far from the image edges [px]."})
    dataset: str | None = field(
        default=None,
        metadata={"help": "Dataset name (default: the output folder's name); with `root`, the public dataset to read."},
    )
    max_pixels: int = field(
        default=DEFAULT_MAX_PIXELS,
        metadata={"help": "Largest RGB, depth or mask image read [px] (decompression-bomb guard); raise if trusted."},
    )

    def __post_init__(self) -> None:
        if self.source is None:
            self.source = "public" if self.root else "synthetic"
        check_choice("source", self.source, Source)
        from depthlm_hf.data.public.frames import DepthDecoding  # the readers import this module

        check_choice("depth_decoding", self.depth_decoding, DepthDecoding)
        check_choice("depth_kind", self.depth_kind, DistanceKind)
        for name in ("num_images", "num_points", "max_pixels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}.")
        if not (math.isfinite(self.depth_scale) and self.depth_scale > 0):
            raise ValueError(f"`depth_scale` must be finite and > 0 (depth units per metre), got {self.depth_scale}.")
        if not (self.min_depth >= 0 and self.max_depth > self.min_depth):
            raise ValueError(
                f"`min_depth` and `max_depth` must satisfy 0 <= min_depth < max_depth [m], got "
                f"{self.min_depth} and {self.max_depth}."
            )
        if self.border < 0:
            raise ValueError(f"`border` must be >= 0 [px], got {self.border}.")
        if self.source == "manifest":
            check_manifest(self.manifest)
        if self.source == "public":
            self._check_public()

    def _check_public(self) -> None:
        from depthlm_hf.data.public import public_dataset

        if not self.dataset:
            raise ValueError("`dataset` is required with `root` (`source=public`): the public dataset to read.")
        self.split = self.split or public_dataset(self.dataset).splits[0]
        public_dataset(self.dataset, self.split)
        if not self.root or not Path(self.root).is_dir():
            raise ValueError(f"`root` must be the folder of the public dataset {self.dataset!r}, got {self.root!r}.")


MANIFEST_KEYS = ("rgb", "depth", "intrinsics")


def check_manifest(manifest: str | None) -> None:
    """Refuse, up front, a `manifest` that is missing, not a regular file, or whose first line is not a manifest
    entry (a JSON object with `rgb`, `depth` and `intrinsics`): a wrong file, not a few bad lines."""
    if not manifest:
        raise ValueError("`manifest` is required with `source=manifest`: a jsonl file of RGB-D entries.")
    try:
        check_regular_file(manifest, "manifest")
        with open(manifest, "rb") as f:
            first = next((line for line in iter(lambda: f.readline(1 << 20), b"") if line.strip()), b"")
        entry = json.loads(first)
    except (OSError, ValueError) as err:
        raise ValueError(f"`manifest` {manifest!r} is not a readable jsonl manifest: {str(err)[:200]}") from None
    if not isinstance(entry, dict) or any(key not in entry for key in MANIFEST_KEYS):
        raise ValueError(
            f"`manifest` {manifest!r} does not look like an RGB-D manifest: its first entry must be a JSON object "
            f"with {', '.join(MANIFEST_KEYS)} (see `depthlm_hf.data.prepare`), got {first[:200]!r}."
        )


def read_depth(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, argument: str = "depth") -> np.ndarray:
    """A depth map (H, W) from `.npy` or an image file (16-bit PNG, float TIFF), as stored (not scaled).

    Guarded like RGB images: only a regular file is read, and a map of more than `max_pixels` pixels is
    refused from its header before its data are loaded; every failure is a ValueError naming `argument`.
    """
    if path.suffix != ".npy":
        return np.asarray(open_image(path, max_pixels, argument))
    check_regular_file(path, argument)
    try:
        header = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
        shape = header.shape
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"`{argument}` {str(path)!r} is not a readable .npy array: {err}") from None
    if len(shape) != 2 or math.prod(shape) > max_pixels:
        raise ValueError(
            f"`{argument}` {str(path)!r} must be an (H, W) map of at most `max_pixels` = {max_pixels} values, "
            f"got shape {shape}."
        )
    return np.array(header)


def _manifest_items(args: PrepareArguments) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    manifest = Path(args.manifest)
    with open(manifest) as f:
        for index, line in enumerate(line for line in f if line.strip()):
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError) as err:
                yield index, None, f"bad_json: {str(err)[:200]}"
                continue
            try:
                reason = "missing_field"
                rgb_path, depth_path, intrinsics = (entry[key] for key in MANIFEST_KEYS)
                reason = "unreadable_rgb"
                rgb = load_image(manifest.parent / rgb_path, args.max_pixels, exif_orientation=False)
                reason = "unreadable_depth"
                depth = read_depth(manifest.parent / depth_path, args.max_pixels)
                reason = "unreadable_mask"
                mask = entry.get("mask")
                mask = read_depth(manifest.parent / mask, args.max_pixels, "mask").astype(bool) if mask else None
                reason = "bad_entry"
                record = rgbd_to_record(
                    rgb,
                    depth,
                    intrinsics,
                    args.num_points,
                    np.random.SeedSequence([args.seed, index]).generate_state(1)[0],
                    depth_kind=args.depth_kind,
                    depth_scale=args.depth_scale,
                    valid_mask=mask,
                    depth_range=(args.min_depth, args.max_depth),
                    border=args.border,
                    scene=str(entry.get("scene", Path(str(rgb_path)).stem)),
                )
            # One bad entry (a missing key, a path of the wrong type, an unreadable or mismatched file) is
            # skipped and counted by the step that failed; the rest of the manifest is still converted.
            except (OSError, KeyError, TypeError, ValueError, OverflowError, AttributeError) as err:
                yield index, None, f"{reason}: {type(err).__name__}: {str(err)[:300]}"
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


def _public_items(args: PrepareArguments) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    from depthlm_hf.data.public import ReaderOptions, frame_to_record, public_dataset

    options = ReaderOptions(depth_decoding=args.depth_decoding, max_pixels=args.max_pixels)
    sources = public_dataset(args.dataset, args.split).read(Path(args.root), args.split, options)
    for index, (key, load) in enumerate(sources):
        try:
            frame = load()
            rng = np.random.default_rng(np.random.SeedSequence([args.seed, index]))
            record = frame_to_record(frame, args.num_points, rng)
        # One unreadable or malformed frame (a missing file, a bad table row) is skipped and counted; the rest go on.
        except (OSError, KeyError, IndexError, TypeError, ValueError, StopIteration) as err:
            yield index, None, f"bad_frame: {key}: {type(err).__name__}: {str(err)[:300]}"
            continue
        keep = (record["depth"] >= args.min_depth) & (record["depth"] <= args.max_depth)
        for field_name in ("pixel_coords", "depth", "z_depth"):
            record[field_name] = record[field_name][keep]
        yield index, record, ""


def prepare(args: PrepareArguments) -> dict[str, Any]:
    """Write the curated dataset; returns a summary (`images`, `points`, `skipped` by reason, `jsonl`)."""
    out = Path(args.output_dir)
    public = args.source == "public"
    items = {"synthetic": _synthetic_items, "manifest": _manifest_items, "public": _public_items}[args.source](args)
    # A public reader that does not recognise `root` raises on its first item: before anything is written.
    first = next(items, None)
    items = itertools.chain([first] if first is not None else [], items)
    images = out / "rgb" / args.split if public else out / "rgb"
    images.mkdir(parents=True, exist_ok=True)
    name = args.dataset or out.resolve().name
    jsonl = out / (f"{name}_{args.split}.jsonl" if public else f"{name}.jsonl")
    total = args.num_images if args.source == "synthetic" else None
    summary: dict[str, Any] = {"images": 0, "points": 0, "skipped": Counter(), "jsonl": str(jsonl)}
    with open(jsonl, "w") as f:
        for index, record, error in tqdm(items, total=total, desc=f"prepare {name}", unit="img"):
            if record is None:
                summary["skipped"][error.split(":", 1)[0]] += 1
                logger.warning("%s %d skipped: %s", "frame" if public else "manifest line", index, error)
                continue
            if len(record["depth"]) == 0:
                summary["skipped"]["no_valid_pixel"] += 1
                continue
            relative = f"{images.relative_to(out).as_posix()}/{index:07d}.png"
            image = record["image"]
            if not isinstance(image, Image.Image):
                image = load_image(image, args.max_pixels, exif_orientation=False)
            image.save(out / relative)
            record = {**record, "image": relative, "dataset": name}
            record.pop("index", None)
            f.write(json.dumps(to_jsonable(record)) + "\n")
            summary["images"] += 1
            summary["points"] += len(record["depth"])
    summary["skipped"] = dict(summary["skipped"])
    return summary
