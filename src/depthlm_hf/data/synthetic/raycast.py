"""Vectorised numpy ray casting of simple scenes: exact depth and shaded colour for every pixel.

Scenes (:class:`Layout`) are a ground plane, optionally a room, axis-aligned boxes and spheres, and a
sky; :func:`render` casts one ray per pixel centre of a :class:`Camera` and returns the colour, the
Euclidean and principal-axis depth, and a validity mask. World frame: X right, Y up, Z forward,
ground at Y = 0 [m]; camera frame (OpenCV): x right, y down, z forward. Random scenes built on this
live in :mod:`depthlm_hf.data.synthetic.scenes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from depthlm_hf.geometry import CameraIntrinsics

Range = tuple[float, float]
_LIGHT = np.array([0.35, 0.85, -0.4]) / np.linalg.norm([0.35, 0.85, -0.4])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: `intrinsics`, `rotation` (3, 3) camera-to-world, `position` (3,) [m] in the world."""

    intrinsics: CameraIntrinsics
    rotation: np.ndarray
    position: np.ndarray

    def relative_pose(self, other: Camera) -> tuple[np.ndarray, np.ndarray]:
        """`(R, t)` mapping this camera's coordinates to `other`'s: `X_other = R @ X_self + t`, t [m]."""
        rotation = other.rotation.T @ self.rotation
        return rotation, other.rotation.T @ (self.position - other.position)


def look_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Camera-to-world rotation (3, 3) of a camera turned `yaw_deg` to the right and tilted `pitch_deg` down.

    >>> look_rotation(0.0, 0.0).round(6) + 0.0  # columns: camera right, down, forward in the world
    array([[ 1.,  0.,  0.],
           [ 0., -1.,  0.],
           [ 0.,  0.,  1.]])
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), -math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    down = np.cross(right, forward)
    return np.stack([right, down, forward], axis=1)


@dataclass
class Layout:
    """The objects of a scene, in world coordinates [m].

    `room` = (xmin, xmax, ceiling, zmin, zmax) or None; `boxes` (B, 6) = (xmin, ymin, zmin, xmax,
    ymax, zmax); `spheres` (S, 4) = (x, y, z, radius); colours are (B, 3) / (S, 3) floats in [0, 1].
    """

    room: tuple[float, float, float, float, float] | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    box_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    spheres: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    sphere_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sky: bool = True
    tile: float = 0.5
    texture_contrast: float = 1.0
    ground_colors: np.ndarray = field(default_factory=lambda: np.array([[0.55, 0.5, 0.42], [0.35, 0.33, 0.3]]))
    wall_color: np.ndarray = field(default_factory=lambda: np.array([0.75, 0.72, 0.65]))


@dataclass
class RenderedView:
    """One rendered view: `image` (H, W, 3) uint8, `depth` (H, W) Euclidean [m] (inf where nothing is hit),
    `z_depth` (H, W) principal-axis depth [m], `valid` (H, W) bool (finite and inside the depth range)."""

    image: np.ndarray
    depth: np.ndarray
    z_depth: np.ndarray
    valid: np.ndarray
    camera: Camera


def camera_rays(camera: Camera, rows: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unit world directions (3, n) of the rays through the pixel centres of image rows `rows` = (r0, r1)
    (all rows by default; row-major) and their camera-z components (n,) (= z-depth / distance)."""
    intr = camera.intrinsics
    r0, r1 = rows if rows is not None else (0, intr.height)
    x = (np.arange(intr.width) - intr.cx) / intr.fx
    y = (np.arange(r0, r1) - intr.cy) / intr.fy
    cos_axis = 1.0 / np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + 1.0)
    r = camera.rotation
    d = np.empty((3, r1 - r0, intr.width))
    for k in range(3):  # world = R @ local, local = (x, y, 1) * cos_axis
        d[k] = ((r[k, 0] * x)[None, :] + (r[k, 1] * y)[:, None] + r[k, 2]) * cos_axis
    return d.reshape(3, -1), cos_axis.reshape(-1)


def _hit_room(o: np.ndarray, d: np.ndarray, room: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Distance from inside the room to its walls/ceiling along unit rays (3, n), and the hit axis."""
    xmin, xmax, top, zmin, zmax = room
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(d[0] > 0, xmax - o[0], xmin - o[0]) / d[0]
        ty = np.where(d[1] > 0, (top - o[1]) / d[1], np.inf)
        tz = np.where(d[2] > 0, zmax - o[2], zmin - o[2]) / d[2]
    tx, tz = np.abs(tx), np.abs(tz)  # d = 0 gives inf; abs turns -inf into inf
    t = np.minimum(np.minimum(tx, ty), tz)
    return t, np.where(t == tx, 0, np.where(t == ty, 1, 2)).astype(np.int8)


def _screen_rect(camera: Camera, lo: np.ndarray, hi: np.ndarray) -> tuple[int, int, int, int] | None:
    """Pixel rows/cols `(r0, r1, c0, c1)` (ends exclusive) that may see the world box [lo, hi]; None: none."""
    intr = camera.intrinsics
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    local = (corners - camera.position) @ camera.rotation
    if (local[:, 2] <= 0).all():
        return None
    if (local[:, 2] <= 1e-6).any():  # straddles the camera plane: no finite projection, test every pixel
        return 0, intr.height, 0, intr.width
    u = intr.fx * local[:, 0] / local[:, 2] + intr.cx
    v = intr.fy * local[:, 1] / local[:, 2] + intr.cy
    c0, c1 = max(0, math.floor(u.min()) - 1), min(intr.width, math.ceil(u.max()) + 2)
    r0, r1 = max(0, math.floor(v.min()) - 1), min(intr.height, math.ceil(v.max()) + 2)
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def _pixels(rect: tuple[int, int, int, int], width: int) -> np.ndarray:
    r0, r1, c0, c1 = rect
    return (np.arange(r0, r1)[:, None] * width + np.arange(c0, c1)[None, :]).reshape(-1)


def _hit_box(o: np.ndarray, inv: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slab test of rays (inverse directions (3, n)) against box [lo, hi]: distance (inf: miss), face axis."""
    with np.errstate(invalid="ignore"):
        t1, t2 = (lo - o)[:, None] * inv, (hi - o)[:, None] * inv
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near = np.maximum(np.maximum(near[0], near[1]), near[2])
    t_far = np.minimum(np.minimum(far[0], far[1]), far[2])
    axis = np.where(t_near == near[0], 0, np.where(t_near == near[1], 1, 2)).astype(np.int8)
    return np.where((t_near <= t_far) & (t_near > 1e-9), t_near, np.inf), axis


def _hit_sphere(o: np.ndarray, d: np.ndarray, sphere: np.ndarray) -> np.ndarray:
    """Distance along unit rays (3, n) to the sphere (x, y, z, r) [m]; inf = miss."""
    oc = sphere[:3] - o
    b = oc @ d
    disc = b * b - (oc @ oc - sphere[3] ** 2)
    with np.errstate(invalid="ignore"):
        t = b - np.sqrt(disc)
    return np.where((disc >= 0) & (t > 1e-9), t, np.inf)


_BAND_PIXELS = 8192
"""Pixels ray-cast together: bands of this size keep every temporary array under glibc's mmap
threshold, so memory is reused instead of page-faulted in for each of the ~100 numpy operations."""


def render(layout: Layout, camera: Camera, depth_range: Range = (0.0, math.inf)) -> RenderedView:
    """Ray-cast `layout` from `camera`: colours, exact Euclidean and z depth, validity.

    Objects are tested only on the pixels of their projected bounding rectangle, which keeps a
    224x168 scene with a few objects at a few milliseconds.
    """
    intr = camera.intrinsics
    box_rects = [_screen_rect(camera, box[:3], box[3:]) for box in layout.boxes]
    sphere_rects = [_screen_rect(camera, s[:3] - s[3], s[:3] + s[3]) for s in layout.spheres]
    depth = np.empty((intr.height, intr.width))
    z_depth = np.empty((intr.height, intr.width))
    image = np.empty((intr.height, intr.width, 3), np.uint8)
    step = max(1, _BAND_PIXELS // intr.width)
    for r0 in range(0, intr.height, step):
        r1 = min(intr.height, r0 + step)
        t, cos_axis, rgb = _render_band(layout, camera, (r0, r1), box_rects, sphere_rects)
        depth[r0:r1] = t.reshape(r1 - r0, -1)
        z_depth[r0:r1] = (t * cos_axis).reshape(r1 - r0, -1)
        image[r0:r1] = rgb.reshape(r1 - r0, -1, 3)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth >= depth_range[0]) & (depth <= depth_range[1])
    return RenderedView(image, depth, z_depth, valid, camera)


def _band_pixels(rect: tuple[int, int, int, int] | None, rows: tuple[int, int], width: int) -> np.ndarray | None:
    if rect is None:
        return None
    r0, r1 = max(rect[0], rows[0]) - rows[0], min(rect[1], rows[1]) - rows[0]
    return _pixels((r0, r1, rect[2], rect[3]), width) if r0 < r1 else None


def _render_band(layout: Layout, camera: Camera, rows: tuple[int, int], box_rects: list, sphere_rects: list):
    width = camera.intrinsics.width
    o = np.asarray(camera.position, dtype=np.float64)
    d, cos_axis = camera_rays(camera, rows)
    with np.errstate(divide="ignore"):
        t = np.where(d[1] < 0, -o[1] / d[1], np.inf)
    kind = np.where(np.isfinite(t), _GROUND, _SKY).astype(np.int8)
    normal_axis = np.ones(t.shape, np.int8)
    index = np.zeros(t.shape, np.int16)
    if layout.room is not None:
        t_room, axis = _hit_room(o, d, layout.room)
        closer = t_room < t
        t = np.where(closer, t_room, t)
        kind[closer], normal_axis[closer] = _WALL, axis[closer]
    if len(layout.boxes):
        with np.errstate(divide="ignore"):
            inv = 1.0 / d
    for b, (box, rect) in enumerate(zip(layout.boxes, box_rects, strict=True)):
        pix = _band_pixels(rect, rows, width)
        if pix is not None:
            t_box, axis = _hit_box(o, inv[:, pix], box[:3], box[3:])
            closer = t_box < t[pix]
            pix = pix[closer]
            t[pix], kind[pix], normal_axis[pix], index[pix] = t_box[closer], _BOX, axis[closer], b
    for s, (sphere, rect) in enumerate(zip(layout.spheres, sphere_rects, strict=True)):
        pix = _band_pixels(rect, rows, width)
        if pix is not None:
            t_sph = _hit_sphere(o, d[:, pix], sphere)
            closer = t_sph < t[pix]
            pix = pix[closer]
            t[pix], kind[pix], index[pix] = t_sph[closer], _SPHERE, s
    focal = min(camera.intrinsics.fx, camera.intrinsics.fy)
    return t, cos_axis, _shade(layout, o, d, t, kind, normal_axis, index, focal)


_SKY, _GROUND, _WALL, _BOX, _SPHERE = 0, 1, 2, 3, 4
_SKY_COLOR = np.array([0.62, 0.76, 0.95])


def _parity(*coords: np.ndarray) -> np.ndarray:
    """(sum of floor(coords)) mod 2 as 0/1 ints: checkerboards without the slow float remainder."""
    total = np.floor(coords[0]).astype(np.int32)
    for c in coords[1:]:
        total += np.floor(c).astype(np.int32)
    return total & 1


def _shade(layout: Layout, o, d, t, kind, normal_axis, index, focal: float) -> np.ndarray:
    """Colours (n, 3) uint8: a base colour per surface times a texture and a Lambert factor per pixel.

    Textures are evaluated on every pixel and picked by surface kind: whole-array operations are
    cheaper here than gathering each surface's pixels.
    """
    palette = (
        np.concatenate(
            [
                _SKY_COLOR[None],
                layout.ground_colors[:1],
                layout.wall_color[None],
                layout.box_colors,
                layout.sphere_colors,
            ]
        ).astype(np.float32)
        * 255.0
    )
    code = kind.astype(np.int16)
    code += np.where(kind == _BOX, index, 0).astype(np.int16)
    code += np.where(kind == _SPHERE, len(layout.boxes) - 1 + index, 0).astype(np.int16)
    tt = np.where(np.isfinite(t), t, 0.0).astype(np.float32)
    o32 = o.astype(np.float32)
    px, py, pz = (o32[k] + d[k].astype(np.float32) * tt for k in range(3))
    c, inv_tile = layout.texture_contrast, 1.0 / layout.tile
    # Fade a pattern out where its cells shrink below ~4 px, instead of letting it alias into noise.
    fade = (focal / 4.0) / np.maximum(tt, 1e-3)
    ground = 1.0 - 0.4 * c * np.minimum(fade * layout.tile, 1.0) * _parity(px * inv_tile, pz * inv_tile)
    wall = 1.0 - 0.18 * c * np.minimum(fade * layout.tile, 1.0) * _parity(py * inv_tile)
    box = 1.0 - 0.15 * c * np.minimum(fade * 0.25, 1.0) * _parity(px * 4.0, py * 4.0, pz * 4.0)
    shade = np.select([kind == _GROUND, kind == _WALL, kind == _BOX], [ground, wall, box], 1.0).astype(np.float32)
    # Axis-aligned surfaces face the camera: normal = -sign(d[axis]) e_axis, so n . L = -sign(d_axis) L_axis.
    d_axis = np.where(normal_axis == 0, d[0], np.where(normal_axis == 1, d[1], d[2]))
    cos_light = -np.sign(d_axis) * _LIGHT.astype(np.float32)[normal_axis]
    spheres = np.flatnonzero(kind == _SPHERE)
    if spheres.size:
        sph = layout.spheres[index[spheres]]
        p = np.stack([px[spheres], py[spheres], pz[spheres]], axis=1)
        cos_light[spheres] = ((p - sph[:, :3]) / sph[:, 3:]) @ _LIGHT
    shade *= 0.45 + 0.55 * np.clip(cos_light, 0.0, 1.0)
    sky = kind == _SKY
    shade = np.where(sky, 1.15 - 0.3 * np.clip(d[1], 0.0, 1.0), shade)
    colour = np.empty((t.shape[0], 3), np.float32)
    for k in range(3):
        colour[:, k] = palette[:, k].take(code) * shade
    return np.clip(colour, 0, 255).astype(np.uint8)
