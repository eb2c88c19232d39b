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
The ray caster itself is :mod:`depthlm_hf.data.synthetic.raycast`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from depthlm_hf.data.convert import rgbd_to_record
from depthlm_hf.data.synthetic.raycast import Camera, Layout, Range, RenderedView, look_rotation, render
from depthlm_hf.geometry import CameraIntrinsics

__all__ = [
    "SCENE_PRESETS",
    "Camera",
    "Layout",
    "RenderedView",
    "SceneConfig",
    "SyntheticDataset",
    "get_config",
    "look_rotation",
    "random_camera",
    "random_layout",
    "render",
    "render_pair",
    "render_scene",
    "second_camera",
    "synthetic_record",
]


@dataclass(frozen=True)
class SceneConfig:
    """What a random scene may look like; every `(lo, hi)` pair is a uniform range (lo == hi fixes it).

    Args:
        width: image width range [px].
        height: image height range [px].
        focal: focal length range [px] (square pixels, principal point at the image centre).
        camera_height: camera centre above the ground [m].
        pitch: downward tilt [deg] (0 = level horizon in the middle row).
        horizon: if set, overrides `pitch`: the tilt that puts the horizon at this fraction of the
            image height from the top (0.5 = middle row, smaller = more ground in view).
        room: whether walls and a ceiling enclose the camera.
        room_size: the room's half-width, and two thirds of its depth ahead of the camera [m].
        room_height: the room's height [m].
        num_boxes: number of boxes (before dropping those outside the room).
        box_size: side of a box's footprint [m].
        box_height: height of a box [m].
        box_distance: distance of a box's centre from the camera [m].
        box_angle: bearing of boxes and spheres from the viewing direction [deg].
        num_spheres: number of spheres resting on the ground.
        sphere_radius: their radius [m].
        sphere_distance: distance of their centre from the camera [m].
        sky: show a sky (no depth) where rays hit nothing.
        tile: ground checker and wall stripe size [m].
        texture_contrast: in [0, 1], scales every texture.
        depth_range: labels kept [m] (pixels outside are invalid).
        motion: camera translation between the two views of a pair [m].
        turn: yaw change between the two views of a pair [deg].
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
        boxes_arr = boxes_arr[(boxes_arr[:, 0] > room[0]) & (boxes_arr[:, 3] < room[1]) & (boxes_arr[:, 5] < room[4])]
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
    inside_box = ((layout.boxes[:, :3] - margin < position) & (position < layout.boxes[:, 3:] + margin)).all(axis=1)
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
    >>> record = ds[1]
    >>> len(ds), record["pixel_coords"].shape, record["image"].size
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
