"""Point clouds from a DepthLM model: one query per pixel of a regular grid, back-projected to 3D.

`point_cloud(predictor, image, intrinsics, num_points=10_000)` asks the model for the distance of each
grid pixel, back-projects the answers with the camera (`depthlm_hf.geometry.backproject`), and returns
points [m], colours and the model's confidence. `PointCloud.save_ply` writes a standard PLY file through
`plyfile`; `PointCloud.depth_map` interpolates the grid into a dense (H, W) depth map with numpy only
(normalised bilinear interpolation: a missing answer simply gets no weight, no SciPy needed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from depthlm_hf.choices import check_choice
from depthlm_hf.geometry import CameraIntrinsics, DistanceKind, backproject, euclidean_to_z
from depthlm_hf.prompting.imaging import load_image


@dataclass
class PointCloud:
    """N query pixels on a `grid_shape` = (rows, cols) grid and what the model said about them.

    Attributes:
        pixels: (N, 2) int [px] query pixels `[x, y]` of the input image, row-major over the grid.
        distance: (N,) [m] Euclidean distance from the camera centre; NaN where the answer was unusable.
        points: (N, 3) [m] camera-frame points (x right, y down, z forward); NaN rows where invalid.
        colors: (N, 3) uint8 RGB of the query pixels.
        confidence: (N,) in [0, 1], NaN where invalid.
        intrinsics: the input image's camera.
        grid_shape: (rows, cols) with rows * cols = N.
    """

    pixels: np.ndarray
    distance: np.ndarray
    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray
    intrinsics: CameraIntrinsics
    grid_shape: tuple[int, int]

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: the model gave a finite distance > 0."""
        return np.isfinite(self.distance) & (self.distance > 0)

    def save_ply(self, path: str | os.PathLike, min_confidence: float = 0.0) -> int:
        """Write the valid points with confidence >= `min_confidence` as a binary PLY; returns how many.

        Vertex properties: `x, y, z` (float32, [m]), `red, green, blue` (uint8), `confidence` (float32).
        """
        from plyfile import PlyData, PlyElement

        keep = self.valid & (np.nan_to_num(self.confidence, nan=-1.0) >= min_confidence)
        vertex = np.empty(
            int(keep.sum()),
            dtype=[
                ("x", "f4"),
                ("y", "f4"),
                ("z", "f4"),
                ("red", "u1"),
                ("green", "u1"),
                ("blue", "u1"),
                ("confidence", "f4"),
            ],
        )
        for i, axis in enumerate("xyz"):
            vertex[axis] = self.points[keep, i]
        for i, channel in enumerate(("red", "green", "blue")):
            vertex[channel] = self.colors[keep, i]
        vertex["confidence"] = self.confidence[keep]
        PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))
        return int(keep.sum())

    def depth_map(self, kind: DistanceKind = "z") -> np.ndarray:
        """A dense (H, W) [m] map: bilinear between grid pixels, constant beyond the outer grid lines.

        `kind="z"` interpolates the depth along the optical axis, `"euclidean"` the distance from the
        camera centre. Missing answers are first filled from their valid grid neighbours, so the map is
        NaN only when no answer at all is valid.
        """
        if check_choice("kind", kind, DistanceKind) == "z":
            values = np.full(len(self.distance), np.nan)
            ok = self.valid
            values[ok] = euclidean_to_z(self.pixels[ok], self.distance[ok], self.intrinsics)
        else:
            values = self.distance
        rows, cols = self.grid_shape
        grid = values.reshape(rows, cols)
        xs, ys = self.pixels[:cols, 0], self.pixels[::cols, 1]
        return interpolate_grid(grid, xs, ys, self.intrinsics.width, self.intrinsics.height)


def _hat_weights(coords: np.ndarray, size: int) -> np.ndarray:
    """(size, len(coords)) linear-interpolation weights of each pixel 0..size-1 on sorted grid coordinates."""
    pixels = np.clip(np.arange(size, dtype=np.float64), coords[0], coords[-1])
    weights = np.zeros((size, len(coords)))
    if len(coords) == 1:
        weights[:, 0] = 1.0
        return weights
    right = np.clip(np.searchsorted(coords, pixels, side="right"), 1, len(coords) - 1)
    left = right - 1
    t = (pixels - coords[left]) / (coords[right] - coords[left])
    weights[np.arange(size), left] = 1.0 - t
    weights[np.arange(size), right] += t
    return weights


def interpolate_grid(grid: np.ndarray, xs: np.ndarray, ys: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear interpolation of a (rows, cols) grid onto a (height, width) image, NaN holes filled first.

    `xs` (cols,) and `ys` (rows,) [px] are the grid's increasing pixel coordinates. A NaN grid value
    takes the mean of its valid 4-neighbours, repeatedly, until every hole is filled.

    >>> interpolate_grid(np.array([[1.0, 3.0]]), np.array([0, 2]), np.array([0]), 4, 1).tolist()
    [[1.0, 2.0, 3.0, 3.0]]
    >>> interpolate_grid(np.array([[1.0, np.nan, 3.0]]), np.array([0, 1, 2]), np.array([0]), 3, 1).tolist()
    [[1.0, 2.0, 3.0]]
    """
    grid = fill_holes(np.asarray(grid, dtype=np.float64))
    wy = _hat_weights(np.asarray(ys, np.float64), height)
    wx = _hat_weights(np.asarray(xs, np.float64), width)
    return wy @ grid @ wx.T


def fill_holes(grid: np.ndarray) -> np.ndarray:
    """A copy of 2D `grid` whose NaNs take the mean of their valid 4-neighbours, repeated until none is left.

    An all-NaN grid stays NaN.

    >>> fill_holes(np.array([[1.0, np.nan, np.nan, 4.0]])).tolist()
    [[1.0, 1.0, 4.0, 4.0]]
    """
    grid = grid.copy()
    while True:
        holes = ~np.isfinite(grid)
        if not holes.any() or holes.all():
            return grid
        values = np.pad(np.where(holes, 0.0, grid), 1)
        counts = np.pad((~holes).astype(np.float64), 1)
        total = values[:-2, 1:-1] + values[2:, 1:-1] + values[1:-1, :-2] + values[1:-1, 2:]
        count = counts[:-2, 1:-1] + counts[2:, 1:-1] + counts[1:-1, :-2] + counts[1:-1, 2:]
        fill = holes & (count > 0)
        grid[fill] = total[fill] / count[fill]


def query_grid(
    intrinsics: CameraIntrinsics, num_points: int, fits: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """A regular grid of about `num_points` pixels, the image's aspect ratio: ((N, 2) int [px], (rows, cols)).

    `fits` (H, W) bool, when given, is where a query may sit (its marker fits in the model image); the
    grid spans the bounding box of those pixels.

    >>> pixels, shape = query_grid(CameraIntrinsics(500, 500, 320, 240, 640, 480), 12)
    >>> shape, pixels[:2].tolist(), pixels[-1].tolist()
    ((3, 4), [[0, 0], [213, 0]], [639, 479])
    """
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"`num_points` must be a positive integer, got {num_points!r}.")
    x0, y0, x1, y1 = 0, 0, intrinsics.width - 1, intrinsics.height - 1
    if fits is not None:
        cols_ok, rows_ok = np.flatnonzero(fits.any(axis=0)), np.flatnonzero(fits.any(axis=1))
        if len(cols_ok) == 0:
            raise ValueError("No pixel of the image can carry a marker: the image is too small for the marker style.")
        x0, x1, y0, y1 = cols_ok[0], cols_ok[-1], rows_ok[0], rows_ok[-1]
    w, h = x1 - x0 + 1, y1 - y0 + 1
    cols = int(np.clip(round(math.sqrt(num_points * w / h)), 1, w))
    rows = int(np.clip(num_points // cols, 1, h))
    xs = np.unique(np.rint(np.linspace(x0, x1, cols)).astype(np.int64))
    ys = np.unique(np.rint(np.linspace(y0, y1, rows)).astype(np.int64))
    grid_x, grid_y = np.meshgrid(xs, ys)
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1), (len(ys), len(xs))


def point_cloud(
    predictor,
    image: Image.Image | str | np.ndarray,
    intrinsics: CameraIntrinsics | Sequence[float],
    num_points: int = 10_000,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> PointCloud:
    """Ask `predictor` (a `DepthLMPredictor`) the distance of ~`num_points` grid pixels; back-project them.

    The grid covers the pixels whose marker fits in the model image (a few pixels of border are left
    out). `batch_size` and `progress` go to `predictor.predict`.
    """
    image = load_image(image, predictor.processor.max_image_pixels)
    camera = CameraIntrinsics.from_list(intrinsics)
    pixels, shape = query_grid(camera, num_points, predictor.processor.markable(camera))
    answer = predictor.predict(image, camera, pixels, batch_size=batch_size, progress=progress)
    distance = answer.as_array()
    ok = np.isfinite(distance) & (distance > 0)
    points = np.full((len(pixels), 3), np.nan)
    points[ok] = backproject(pixels[ok], distance[ok], camera)
    colors = np.asarray(image.convert("RGB"))[pixels[:, 1], pixels[:, 0]].astype(np.uint8)
    confidence = np.where(ok, answer.confidence, np.nan)
    return PointCloud(pixels, np.where(ok, distance, np.nan), points, colors, confidence, camera, shape)
