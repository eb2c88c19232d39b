"""Dense RGB-D to curated records: N sampled valid pixels per image with their Euclidean distance labels.

Depth maps come as metres (float) or scaled integers (`depth_scale` units per metre, e.g. 1000 for
millimetres, 256 for KITTI), holding either the principal-axis depth Z ("z") or the distance along
the ray ("euclidean"). A pixel is valid when its depth is finite and > 0, the optional mask is true,
and its Euclidean label lies in `depth_range`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from depthlm_hf.choices import check_choice
from depthlm_hf.geometry import CameraIntrinsics, DistanceKind, euclidean_to_z


def decode_depth(depth: np.ndarray, depth_scale: float = 1.0) -> np.ndarray:
    """Depth map (H, W) in metres [m], float64: `depth / depth_scale`.

    >>> decode_depth(np.array([[1500, 0]], dtype=np.uint16), 1000.0).tolist()
    [[1.5, 0.0]]
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"`depth` must be a (H, W) map, got shape {depth.shape}.")
    if not depth_scale > 0:
        raise ValueError(f"`depth_scale` must be > 0 (units per metre), got {depth_scale!r}.")
    if depth_scale == 1.0:
        return depth.astype(np.float64, copy=False)
    return depth.astype(np.float64) / float(depth_scale)


def ray_norms(intrinsics: CameraIntrinsics) -> np.ndarray:
    """(H, W) length of the ray `((x - cx) / fx, (y - cy) / fy, 1)` through every pixel centre: Euclidean / Z.

    >>> ray_norms(CameraIntrinsics(1.0, 1.0, 1.0, 0.5, 2, 1)).round(6).tolist()
    [[1.5, 1.118034]]
    """
    x = (np.arange(intrinsics.width) - intrinsics.cx) / intrinsics.fx
    y = (np.arange(intrinsics.height) - intrinsics.cy) / intrinsics.fy
    return np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + 1.0)


def euclidean_depth_map(depth: np.ndarray, intrinsics: CameraIntrinsics, kind: DistanceKind = "z") -> np.ndarray:
    """Euclidean distance map (H, W) [m] from a depth map (H, W) [m] of `kind` "z" or "euclidean"."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(
            f"`depth` has shape {depth.shape} but the intrinsics describe a "
            f"{intrinsics.width}x{intrinsics.height} image."
        )
    if check_choice("depth_kind", kind, DistanceKind) == "euclidean":
        return depth
    return depth * ray_norms(intrinsics)


def valid_pixels(
    distance: np.ndarray,
    valid_mask: np.ndarray | None = None,
    depth_range: tuple[float, float] = (0.0, float("inf")),
    border: int = 0,
) -> np.ndarray:
    """(H, W) bool: distance [m] finite and in the closed `depth_range`, mask true, `border` px off the edges.

    >>> valid_pixels(np.array([[0.0, 2.0, np.nan, 50.0]]), depth_range=(0.5, 10.0)).tolist()
    [[False, True, False, False]]
    """
    lo, hi = depth_range
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(distance) & (distance > 0) & (distance >= lo) & (distance <= hi)
    if valid_mask is not None:
        mask = np.asarray(valid_mask, dtype=bool)
        if mask.shape != distance.shape:
            raise ValueError(f"`valid_mask` has shape {mask.shape}, the depth map {distance.shape}.")
        valid &= mask
    if border > 0:
        valid[:border], valid[-border:], valid[:, :border], valid[:, -border:] = False, False, False, False
    return valid


def sample_pixels(valid: np.ndarray, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """(min(N, #valid), 2) int `[x, y]` pixels drawn without replacement among the true pixels of `valid`.

    Sorted in row-major order, so the same generator state gives the same file.

    >>> sample_pixels(np.array([[True, False], [True, True]]), 5, np.random.default_rng(0)).tolist()
    [[0, 0], [0, 1], [1, 1]]
    """
    if isinstance(num_points, bool) or not isinstance(num_points, (int, np.integer)) or num_points < 1:
        raise ValueError(f"`num_points` must be a positive integer, got {num_points!r}.")
    flat = np.flatnonzero(valid)
    if flat.size > num_points:
        flat = np.sort(flat[rng.choice(flat.size, size=num_points, replace=False)])
    rows, cols = np.unravel_index(flat, valid.shape)
    return np.stack([cols, rows], axis=-1).astype(np.int64)


def rgbd_to_record(
    image: Image.Image | np.ndarray | str,
    depth: np.ndarray,
    intrinsics: CameraIntrinsics | list[float],
    num_points: int = 100,
    seed: int | np.random.Generator = 0,
    depth_kind: DistanceKind = "z",
    depth_scale: float = 1.0,
    valid_mask: np.ndarray | None = None,
    depth_range: tuple[float, float] = (0.0, float("inf")),
    border: int = 0,
    dataset: str = "",
    scene: str = "",
) -> dict[str, Any]:
    """A curated record with `num_points` valid pixels of one RGB-D image (paper: 100).

    Args:
        image: the RGB image (kept as given: a PIL image, an array or a path).
        depth: (H, W) depth map, metres or integers with `depth_scale` units per metre.
        intrinsics: of the image, `[fx, fy, cx, cy, width, height]` [px].
        seed: an int (or a generator) that fixes which pixels are drawn.
        depth_kind: whether `depth` holds principal-axis depth ("z") or ray distance ("euclidean").
        valid_mask: (H, W) bool, false where the sensor has no depth.
        depth_range: keep pixels whose Euclidean distance [m] lies in this closed range.
        border: keep pixels at least this many pixels from the image edges (room for markers).

    Returns a record with `pixel_coords` (N, 2) int [px], `depth` (N,) Euclidean [m] and `z_depth`
    (N,) [m]; N < `num_points` when the image has fewer valid pixels.

    >>> cam = CameraIntrinsics(2.0, 2.0, 0.5, 0.5, 2, 2)
    >>> rec = rgbd_to_record(np.zeros((2, 2, 3), np.uint8), np.full((2, 2), 4.0), cam, num_points=1)
    >>> rec["pixel_coords"].tolist(), rec["depth"].round(4).tolist(), rec["z_depth"].tolist()
    ([[1, 1]], [4.2426], [4.0])
    """
    intr = CameraIntrinsics.from_list(intrinsics)
    if (
        isinstance(image, np.ndarray)
        and image.shape[:2] != (intr.height, intr.width)
        or (isinstance(image, Image.Image) and image.size != (intr.width, intr.height))
    ):
        size = image.size if isinstance(image, Image.Image) else image.shape[1::-1]
        raise ValueError(f"`image` is {size[0]}x{size[1]} but the intrinsics describe {intr.width}x{intr.height}.")
    metres = decode_depth(depth, depth_scale)
    distance = euclidean_depth_map(metres, intr, depth_kind)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    coords = sample_pixels(valid_pixels(distance, valid_mask, depth_range, border), num_points, rng)
    labels = distance[coords[:, 1], coords[:, 0]]
    z = metres[coords[:, 1], coords[:, 0]] if depth_kind == "z" else euclidean_to_z(coords, labels, intr)
    return {
        "image": image,
        "intrinsics": intr.to_list(),
        "pixel_coords": coords,
        "depth": labels,
        "z_depth": z,
        "dataset": dataset,
        "scene": scene,
    }
