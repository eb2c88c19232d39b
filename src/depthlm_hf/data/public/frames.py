"""What every public-dataset reader hands over: one camera frame, and the geometry shared by the readers.

A reader yields `(key, load)` pairs; `load()` returns a :class:`Frame`: the RGB image as the model will see
it, its pinhole intrinsics, and either the 3D points seen by the camera (lidar datasets) or a dense
principal-axis depth map (RGB-D datasets). :func:`frame_to_record` turns a frame into a curated record with
`num_points` labelled pixels: `depth` is the Euclidean distance [m] of each pixel's 3D point, `z_depth` its
principal-axis depth [m].

Camera frames follow OpenCV: x right, y down, z forward; pixel `(x, y)` is the centre of column x, row y.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from depthlm_hf.data.convert import rgbd_to_record, sample_pixels
from depthlm_hf.geometry import CameraIntrinsics

DepthDecoding = Literal["release", "toolbox"]


@dataclass(frozen=True)
class ReaderOptions:
    """Options some readers take (each reader ignores the others).

    Args:
        depth_decoding: SUN RGB-D and NYUv2 depth PNGs: "release" divides the stored value by 10,000 as the
            release's curation does; "toolbox" undoes the PNG's 3-bit rotation and divides by 1,000, capped at
            8 m, as the SUN RGB-D toolbox's `read3dPoints.m` does (metres 1.25x the release's).
        max_pixels: largest image read [px] (decompression-bomb guard).
    """

    depth_decoding: DepthDecoding = "release"
    max_pixels: int = 64_000_000


@dataclass
class Frame:
    """One camera image with its labels, ready for :func:`frame_to_record`.

    Args:
        image: the RGB image (as written to the curated dataset).
        intrinsics: pinhole intrinsics of `image` [px].
        scene: scene, log or sequence name.
        points: (N, 3) 3D points in the camera frame [m] (lidar datasets), or None.
        depth: (H, W) principal-axis depth [m] at the image's resolution (RGB-D datasets), or None.
        valid: (H, W) bool, the dataset's rule for pixels with a usable depth (with `depth`).
        depth_range: closed range [m] of the Euclidean distances kept.
        border: pixels this close to an image edge [px] are never labelled.
    """

    image: Image.Image
    intrinsics: CameraIntrinsics
    scene: str
    points: np.ndarray | None = None
    depth: np.ndarray | None = None
    valid: np.ndarray | None = None
    depth_range: tuple[float, float] = (0.0, math.inf)
    border: int = 0


FrameSource = tuple[str, Callable[[], Frame]]
Reader = Callable[..., Iterator[FrameSource]]


def project_points(points: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Nearest pixel `[x, y]` (N, 2) int of each camera-frame point (N, 3) [m], and whether it is seen.

    A point is seen when it lies in front of the camera (z > 0) and its pixel inside the image.

    >>> cam = CameraIntrinsics(100.0, 100.0, 1.5, 1.5, 4, 4)
    >>> pix, seen = project_points(np.array([[0.0, 0.0, 2.0], [0.02, -0.01, 1.0], [0, 0, -1.0]]), cam)
    >>> pix.tolist(), seen.tolist()
    ([[2, 2], [4, 1], [0, 0]], [True, False, False])
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    z = points[:, 2]
    ahead = z > 0
    safe = np.where(ahead, z, 1.0)
    x = np.floor(intrinsics.fx * points[:, 0] / safe + intrinsics.cx + 0.5)
    y = np.floor(intrinsics.fy * points[:, 1] / safe + intrinsics.cy + 0.5)
    seen = ahead & (x >= 0) & (x < intrinsics.width) & (y >= 0) & (y < intrinsics.height)
    pixels = np.stack([np.where(ahead, x, 0), np.where(ahead, y, 0)], axis=-1).astype(np.int64)
    return pixels, seen


def nearest_point_per_pixel(points: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) bool of pixels hit by a point and (H, W) int index of the nearest point there (-1 elsewhere).

    Keeping the nearest point (a z-buffer) drops lidar points hidden from the camera behind a closer surface.

    >>> cam = CameraIntrinsics(10.0, 10.0, 0.5, 0.5, 2, 2)
    >>> hit, index = nearest_point_per_pixel(np.array([[0.0, 0, 5.0], [0.0, 0, 3.0], [-0.2, -0.2, 4.0]]), cam)
    >>> index.tolist()
    [[2, -1], [-1, 1]]
    """
    pixels, seen = project_points(points, intrinsics)
    index = np.full(intrinsics.height * intrinsics.width, -1, dtype=np.int64)
    candidates = np.flatnonzero(seen)
    distance = np.linalg.norm(np.asarray(points, dtype=np.float64).reshape(-1, 3)[candidates], axis=1)
    flat = pixels[candidates, 1] * intrinsics.width + pixels[candidates, 0]
    order = np.lexsort((distance, flat))  # by pixel, nearest first
    first = np.unique(flat[order], return_index=True)[1]
    index[flat[order][first]] = candidates[order][first]
    index = index.reshape(intrinsics.height, intrinsics.width)
    return index >= 0, index


def frame_to_record(frame: Frame, num_points: int, rng: np.random.Generator) -> dict:
    """A curated record with up to `num_points` labelled pixels of `frame` (see :mod:`depthlm_hf.data.records`).

    Lidar frames: each pixel hit by a point (the nearest one there) is a candidate, labelled with that point's
    Euclidean distance and z; dense frames: :func:`~depthlm_hf.data.convert.rgbd_to_record` on the depth map.
    """
    if frame.depth is not None:
        return rgbd_to_record(
            frame.image,
            frame.depth,
            frame.intrinsics,
            num_points,
            rng,
            depth_kind="z",
            valid_mask=frame.valid,
            depth_range=frame.depth_range,
            border=frame.border,
            scene=frame.scene,
        )
    points = np.asarray(frame.points, dtype=np.float64).reshape(-1, 3)
    hit, index = nearest_point_per_pixel(points, frame.intrinsics)
    distance = np.linalg.norm(points, axis=1)
    lo, hi = frame.depth_range
    keep = hit.copy()
    keep[hit] = (distance[index[hit]] >= lo) & (distance[index[hit]] <= hi)
    if frame.border > 0:
        b = frame.border
        keep[:b], keep[-b:], keep[:, :b], keep[:, -b:] = False, False, False, False
    coords = sample_pixels(keep, num_points, rng)
    chosen = index[coords[:, 1], coords[:, 0]]
    return {
        "image": frame.image,
        "intrinsics": frame.intrinsics.to_list(),
        "pixel_coords": coords,
        "depth": distance[chosen],
        "z_depth": points[chosen, 2],
        "dataset": "",
        "scene": frame.scene,
    }


# -- rigid transforms ---------------------------------------------------------------------------------------
def quaternion_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    """(3, 3) rotation of the unit quaternion `w + xi + yj + zk` (normalised first).

    >>> quaternion_matrix(math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)).round(6).tolist()
    [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    q = np.array([w, x, y, z], dtype=np.float64)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(4, 4) homogeneous transform from a (3, 3) rotation and a (3,) translation [m]."""
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rotation, np.asarray(translation, dtype=np.float64).reshape(3)
    return matrix


def apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) mapped by a (4, 4) transform.

    >>> apply(rigid(np.eye(3), [1, 2, 3]), np.zeros((1, 3))).tolist()
    [[1.0, 2.0, 3.0]]
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return points @ transform[:3, :3].T + transform[:3, 3]


# -- image resampling ---------------------------------------------------------------------------------------
def scale_image(
    image: Image.Image, intrinsics: CameraIntrinsics, scale: float, resample: int = Image.Resampling.LANCZOS
) -> tuple[Image.Image, CameraIntrinsics]:
    """`image` resized to `(int(W scale), int(H scale))` and its exact intrinsics (pixel-centre convention).

    >>> img, cam = scale_image(Image.new("RGB", (10, 4)), CameraIntrinsics(20.0, 20.0, 4.5, 1.5, 10, 4), 0.5)
    >>> img.size, cam.to_list()
    ((5, 2), [10.0, 10.0, 2.0, 0.5, 5, 2])
    """
    width, height = max(1, int(image.width * scale)), max(1, int(image.height * scale))
    sx, sy = width / image.width, height / image.height
    new = CameraIntrinsics(
        intrinsics.fx * sx,
        intrinsics.fy * sy,
        (intrinsics.cx + 0.5) * sx - 0.5,
        (intrinsics.cy + 0.5) * sy - 0.5,
        width,
        height,
    )
    return image.resize((width, height), resample), new


def sample_map(array: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, order: Literal[0, 1]) -> np.ndarray:
    """`array` (H, W[, C]) read at the source pixels (`map_x`, `map_y`) (h, w): nearest (`order` 0) or bilinear (1).

    Source pixels outside the image give 0.

    >>> a = np.array([[0.0, 10.0], [20.0, 30.0]])
    >>> sample_map(a, np.array([[0.5, 1.0, 2.0]]), np.array([[0.5, 0.0, 0.0]]), 1).tolist()
    [[15.0, 10.0, 0.0]]
    """
    height, width = array.shape[:2]
    if order == 0:
        x, y = np.floor(map_x + 0.5).astype(np.int64), np.floor(map_y + 0.5).astype(np.int64)
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        out = array[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)]
        out[~inside] = 0
        return out
    x0, y0 = np.floor(map_x).astype(np.int64), np.floor(map_y).astype(np.int64)
    fx, fy = map_x - x0, map_y - y0
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    xa, xb = np.clip(x0, 0, width - 1), np.clip(x0 + 1, 0, width - 1)
    ya, yb = np.clip(y0, 0, height - 1), np.clip(y0 + 1, 0, height - 1)
    if array.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    # Gather first, convert after: only the pixels read are ever held as floats.
    top = array[ya, xa].astype(np.float64) * (1 - fx) + array[ya, xb] * fx
    bottom = array[yb, xa].astype(np.float64) * (1 - fx) + array[yb, xb] * fx
    out = top * (1 - fy) + bottom * fy
    out[~inside] = 0
    return out


def undistort(
    array: np.ndarray,
    source: CameraIntrinsics,
    target: CameraIntrinsics,
    distort: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    order: Literal[0, 1],
    band: int = 256,
) -> np.ndarray:
    """`array` (H, W[, C]) of a distorted camera resampled to the pinhole camera `target` (h, w[, C]).

    Each target pixel's ray `((x - cx) / fx, (y - cy) / fy)` is distorted by `distort` (normalised coordinates
    in, normalised coordinates out) and read from `source` (`order` 0 nearest, for depth, float64; 1 bilinear,
    for colour, float32), in bands of `band` rows so that large images stay in bounded memory.
    """
    out = np.zeros((target.height, target.width, *array.shape[2:]), dtype=np.float32 if order else np.float64)
    xs = (np.arange(target.width) - target.cx) / target.fx
    for top in range(0, target.height, band):
        rows = np.arange(top, min(top + band, target.height))
        xn = np.broadcast_to(xs[None, :], (len(rows), target.width))
        yn = np.broadcast_to(((rows - target.cy) / target.fy)[:, None], xn.shape)
        xd, yd = distort(xn, yn)
        out[rows] = sample_map(array, source.fx * xd + source.cx, source.fy * yd + source.cy, order)
    return out
