"""Pinhole camera geometry: intrinsics, focal unification, crops, pixel mapping, back-projection.

Pure numpy: no PIL, no torch. Units are pixels [px] for image quantities and metres [m] for 3D ones.

Pixel convention (OpenCV's): integer coordinates are pixel *centres*, `x` is the column and `y` the
row, origin at the top-left pixel's centre. An image of width `W` spans the continuous range
`[-0.5, W - 0.5]`. Resizing by a factor `s` therefore maps `u -> s * (u + 0.5) - 0.5`, and the
principal point moves the same way, so `u - cx` scales by exactly `s` and back-projected rays are
unchanged. Every image operation here is an axis-aligned affine map, :class:`PixelTransform`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from depthlm_hf.choices import check_choice

FocalMode = Literal["xy", "fx"]
"""Focal unification: "xy" scales each axis to f*, "fx" both axes by f*/fx (the official release)."""
FOCAL_MODES: tuple[FocalMode, ...] = get_args(FocalMode)


class UnifiedImageTooLargeError(ValueError):
    """The focal-unified image would exceed its pixel limit (:func:`unify_focal_length`); data views skip
    such records and count them as `unified_too_large`."""


MAX_UNIFIED_PIXELS = 64_000_000
"""Largest focal-unified image (width x height [px]) built by default: the input images' default limit
(`depthlm_hf.prompting.imaging.DEFAULT_MAX_PIXELS`), so a tiny focal length cannot allocate gigabytes."""
DistanceKind = Literal["euclidean", "z"]
"""What a distance [m] measures: along the ray from the camera centre ("euclidean", the DepthLM label) or along
the principal axis ("z", a depth map's value)."""
DISTANCE_KINDS: tuple[DistanceKind, ...] = get_args(DistanceKind)


def check_finite_positive(name: str, value: float) -> float:
    """`value` as a float when it is a finite real number > 0, else a TypeError/ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be finite and > 0, got {value!r}.")
    return value


def _check_size(name: str, value: float) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a positive integer, got {type(value).__name__} {value!r}.")
    if not math.isfinite(float(value)) or float(value) != int(value) or int(value) <= 0:
        raise ValueError(f"`{name}` must be a positive integer number of pixels, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one image.

    Args:
        fx: horizontal focal length [px], finite and > 0.
        fy: vertical focal length [px], finite and > 0.
        cx: principal point's x [px] in the pixel-centre convention, finite and > 0.
        cy: principal point's y [px], finite and > 0.
        width: image width [px], a positive integer.
        height: image height [px], a positive integer.

    >>> cam = CameraIntrinsics.from_list([559.62, 558.14, 361.87, 241.99, 640, 480])
    >>> cam.to_list()
    [559.62, 558.14, 361.87, 241.99, 640, 480]
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            object.__setattr__(self, name, check_finite_positive(name, getattr(self, name)))
        for name in ("width", "height"):
            object.__setattr__(self, name, _check_size(name, getattr(self, name)))

    @classmethod
    def from_list(cls, values: Sequence[float] | np.ndarray | CameraIntrinsics) -> CameraIntrinsics:
        """Build from the curated-format list `[fx, fy, cx, cy, width, height]`."""
        if isinstance(values, CameraIntrinsics):
            return values
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise TypeError(
                f"`intrinsics` must be a CameraIntrinsics or a list [fx, fy, cx, cy, width, height], "
                f"got {type(values).__name__}."
            )
        if len(values) != 6:
            raise ValueError(
                f"`intrinsics` must have 6 values [fx, fy, cx, cy, width, height], got {len(values)}: {list(values)!r}."
            )
        return cls(*(v.item() if isinstance(v, np.generic) else v for v in values))

    def to_list(self) -> list[float]:
        """The curated-format list `[fx, fy, cx, cy, width, height]`."""
        return [self.fx, self.fy, self.cx, self.cy, self.width, self.height]

    @property
    def matrix(self) -> np.ndarray:
        """The (3, 3) calibration matrix K [px]."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class PixelTransform:
    """An axis-aligned affine map between two images: `x' = scale_x * x + offset_x` (same for y).

    Coordinates follow the pixel-centre convention of this module. `out_width` x `out_height` is the
    size of the output image [px].

    >>> t = resize_transform(640, 480, 2.0, 2.0)
    >>> (t.out_width, t.out_height), t.map_points([[0, 0]]).tolist()
    ((1280, 960), [[0.5, 0.5]])
    """

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    out_width: int
    out_height: int

    def map_points(self, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Map (N, 2) pixel coordinates [px] to the output image: (N, 2) float [px]."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts * [self.scale_x, self.scale_y] + [self.offset_x, self.offset_y]

    def unmap_points(self, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Inverse of :meth:`map_points`: (N, 2) output pixels [px] to input pixels [px]."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return (pts - [self.offset_x, self.offset_y]) / [self.scale_x, self.scale_y]

    def map_intrinsics(self, intrinsics: CameraIntrinsics) -> CameraIntrinsics:
        """Intrinsics of the output image."""
        ((cx, cy),) = self.map_points([[intrinsics.cx, intrinsics.cy]])
        return CameraIntrinsics(
            intrinsics.fx * self.scale_x, intrinsics.fy * self.scale_y, cx, cy, self.out_width, self.out_height
        )

    def source_box(self) -> tuple[float, float, float, float]:
        """The input region `(left, top, right, bottom)` in pixel-*edge* coordinates that the output covers.

        This is the `box` argument of `PIL.Image.resize`, so one resize call applies the whole map.
        """
        # In edge coordinates e = u + 0.5 the map is e' = s * e + (offset + 0.5 - 0.5 * s).
        bx = self.offset_x + 0.5 - 0.5 * self.scale_x
        by = self.offset_y + 0.5 - 0.5 * self.scale_y
        return (
            -bx / self.scale_x,
            -by / self.scale_y,
            (self.out_width - bx) / self.scale_x,
            (self.out_height - by) / self.scale_y,
        )

    def then(self, other: PixelTransform) -> PixelTransform:
        """The composition: first `self`, then `other`."""
        return PixelTransform(
            self.scale_x * other.scale_x,
            self.scale_y * other.scale_y,
            self.offset_x * other.scale_x + other.offset_x,
            self.offset_y * other.scale_y + other.offset_y,
            other.out_width,
            other.out_height,
        )


def identity_transform(width: int, height: int) -> PixelTransform:
    """The map that leaves a `width` x `height` image unchanged."""
    return PixelTransform(1.0, 1.0, 0.0, 0.0, _check_size("width", width), _check_size("height", height))


def resize_transform(width: int, height: int, scale_x: float, scale_y: float) -> PixelTransform:
    """Resize a `width` x `height` image by the exact factors `scale_x`, `scale_y`.

    The factors stay exact (focal lengths scale by exactly them) and the output size is floored, so
    the output covers only input that maps to whole output pixels (at most one input pixel is lost
    at the right and bottom edges; nothing is invented).

    >>> t = resize_transform(640, 480, 1000 / 559.62, 1000 / 558.14)
    >>> t.out_width, t.out_height
    (1143, 859)
    """
    width, height = _check_size("width", width), _check_size("height", height)
    scale_x, scale_y = check_finite_positive("scale_x", scale_x), check_finite_positive("scale_y", scale_y)
    out_w, out_h = max(1, math.floor(width * scale_x)), max(1, math.floor(height * scale_y))
    return PixelTransform(scale_x, scale_y, 0.5 * scale_x - 0.5, 0.5 * scale_y - 0.5, out_w, out_h)


def unify_focal_length(
    intrinsics: CameraIntrinsics,
    focal_length: float = 1000.0,
    mode: FocalMode = "xy",
    max_pixels: int = MAX_UNIFIED_PIXELS,
) -> PixelTransform:
    """The resize that makes the focal length `focal_length` [px].

    `mode="xy"` scales x by f*/fx and y by f*/fy, so both focal lengths become f* even when
    fx != fy. `mode="fx"` scales both axes by f*/fx, as the official DepthLM release does (fy is
    then off by the ratio fy/fx). A resized image of more than `max_pixels` pixels (a tiny focal
    length) is refused before anything is allocated.

    >>> cam = CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)
    >>> t = unify_focal_length(cam, 1000.0)
    >>> new = t.map_intrinsics(cam)
    >>> (new.width, new.height), round(new.fx, 9), round(new.fy, 9)
    ((1143, 859), 1000.0, 1000.0)
    >>> unify_focal_length(CameraIntrinsics(0.5, 0.5, 320, 240, 640, 480), 1000.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    depthlm_hf.geometry.UnifiedImageTooLargeError: `intrinsics` [0.5, ... give a 1.28e+06 x 9.6e+05 px unified image...
    """
    focal_length = check_finite_positive("focal_length", focal_length)
    if mode == "xy":
        scale_x, scale_y = focal_length / intrinsics.fx, focal_length / intrinsics.fy
    elif mode == "fx":
        scale_x = scale_y = focal_length / intrinsics.fx
    else:
        check_choice("mode", mode, FocalMode)
    _check_unified_size(intrinsics, focal_length, scale_x, scale_y, max_pixels)
    return resize_transform(intrinsics.width, intrinsics.height, scale_x, scale_y)


def _check_unified_size(
    intrinsics: CameraIntrinsics, focal_length: float, scale_x: float, scale_y: float, max_pixels: int
) -> None:
    width, height = intrinsics.width * scale_x, intrinsics.height * scale_y
    if not width * height <= max_pixels:  # also refuses inf and nan
        raise UnifiedImageTooLargeError(
            f"`intrinsics` {intrinsics.to_list()} with focal length {focal_length} [px] give a "
            f"{width:.4g} x {height:.4g} px unified image, more than `max_pixels` = {max_pixels}: "
            "the focal length is implausibly small (check its unit), or raise the limit if it is right."
        )


def release_focal_resize(
    intrinsics: CameraIntrinsics, focal_length: float, max_pixels: int = MAX_UNIFIED_PIXELS
) -> PixelTransform:
    """The official release's focal unification: both axes by s = f*/fx, the size truncated, the whole image resampled.

    The release resizes the whole image to `(int(W * s), int(H * s))`, so the pixels are resampled by
    `int(W * s) / W` and `int(H * s) / H` (slightly less than `s`); this transform describes that resampling.
    A resized image of more than `max_pixels` pixels is refused as in :func:`unify_focal_length`.

    >>> t = release_focal_resize(CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480), 750.0)
    >>> (t.out_width, t.out_height), t.scale_x == 857 / 640
    ((857, 643), True)
    """
    scale = check_finite_positive("focal_length", focal_length) / intrinsics.fx
    _check_unified_size(intrinsics, focal_length, scale, scale, max_pixels)
    out_w, out_h = max(1, int(intrinsics.width * scale)), max(1, int(intrinsics.height * scale))
    sx, sy = out_w / intrinsics.width, out_h / intrinsics.height
    return PixelTransform(sx, sy, 0.5 * sx - 0.5, 0.5 * sy - 0.5, out_w, out_h)


def release_map_points(
    points: np.ndarray | Sequence[Sequence[float]], intrinsics: CameraIntrinsics, focal_length: float
) -> np.ndarray:
    """Query pixels mapped as the official release maps them: (N, 2) int [px] in the unified image.

    With s = f*/fx the release computes `int((u - cx) * (fx * s / fx) + cx * s)` (and the same for v with
    fy), i.e. a corner-convention scale by s truncated toward zero, in this exact float order.

    >>> cam = CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)
    >>> release_map_points([[519, 129], [45, 56]], cam, 750.0).tolist()
    [[695, 172], [60, 75]]
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    scale = check_finite_positive("focal_length", focal_length) / intrinsics.fx
    kx, ky = intrinsics.fx * scale / intrinsics.fx, intrinsics.fy * scale / intrinsics.fy
    x = (pts[:, 0] - intrinsics.cx) * kx + intrinsics.cx * scale
    y = (pts[:, 1] - intrinsics.cy) * ky + intrinsics.cy * scale
    return np.trunc(np.stack([x, y], axis=-1)).astype(np.int64)


def crop_transform(width: int, height: int, left: int, top: int, crop_width: int, crop_height: int) -> PixelTransform:
    """Crop a `width` x `height` image to the window at (`left`, `top`) of size `crop_width` x `crop_height` [px].

    The window must lie inside the image.

    >>> crop_transform(100, 80, 10, 20, 50, 40).map_points([[10, 20]]).tolist()
    [[0.0, 0.0]]
    """
    width, height = _check_size("width", width), _check_size("height", height)
    crop_width, crop_height = _check_size("crop_width", crop_width), _check_size("crop_height", crop_height)
    if not (0 <= left <= width - crop_width and 0 <= top <= height - crop_height):
        raise ValueError(
            f"crop window (left={left}, top={top}, {crop_width}x{crop_height}) must lie inside the "
            f"{width}x{height} image."
        )
    return PixelTransform(1.0, 1.0, -float(left), -float(top), crop_width, crop_height)


def centered_crop_window(intrinsics: CameraIntrinsics, crop_width: int, crop_height: int) -> tuple[int, int, int, int]:
    """`(left, top, width, height)` of the window, clipped to the image, whose centre is nearest the principal point.

    A crop larger than the image along an axis keeps the whole axis.

    >>> centered_crop_window(CameraIntrinsics(1000, 1000, 700, 400, 1400, 800), 1000, 700)
    (200, 50, 1000, 700)
    """
    w = min(_check_size("crop_width", crop_width), intrinsics.width)
    h = min(_check_size("crop_height", crop_height), intrinsics.height)
    # The window [left - 0.5, left + w - 0.5] is centred on c when left = c + 0.5 - w / 2.
    left = int(np.clip(round(intrinsics.cx + 0.5 - w / 2), 0, intrinsics.width - w))
    top = int(np.clip(round(intrinsics.cy + 0.5 - h / 2), 0, intrinsics.height - h))
    return left, top, w, h


def pixel_rays(points: np.ndarray | Sequence[Sequence[float]], intrinsics: CameraIntrinsics) -> np.ndarray:
    """Rays `((x - cx) / fx, (y - cy) / fy, 1)` through (N, 2) pixels [px]: (N, 3), z = 1.

    >>> pixel_rays([[361.87, 241.99]], CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)).tolist()
    [[0.0, 0.0, 1.0]]
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x = (pts[:, 0] - intrinsics.cx) / intrinsics.fx
    y = (pts[:, 1] - intrinsics.cy) / intrinsics.fy
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def euclidean_to_z(
    points: np.ndarray | Sequence[Sequence[float]], distance: np.ndarray | Sequence[float], intrinsics: CameraIntrinsics
) -> np.ndarray:
    """Principal-axis depth Z [m] of (N, 2) pixels [px] at Euclidean distance `distance` (N,) [m] from the camera.

    >>> cam = CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)
    >>> euclidean_to_z([[361.87 + 559.62, 241.99]], [2 ** 0.5], cam).round(12).tolist()
    [1.0]
    """
    return np.asarray(distance, dtype=np.float64).reshape(-1) / np.linalg.norm(pixel_rays(points, intrinsics), axis=-1)


def z_to_euclidean(
    points: np.ndarray | Sequence[Sequence[float]], z: np.ndarray | Sequence[float], intrinsics: CameraIntrinsics
) -> np.ndarray:
    """Euclidean distance [m] from the camera centre of (N, 2) pixels [px] with principal-axis depth `z` (N,) [m].

    >>> z_to_euclidean([[361.87, 241.99]], [3.0], CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)).tolist()
    [3.0]
    """
    return np.asarray(z, dtype=np.float64).reshape(-1) * np.linalg.norm(pixel_rays(points, intrinsics), axis=-1)


def backproject(
    points: np.ndarray | Sequence[Sequence[float]],
    distance: np.ndarray | Sequence[float],
    intrinsics: CameraIntrinsics,
    kind: DistanceKind = "euclidean",
) -> np.ndarray:
    """3D points (N, 3) [m] in the camera frame (x right, y down, z forward) of (N, 2) pixels [px].

    `distance` (N,) [m] is the Euclidean distance from the camera centre (`kind="euclidean"`, the
    DepthLM label) or the principal-axis depth (`kind="z"`).

    >>> backproject([[361.87, 241.99]], [2.5], CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)).tolist()
    [[0.0, 0.0, 2.5]]
    """
    rays = pixel_rays(points, intrinsics)
    dist = np.asarray(distance, dtype=np.float64).reshape(-1)
    if dist.shape[0] != rays.shape[0]:
        raise ValueError(f"`distance` has {dist.shape[0]} values for {rays.shape[0]} points; they must match.")
    if kind == "euclidean":
        rays = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    else:
        check_choice("kind", kind, DistanceKind)
    return rays * dist[:, None]


def point_to_point_distance(
    points: np.ndarray | Sequence[Sequence[float]],
    distance: np.ndarray | Sequence[float],
    intrinsics: CameraIntrinsics,
) -> float:
    """Metric distance [m] between the 3D points of two pixels (2, 2) [px] with Euclidean distances (2,) [m].

    >>> cam = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)
    >>> point_to_point_distance([[320, 240], [320, 240]], [1.0, 3.5], cam)
    2.5
    """
    p = backproject(points, distance, intrinsics)
    if p.shape[0] != 2:
        raise ValueError(f"`points` must hold exactly 2 pixels, got {p.shape[0]}.")
    return float(np.linalg.norm(p[0] - p[1]))


def intrinsics_from_fov(width: int, height: int, fov_degrees: float) -> CameraIntrinsics:
    """A centred pinhole camera with square pixels whose horizontal field of view is `fov_degrees` [deg].

    The image spans `[-0.5, W - 0.5]` (see the module docstring), so `fx = (W / 2) / tan(fov / 2)` and the
    principal point is the image centre `((W - 1) / 2, (H - 1) / 2)`.

    >>> intrinsics_from_fov(640, 480, 90.0).to_list()
    [320.0, 320.0, 319.5, 239.5, 640, 480]
    """
    if not (isinstance(fov_degrees, (int, float)) and 0 < fov_degrees < 180):
        raise ValueError(f"`fov` must be a field of view in degrees in (0, 180), got {fov_degrees!r}.")
    focal = round((width / 2) / math.tan(math.radians(fov_degrees) / 2), 9)
    return CameraIntrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)


def focal_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Focal length [px] of a `width` x `height` image from its 35 mm-equivalent focal length [mm].

    The 35 mm equivalent compares diagonals: a 36 x 24 mm frame's diagonal spans the image's diagonal [px].

    >>> round(focal_from_35mm(26.0, 4032, 3024), 1)
    3028.7
    """
    if not (isinstance(focal_35mm, (int, float)) and math.isfinite(focal_35mm) and focal_35mm > 0):
        raise ValueError(f"`focal_35mm` must be a positive focal length in mm, got {focal_35mm!r}.")
    return focal_35mm * math.hypot(width, height) / math.hypot(36.0, 24.0)
