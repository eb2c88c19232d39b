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

from depthlm_hf.geometry import CameraIntrinsics, PixelTransform

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


def point_array(points: Any) -> np.ndarray:
    """`points` as a float (N, 2) array [px] (N may be 0; `None` is no point), or a `ValueError` naming `points`.

    >>> point_array([[3, 4]]).tolist(), point_array(None).shape
    ([[3.0, 4.0]], (0, 2))
    """
    if points is None:
        return np.zeros((0, 2))
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(
            f"`points` must be an (N, 2) array of [x, y] pixels; got a ragged or non-numeric {points!r}."
        ) from None
    if pts.size == 0:
        return np.zeros((0, 2))
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"`points` must have shape (N, 2) ([x, y] per point), got an array of shape {pts.shape}.")
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
