"""The processor's inputs, normalised in one place, and where query pixels land in the model image.

Nesting of `images`, `intrinsics` and `points` (decided by type and shape, never by argument name):

- `images`: one image (PIL, path, (H, W, 3) uint8 array) or a list/tuple of them;
- `intrinsics`: one camera (`CameraIntrinsics` or 6 numbers `[fx, fy, cx, cy, width, height]`) or a
  list with one camera per image;
- `points`: per image an (N, 2) array [px] of `[x, y]` input pixels; a single image may take the bare
  (N, 2) array; `None` means no point.

`QueryMapping` is the pure half of a prompt: the pixel map, the model image's camera and the mapped
query pixels with whether their markers fit; rendering (resize and draw) is
`DepthLMProcessor.render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from depthlm_hf.geometry import (
    MAX_UNIFIED_PIXELS,
    CameraIntrinsics,
    PixelTransform,
    release_focal_resize,
    release_map_points,
    unify_focal_length,
)
from depthlm_hf.prompting.markers import MarkerStyle, marker_fits
from depthlm_hf.tasks.text import get_task

Points = np.ndarray | Sequence[Sequence[float]]
"""(N, 2) [px] `[x, y]` pixels."""


@dataclass(frozen=True)
class QueryMapping:
    """Where the query pixels of one input image land in the model image (no pixel is drawn).

    Attributes:
        transform: the map from input pixels to model-image pixels (focal unification, then crop).
        intrinsics: camera intrinsics of the model image.
        source: (N, 2) float [px] query pixels of the input image.
        points: (N, 2) int [px] the query pixels in the model image (the markers' anchors).
        fits: (N,) bool, whether each point's marker lies wholly inside the model image.
    """

    transform: PixelTransform
    intrinsics: CameraIntrinsics
    source: np.ndarray
    points: np.ndarray
    fits: np.ndarray


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the model.

    Attributes:
        image: the resized (and cropped) RGB image with the markers drawn.
        points: (N, 2) int [px] query pixels in `image` (the markers' anchors).
        intrinsics: camera intrinsics of `image`.
        transform: the map from input pixels to `image` pixels.
    """

    image: Image.Image
    points: np.ndarray
    intrinsics: CameraIntrinsics
    transform: PixelTransform


def point_array(points: Any, finite: bool = True) -> np.ndarray:
    """`points` as a float (N, 2) array [px] (N may be 0; `None` is no point), or a `ValueError` naming `points`.

    NaN and inf are refused unless `finite` is False (a predicate such as `markable` answers False for them).

    >>> point_array([[3, 4]]).tolist(), point_array(None).shape
    ([[3.0, 4.0]], (0, 2))
    """
    if points is None:
        return np.zeros((0, 2))
    try:
        raw = np.asarray(points)
        # Booleans and strings would convert to floats silently (`[True, 2]` even to an int array); only real
        # numbers are pixels.
        leaves = raw.flat if isinstance(points, np.ndarray) else np.asarray(points, dtype=object).flat
        if raw.size and (raw.dtype.kind not in "iuf" or any(isinstance(v, (bool, np.bool_)) for v in leaves)):
            raise TypeError
        pts = raw.astype(np.float64)
    except (ValueError, TypeError):
        raise ValueError(
            f"`points` must be an (N, 2) array of [x, y] pixels (real numbers); got a ragged or non-numeric "
            f"{points!r:.200}."
        ) from None
    if pts.size == 0:
        return np.zeros((0, 2))
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"`points` must have shape (N, 2) ([x, y] per point), got an array of shape {pts.shape}.")
    if finite and not np.isfinite(pts).all():
        raise ValueError(f"`points` must be finite pixels, got {pts[~np.isfinite(pts).all(axis=1)][:3].tolist()}.")
    return pts


def _is_single_camera(value: Any) -> bool:
    if isinstance(value, CameraIntrinsics):
        return True
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0:
        return all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value)
    return False


def image_list(images: Any) -> list:
    """`images` as a list: a list/tuple stays, anything else is one image."""
    return list(images) if isinstance(images, (list, tuple)) else [images]


def pil_images(images: Any) -> list[Image.Image]:
    """The PIL images in `images` at any nesting (one image, a list per conversation, a batch of lists).

    >>> image = Image.new("RGB", (4, 3))
    >>> [i.size for i in pil_images([[image], [image, None]])]
    [(4, 3), (4, 3)]
    """
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, (list, tuple)):
        return [image for item in images for image in pil_images(item)]
    return []


def camera_list(intrinsics: Any, num_images: int) -> list:
    """One camera per image; a single camera (6 numbers or `CameraIntrinsics`) is one image's."""
    cameras = [intrinsics] if _is_single_camera(intrinsics) else list(intrinsics)
    if len(cameras) != num_images:
        raise ValueError(f"`intrinsics` has {len(cameras)} cameras for {num_images} images; pass one per image.")
    return cameras


def _depth(value: Any) -> int:
    """Nesting depth of a list/array (0 for a scalar); an empty list counts as depth 2 (no points)."""
    if isinstance(value, np.ndarray):
        return value.ndim
    if isinstance(value, (list, tuple)):
        return 1 + _depth(value[0]) if len(value) else 2
    return 0


def points_per_image(points: Any, num_images: int | None) -> list[np.ndarray]:
    """One float (N, 2) array [px] per image (see the module docstring for the accepted nesting).

    `num_images=None` takes the number of images from the nesting instead of checking it.

    >>> [p.shape for p in points_per_image([[1, 2], [3, 4]], 1)], [p.shape for p in points_per_image(None, 2)]
    ([(2, 2)], [(0, 2), (0, 2)])
    >>> [p.shape for p in points_per_image([[[1, 2]], [[3, 4], [5, 6]]], 2)]
    [(1, 2), (2, 2)]
    """
    if points is None:
        return [np.zeros((0, 2)) for _ in range(num_images)]
    if isinstance(points, np.ndarray):
        per_image = list(points) if points.ndim == 3 else [points]
    elif isinstance(points, (list, tuple)) and len(points) and all(_depth(p) == 2 for p in points):
        per_image = list(points)
    else:
        per_image = [points]  # one image's array (point_array checks its shape)
    if num_images is not None and len(per_image) != num_images:
        raise ValueError(
            f"`points` holds {len(per_image)} arrays for {num_images} images; pass one (N, 2) array per image."
        )
    return [point_array(p) for p in per_image]


def group_points(points: np.ndarray, per_query: int) -> list[np.ndarray]:
    """Consecutive groups of `per_query` rows of (N, 2) `points`; N must be a non-zero multiple of `per_query`."""
    if points.shape[0] == 0 or points.shape[0] % per_query:
        raise ValueError(
            f"`points` must be a non-empty (N, 2) array with N a multiple of {per_query} for this task, got shape "
            f"{points.shape}."
        )
    return [points[i : i + per_query] for i in range(0, points.shape[0], per_query)]


def inside(points: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(N,) bool: finite (N, 2) pixels [px] within the `camera`'s image, x in [0, W - 1], y in [0, H - 1].

    >>> inside(np.array([[0, 0], [640, 0.0]]), CameraIntrinsics(500, 500, 320, 240, 640, 480)).tolist()
    [True, False]
    """
    ok = np.isfinite(points).all(axis=1)
    x, y = np.nan_to_num(points[:, 0], nan=-1), np.nan_to_num(points[:, 1], nan=-1)
    return ok & (x >= 0) & (x <= camera.width - 1) & (y >= 0) & (y <= camera.height - 1)


def check_size(image: Image.Image, camera: CameraIntrinsics) -> None:
    """Raise a `ValueError` naming `intrinsics` when `camera` describes another image size than `image`'s."""
    if (image.width, image.height) != (camera.width, camera.height):
        raise ValueError(
            f"`intrinsics` describe a {camera.width}x{camera.height} image but `image` is {image.width}x{image.height}."
        )


def query_pixels(
    points: np.ndarray,
    camera: CameraIntrinsics,
    transform: PixelTransform,
    pixel_map: str = "exact",
    focal_length: float = 1000.0,
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """The model-image pixels (N, 2) int [px] of (N, 2) [px] input `points` (the markers' anchors).

    "exact": the nearest pixel to the point's exact image under `transform`; "release": the official
    release's truncation at f* = `focal_length` (`release_map_points`), shifted by the crop's (left, top).

    >>> cam = CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)
    >>> from depthlm_hf.geometry import release_focal_resize, unify_focal_length
    >>> query_pixels(np.array([[519.0, 129.0]]), cam, unify_focal_length(cam, 1000.0)).tolist()
    [[928, 232]]
    >>> query_pixels(np.array([[519.0, 129.0]]), cam, release_focal_resize(cam, 750.0), "release", 750.0).tolist()
    [[695, 172]]
    """
    if len(points) == 0:
        return np.zeros((0, 2), np.int64)
    if pixel_map == "release":
        mapped = release_map_points(points, camera, focal_length)
        return mapped - np.asarray(crop[:2], dtype=np.int64) if crop is not None else mapped
    return np.rint(transform.map_points(points)).astype(np.int64)


def markable_points(
    points: np.ndarray,
    camera: CameraIntrinsics,
    transform: PixelTransform,
    style: MarkerStyle,
    pixel_map: str = "exact",
    focal_length: float = 1000.0,
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """(N,) bool: the (N, 2) [px] input pixel lies in the input image and its marker, anchored at its
    `query_pixels` pixel, lies wholly inside the `transform`'s output image (`marker_fits`)."""
    ok = inside(points, camera)
    if ok.any():
        mapped = query_pixels(points[ok], camera, transform, pixel_map, focal_length, crop)
        ok[ok] = marker_fits(mapped, transform.out_width, transform.out_height, style)
    return ok


def focal_transform(
    camera: CameraIntrinsics | Sequence[float],
    focal_length: float,
    focal_mode: str = "xy",
    pixel_map: str = "exact",
    max_pixels: int = MAX_UNIFIED_PIXELS,
) -> PixelTransform:
    """The resize that gives `camera` (intrinsics `[fx, fy, cx, cy, width, height]`) the unified focal length [px];
    `UnifiedImageTooLargeError` (a ValueError) when the resized image would exceed `max_pixels`.

    >>> cam = CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)
    >>> [(t.out_width, t.out_height) for t in (focal_transform(cam, 750.0, "fx", m) for m in ("exact", "release"))]
    [(857, 643), (857, 643)]
    """
    camera = CameraIntrinsics.from_list(camera)
    if pixel_map == "release":
        return release_focal_resize(camera, focal_length, max_pixels)
    return unify_focal_length(camera, focal_length, focal_mode, max_pixels)


def unfit_reasons(
    points: np.ndarray, camera: CameraIntrinsics, markable: np.ndarray, style: MarkerStyle, per_query: int = 1
) -> list[str | None]:
    """Why each query of `per_query` consecutive (N, 2) [px] input pixels cannot be asked, `None` if it can.

    `markable` (N,) bool is `DepthLMProcessor.markable`'s verdict; `style` the `MarkerStyle` it used.

    >>> cam = CameraIntrinsics(500, 500, 320, 240, 640, 480)
    >>> unfit_reasons(np.array([[9.0, 9], [700, 9], [0, 0]]), cam, np.array([True, False, False]), MarkerStyle())
    [None, 'outside the 640x480 image', 'too near the border for its arrow marker (size 5)']
    """
    within = inside(points, camera)
    per_point = [
        None
        if ok
        else f"outside the {camera.width}x{camera.height} image"
        if not in_image
        else f"too near the border for its {style.shape} marker (size {style.size})"
        for ok, in_image in zip(np.asarray(markable).tolist(), within.tolist(), strict=True)
    ]
    groups = [per_point[i : i + per_query] for i in range(0, len(per_point), per_query)]
    return [next((r for r in group if r is not None), None) for group in groups]


def split_unfit(
    processor: Any, queries: Sequence[tuple[Any, Any, Any]], task: str = "distance"
) -> tuple[list[tuple[Any, Any, Any]], list[str | None]]:
    """The `(image, intrinsics, points)` queries whose markers fit, and for every query (in order) why it does not.

    Returns `(kept, reasons)`: `kept` holds each image with only its askable points (images left with none are
    dropped), `reasons` one entry per query of the task's points (`None`: asked). The rule is
    `processor.markable`. Raises `TypeError` when a query is not such a tuple and `ValueError` naming `points`
    when an image's count is not a non-zero multiple of the task's points per query; multi-image tasks pass
    through unchanged (the predictor refuses them).
    """
    if not all(isinstance(query, (tuple, list)) and len(query) == 3 for query in queries):
        raise TypeError("`queries` must be a list of (image, intrinsics, points) tuples.")
    spec = get_task(task)
    if spec.num_images != 1:
        return list(queries), []
    kept, reasons = [], []
    for image, intrinsics, points in queries:
        pts, camera = point_array(points), CameraIntrinsics.from_list(intrinsics)
        if len(pts) == 0 or len(pts) % spec.num_points:
            raise ValueError(
                f"`points` must hold a non-zero multiple of {spec.num_points} pixels for task {task!r}, got {len(pts)}."
            )
        why = unfit_reasons(pts, camera, processor.markable(camera, pts), processor.marker_style, spec.num_points)
        asked = np.repeat([reason is None for reason in why], spec.num_points)
        reasons += why
        if asked.any():
            kept.append((image, camera, pts[asked]))
    return kept, reasons


def values_per_image(values: Sequence[float | None], points: Any, per_query: int) -> list[dict[str, Any]]:
    """Answers in query order -> one dict per image: `{"depth": (Q,) float array, NaN for None; "values": the
    list with None; "points": (N, 2) [px]}`, Q = N / `per_query`; `points` nest as in `points_per_image`.

    >>> [d["values"] for d in values_per_image([1.5, None, 2.0], [[[1, 1], [2, 2]], [[3, 3]]], 1)]
    [[1.5, None], [2.0]]
    """
    per_image = points_per_image(points, None)
    counts = [len(group_points(pts, per_query)) for pts in per_image]
    if sum(counts) != len(values):
        raise ValueError(f"`generated` holds {len(values)} answers but `points` ask {sum(counts)} queries.")
    ends = np.cumsum([0, *counts])
    return [
        {
            "depth": np.array([np.nan if v is None else v for v in values[a:b]], dtype=np.float64),
            "values": list(values[a:b]),
            "points": pts,
        }
        for a, b, pts in zip(ends[:-1], ends[1:], per_image, strict=True)
    ]
