"""What `depthlm predict` and the app write: the camera of an image, per-point answers, depth and preview images.

- `camera_for` picks the intrinsics of an image: given ones, a field of view (`--fov`), or the 35 mm-equivalent
  focal length of its EXIF data (phone photos carry it), in that order.
- `prediction_entries` turns a `DepthPrediction` into one JSON-ready dict per query, `null` with the reason
  where a query was not asked.
- `colorize_depth` maps an (H, W) [m] depth map through a matplotlib colormap (near = warm);
  `preview_image` draws the answered pixels and their values on the input image (PIL's `ImageDraw`).
- `write_outputs` saves `predictions.json`, and for a point cloud `point_cloud.ply` (plyfile, via
  `PointCloud.save_ply`) and `depth.png`, plus `preview.png`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from depthlm_hf.geometry import CameraIntrinsics, focal_from_35mm, intrinsics_from_fov
from depthlm_hf.inference.decoding import DepthPrediction
from depthlm_hf.inference.pointcloud import PointCloud
from depthlm_hf.inference.runstate import atomic_output

EXIF_IFD = 0x8769
FOCAL_35MM_TAG = 41989
"""`FocalLengthIn35mmFilm` in the EXIF sub-IFD [mm]."""


def exif_focal_35mm(image: Image.Image) -> float | None:
    """The 35 mm-equivalent focal length [mm] in `image`'s EXIF data, or `None` when it has none."""
    value = image.getexif().get_ifd(EXIF_IFD).get(FOCAL_35MM_TAG)
    return float(value) if value else None


def camera_for(
    image: Image.Image, intrinsics: Sequence[float] | None = None, fov: float | None = None
) -> tuple[CameraIntrinsics, str]:
    """The intrinsics of `image` and where they came from: "intrinsics", "fov" or "exif".

    Args:
        image: the input image (its size is the camera's).
        intrinsics: `[fx, fy, cx, cy]` or `[fx, fy, cx, cy, width, height]` [px], when known.
        fov: horizontal field of view [deg], when the intrinsics are unknown.
    """
    width, height = image.size
    if intrinsics is not None and fov is not None:
        raise ValueError(f"Pass `intrinsics` or `fov`, not both; got {list(intrinsics)!r} and {fov!r}.")
    if intrinsics is not None:
        values = [float(v) for v in intrinsics]
        if len(values) == 4:
            values += [width, height]
        camera = CameraIntrinsics.from_list(values)
        if (camera.width, camera.height) != (width, height):
            raise ValueError(
                f"`intrinsics` describe a {camera.width}x{camera.height} image but `image` is {width}x{height}."
            )
        return camera, "intrinsics"
    if fov is not None:
        return intrinsics_from_fov(width, height, float(fov)), "fov"
    focal_35mm = exif_focal_35mm(image)
    if focal_35mm is None:
        raise ValueError(
            "The camera is unknown: pass `intrinsics` [fx, fy, cx, cy] or a field of view `fov` [deg]; the image "
            "has no EXIF FocalLengthIn35mmFilm to read it from."
        )
    focal = focal_from_35mm(focal_35mm, width, height)
    return CameraIntrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height), "exif"


def prediction_entries(points: np.ndarray, prediction: DepthPrediction, per_query: int = 1) -> list[dict[str, Any]]:
    """One dict per query: `x, y` (or `points` for several per query), `value`, `confidence`, and `text` or `reason`.

    `points` (Q * per_query, 2) [px]; `value` and `confidence` are `None` for a query without an answer.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    reasons = prediction.reasons or [None] * len(prediction)
    entries = []
    for q, (value, confidence, text, reason) in enumerate(
        zip(prediction.values, prediction.confidence.tolist(), prediction.texts, reasons, strict=True)
    ):
        group = points[q * per_query : (q + 1) * per_query]
        entry: dict[str, Any] = {"x": _number(group[0, 0]), "y": _number(group[0, 1])}
        if per_query > 1:
            entry = {"points": [[_number(x), _number(y)] for x, y in group.tolist()]}
        entry["value"] = value
        entry["confidence"] = None if value is None or math.isnan(confidence) else confidence
        if reason is not None:
            entry["reason"] = reason
        elif value is None:
            entry["reason"] = f"no number in the model's answer {text!r}"
        else:
            entry["text"] = text
        entries.append(entry)
    return entries


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def colorize_depth(depth: np.ndarray, cmap: str = "Spectral") -> Image.Image:
    """An RGB image of an (H, W) [m] depth map: near is red, far is blue, over the 2nd-98th percentile; NaN black."""
    import matplotlib

    depth = np.asarray(depth, dtype=np.float64)
    finite = np.isfinite(depth)
    rgb = np.zeros((*depth.shape, 3), np.uint8)
    if finite.any():
        low, high = np.percentile(depth[finite], [2, 98])
        scaled = np.clip((depth - low) / max(high - low, 1e-6), 0, 1)
        rgb = (matplotlib.colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)
        rgb[~finite] = 0
    return Image.fromarray(rgb)


def preview_image(image: Image.Image, entries: Sequence[dict[str, Any]], unit: str = "m") -> Image.Image:
    """A copy of `image` with each single-pixel entry drawn: a ring and its value, a cross where it has none."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    radius = max(3, round(min(out.size) / 100))
    for entry in entries:
        if "x" not in entry:
            continue
        x, y = entry["x"], entry["y"]
        if entry["value"] is None:
            draw.line([(x - radius, y - radius), (x + radius, y + radius)], fill=(255, 0, 0), width=2)
            draw.line([(x - radius, y + radius), (x + radius, y - radius)], fill=(255, 0, 0), width=2)
            continue
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=(255, 255, 0), width=2)
        draw.text((x + radius + 2, y - radius), f"{entry['value']:.2f} {unit}", fill=(255, 255, 0), stroke_width=1,
                  stroke_fill=(0, 0, 0))  # fmt: skip
    return out


def write_outputs(
    output_dir: str | Path,
    image: Image.Image,
    info: dict[str, Any],
    entries: list[dict[str, Any]],
    cloud: PointCloud | None = None,
    unit: str = "m",
) -> dict[str, Path]:
    """Write `predictions.json` (`info` + `points`, + the `grid` of a cloud), `preview.png`, and for a cloud
    `point_cloud.ply` and `depth.png`; returns the written paths by name.

    All or nothing: every file is written to a temporary file beside it first (`atomic_output`), and they
    replace the outputs only when all were written; a full disk leaves the folder as it was and raises
    `OutputError` naming the file."""
    folder = Path(output_dir)
    paths = {"predictions": folder / "predictions.json", "preview": folder / "preview.png"}
    payload = {**info, "points": entries}
    if cloud is not None:
        paths["point_cloud"], paths["depth"] = folder / "point_cloud.ply", folder / "depth.png"
    with ExitStack() as stack:
        tmp = {name: stack.enter_context(atomic_output(path)) for name, path in paths.items()}
        if cloud is not None:
            written = cloud.save_ply(tmp["point_cloud"])
            colorize_depth(cloud.depth_map("z")).save(tmp["depth"], format="PNG")
            payload["grid"] = {"shape": list(cloud.grid_shape), "ply_points": written}
        tmp["predictions"].write_text(json.dumps(payload, indent=2) + "\n")
        preview_image(image, entries, unit).save(tmp["preview"], format="PNG")
    return paths
