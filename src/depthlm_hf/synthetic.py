"""Procedural RGB-D scenes by vectorised numpy ray casting: the embedded default data of depthlm_hf.

A scene is a textured ground plane, optionally a room (walls and ceiling), axis-aligned boxes,
spheres and a sky, seen by a pinhole camera at a random height, pitch and focal length. Every pixel's
depth is the exact ray-surface distance, so labels carry no sensor noise. Presets:

- "indoor": a room with furniture-sized boxes and balls, labels 1-10 m.
- "outdoor": open ground with building-sized boxes, spheres and sky, labels 2-80 m.
- "ground": the ground plane only, fixed camera height and focal length, level horizon (pitch 0):
  distance is then a clean function of the image row, the easiest scene for a tiny model on CPU.

World frame: X right, Y up, Z forward, ground at Y = 0 [m]. Camera frame (OpenCV): x right, y down,
z forward. A camera is its intrinsics, a camera-to-world rotation (3, 3) and a centre (3,) [m].
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from .data.convert import rgbd_to_record
from .geometry import CameraIntrinsics

Range = tuple[float, float]
_LIGHT = np.array([0.35, 0.85, -0.4]) / np.linalg.norm([0.35, 0.85, -0.4])


@dataclass(frozen=True)
class SceneConfig:
    """What a random scene may look like; every `(lo, hi)` pair is a uniform range (lo == hi fixes it).

    Args:
        width, height: image size ranges [px].
        focal: focal length range [px] (square pixels, principal point at the image centre).
        camera_height: camera centre above the ground [m].
        pitch: downward tilt [deg] (0 = level horizon in the middle row).
        horizon: if set, overrides `pitch`: the tilt that puts the horizon at this fraction of the
            image height from the top (0.5 = middle row, smaller = more ground in view).
        room: whether walls and a ceiling enclose the camera; `room_size` is its half-width and depth
            range [m], `room_height` its height [m].
        num_boxes, box_size, box_height, box_distance: box count, footprint side [m], height [m] and
            distance of its centre from the camera [m]; `box_angle` the bearing range [deg].
        num_spheres, sphere_radius, sphere_distance: the same for spheres resting on the ground.
        sky: show a sky (no depth) where rays hit nothing.
        tile: ground checker tile size [m]; `texture_contrast` in [0, 1] scales every texture.
        depth_range: labels kept [m] (pixels outside are invalid).
        motion: camera translation range between the two views of a pair [m]; `turn` yaw change [deg].
    """

    width: tuple[int, int] = (160, 256)
    height: tuple[int, int] = (120, 192)
    focal: Range = (300.0, 1500.0)
    camera_height: Range = (1.0, 1.8)
    pitch: Range = (-5.0, 25.0)
    horizon: Range | None = None
    room: bool = True
    room_size: Range = (3.0, 7.0)
    room_height: Range = (2.5, 3.5)
    num_boxes: tuple[int, int] = (2, 6)
    box_size: Range = (0.3, 1.2)
    box_height: Range = (0.3, 2.0)
    box_distance: Range = (1.5, 6.0)
    box_angle: Range = (-45.0, 45.0)
    num_spheres: tuple[int, int] = (0, 3)
    sphere_radius: Range = (0.15, 0.6)
    sphere_distance: Range = (1.5, 6.0)
    sky: bool = False
    tile: float = 0.5
    texture_contrast: float = 1.0
    depth_range: Range = (1.0, 10.0)
    motion: Range = (0.2, 1.0)
    turn: Range = (-10.0, 10.0)


SCENE_PRESETS: dict[str, SceneConfig] = {
    "indoor": SceneConfig(),
    "outdoor": SceneConfig(
        camera_height=(1.2, 2.5),
        pitch=(-5.0, 15.0),
        room=False,
        num_boxes=(2, 8),
        box_size=(2.0, 12.0),
        box_height=(3.0, 20.0),
        box_distance=(8.0, 70.0),
        box_angle=(-60.0, 60.0),
        num_spheres=(0, 5),
        sphere_radius=(0.5, 3.0),
        sphere_distance=(4.0, 40.0),
        sky=True,
        tile=2.0,
        depth_range=(2.0, 80.0),
        motion=(0.5, 4.0),
    ),
    "ground": SceneConfig(
        width=(224, 224),
        height=(168, 168),
        focal=(200.0, 200.0),
        camera_height=(1.5, 1.5),
        pitch=(0.0, 0.0),
        room=False,
        num_boxes=(0, 0),
        num_spheres=(0, 0),
        sky=True,
        tile=0.5,
        depth_range=(1.0, 30.0),
    ),
}
"""Named scene configurations. Add one with
`SCENE_PRESETS["name"] = dataclasses.replace(SCENE_PRESETS["indoor"], ...)`."""


def get_config(config: str | SceneConfig) -> SceneConfig:
    """A preset by name (or `config` itself)."""
    if isinstance(config, SceneConfig):
        return config
    if config not in SCENE_PRESETS:
        raise ValueError(f"Unknown scene preset {config!r}. Available: {', '.join(SCENE_PRESETS)}.")
    return SCENE_PRESETS[config]


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
    ground_colors: np.ndarray = field(
        default_factory=lambda: np.array([[0.55, 0.5, 0.42], [0.35, 0.33, 0.3]])
    )
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


def _band_pixels(
    rect: tuple[int, int, int, int] | None, rows: tuple[int, int], width: int
) -> np.ndarray | None:
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
    shade = np.select([kind == _GROUND, kind == _WALL, kind == _BOX], [ground, wall, box], 1.0).astype(
        np.float32
    )
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


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    lo, hi = bounds
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def _integer(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def random_camera(config: SceneConfig, rng: np.random.Generator) -> Camera:
    """A camera above the world origin with random size, focal length, height and tilt from `config`."""
    width, height = _integer(rng, config.width), _integer(rng, config.height)
    focal = _uniform(rng, config.focal)
    intr = CameraIntrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)
    position = np.array([0.0, _uniform(rng, config.camera_height), 0.0])
    if config.horizon is None:
        pitch = _uniform(rng, config.pitch)
    else:  # the horizon row v satisfies (cy - v) / fy = tan(pitch)
        row = _uniform(rng, config.horizon) * height - 0.5
        pitch = math.degrees(math.atan((intr.cy - row) / intr.fy))
    return Camera(intr, look_rotation(0.0, pitch), position)


def random_layout(config: SceneConfig, rng: np.random.Generator, camera: Camera) -> Layout:
    """Random objects around `camera` following `config`."""
    room = None
    if config.room:
        half, depth_ahead = _uniform(rng, config.room_size), _uniform(rng, config.room_size) * 1.5
        room = (
            -half,
            half,
            max(_uniform(rng, config.room_height), camera.position[1] + 0.3),
            -1.5,
            depth_ahead,
        )
    boxes, spheres = [], []
    for _ in range(_integer(rng, config.num_boxes)):
        dist, bearing = _uniform(rng, config.box_distance), math.radians(_uniform(rng, config.box_angle))
        sx, sz, sy = (
            _uniform(rng, config.box_size),
            _uniform(rng, config.box_size),
            _uniform(rng, config.box_height),
        )
        x, z = dist * math.sin(bearing), dist * math.cos(bearing)
        boxes.append([x - sx / 2, 0.0, z - sz / 2, x + sx / 2, sy, z + sz / 2])
    for _ in range(_integer(rng, config.num_spheres)):
        dist, bearing = _uniform(rng, config.sphere_distance), math.radians(_uniform(rng, config.box_angle))
        r = _uniform(rng, config.sphere_radius)
        spheres.append([dist * math.sin(bearing), r, dist * math.cos(bearing), r])
    boxes_arr = np.array(boxes).reshape(-1, 6)
    spheres_arr = np.array(spheres).reshape(-1, 4)
    if room is not None:  # keep objects inside the room
        boxes_arr = boxes_arr[
            (boxes_arr[:, 0] > room[0]) & (boxes_arr[:, 3] < room[1]) & (boxes_arr[:, 5] < room[4])
        ]
        spheres_arr = spheres_arr[
            (np.abs(spheres_arr[:, 0]) + spheres_arr[:, 3] < room[1])
            & (spheres_arr[:, 2] + spheres_arr[:, 3] < room[4])
        ]
    ground = rng.uniform(0.25, 0.7, size=3)
    return Layout(
        room=room,
        boxes=boxes_arr,
        box_colors=rng.uniform(0.2, 0.95, size=(len(boxes_arr), 3)),
        spheres=spheres_arr,
        sphere_colors=rng.uniform(0.2, 0.95, size=(len(spheres_arr), 3)),
        sky=config.sky,
        tile=config.tile,
        texture_contrast=config.texture_contrast,
        ground_colors=np.stack([ground, ground * 0.6]),
        wall_color=rng.uniform(0.55, 0.9, size=3),
    )


def second_camera(config: SceneConfig, rng: np.random.Generator, camera: Camera, layout: Layout) -> Camera:
    """`camera` moved by a random horizontal translation of length in `config.motion` [m] and turned by
    `config.turn` [deg]; positions inside the room's walls or inside a box are redrawn."""
    for _ in range(100):
        length, heading = _uniform(rng, config.motion), rng.uniform(-math.pi, math.pi)
        position = camera.position + np.array([math.sin(heading), 0.0, math.cos(heading)]) * length
        if _free(position, layout, margin=0.2):
            break
    else:  # a cramped scene: keep the first camera's place, the pair then only turns
        position = camera.position.copy()
    turn = look_rotation(_uniform(rng, config.turn), 0.0)
    return Camera(camera.intrinsics, turn @ camera.rotation, position)


def _free(position: np.ndarray, layout: Layout, margin: float) -> bool:
    if layout.room is not None:
        xmin, xmax, _, zmin, zmax = layout.room
        if not (xmin + margin < position[0] < xmax - margin and zmin + margin < position[2] < zmax - margin):
            return False
    inside_box = ((layout.boxes[:, :3] - margin < position) & (position < layout.boxes[:, 3:] + margin)).all(
        axis=1
    )
    gap = np.linalg.norm(layout.spheres[:, :3] - position, axis=1) - layout.spheres[:, 3]
    return not inside_box.any() and not (gap < margin).any()


def render_scene(config: str | SceneConfig = "indoor", seed: int | np.random.Generator = 0) -> RenderedView:
    """One random view of a random scene (deterministic in `seed`)."""
    config = get_config(config)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    camera = random_camera(config, rng)
    return render(random_layout(config, rng, camera), camera, config.depth_range)


def render_pair(
    config: str | SceneConfig = "indoor", seed: int | np.random.Generator = 0
) -> tuple[RenderedView, RenderedView]:
    """Two views of one random scene from cameras related by a known motion (:meth:`Camera.relative_pose`)."""
    config = get_config(config)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    camera = random_camera(config, rng)
    layout = random_layout(config, rng, camera)
    other = second_camera(config, rng, camera, layout)
    return render(layout, camera, config.depth_range), render(layout, other, config.depth_range)


def synthetic_record(
    config: str | SceneConfig = "indoor",
    seed: int = 0,
    num_points: int = 100,
    two_view: bool = False,
    border: int = 0,
    dataset: str | None = None,
) -> dict[str, Any]:
    """A curated record (in-memory PIL images) of a random scene: `num_points` valid pixels, distances [m].

    Two-view records add `image2`, `intrinsics2`, `rotation` (3, 3) and `translation` (3,) [m] with
    `X2 = R @ X1 + t`.
    """
    name = config if isinstance(config, str) else "synthetic"
    config = get_config(config)
    rng = np.random.default_rng(seed)
    views = render_pair(config, rng) if two_view else (render_scene(config, rng),)
    view = views[0]
    record = rgbd_to_record(
        Image.fromarray(view.image),
        view.depth,
        view.camera.intrinsics,
        num_points=num_points,
        seed=rng,
        depth_kind="euclidean",
        valid_mask=view.valid,
        border=border,
        dataset=dataset if dataset is not None else f"synthetic_{name}",
        scene=f"{name}_{seed}",
    )
    if two_view:
        other = views[1]
        rotation, translation = view.camera.relative_pose(other.camera)
        record.update(
            image2=Image.fromarray(other.image),
            intrinsics2=other.camera.intrinsics.to_list(),
            rotation=rotation,
            translation=translation,
        )
    return record


class SyntheticDataset:
    """`num_scenes` random records, each rendered on access from `(seed, index)`: nothing is stored.

    Behaves as a read-only sequence of records, so the views in :mod:`depthlm_hf.data.views` take it
    like a :class:`~depthlm_hf.data.curated.CuratedDataset`.

    >>> ds = SyntheticDataset("ground", num_scenes=3, num_points=4)
    >>> len(ds), ds[1]["pixel_coords"].shape, ds[1]["image"].size
    (3, (4, 2), (224, 168))
    """

    def __init__(
        self,
        config: str | SceneConfig = "indoor",
        num_scenes: int = 1000,
        seed: int = 0,
        num_points: int = 100,
        two_view: bool = False,
        border: int = 0,
        dataset: str | None = None,
        **overrides: Any,
    ) -> None:
        self.config = replace(get_config(config), **overrides) if overrides else get_config(config)
        self.name = config if isinstance(config, str) else "synthetic"
        self.num_scenes, self.seed, self.num_points = int(num_scenes), int(seed), int(num_points)
        self.two_view, self.border = two_view, border
        self.dataset = dataset if dataset is not None else f"synthetic_{self.name}"

    def __len__(self) -> int:
        return self.num_scenes

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.num_scenes <= index < self.num_scenes:
            raise IndexError(f"scene {index} out of range for {self.num_scenes} scenes.")
        index %= self.num_scenes
        # A seed sequence of (seed, index) gives independent, process-stable streams per scene.
        record = synthetic_record(
            self.config,
            np.random.SeedSequence([self.seed, index]).generate_state(1)[0],
            self.num_points,
            self.two_view,
            self.border,
            self.dataset,
        )
        record["index"] = index
        return record

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(self.num_scenes):
            yield self[index]
