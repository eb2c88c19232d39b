"""The six DepthLM tasks (paper Sec. 3.4): labels computed from geometry, and samples built from records.

Text (questions, answers, parsing) lives in :mod:`depthlm_hf.tasks.text`; this module decides *which*
pixels and images a sample uses, the values of the question's fields (a time, a speed) and the
label. Labels are in SI units: metres [m], seconds [s], metres per second [m/s].

| task                 | markers | images | label                                    | question fields |
|----------------------|---------|--------|------------------------------------------|-----------------|
| `distance`           | 1       | 1      | Euclidean distance of the point [m]      |                 |
| `z_distance`         | 1       | 1      | depth along the principal axis [m]       |                 |
| `speed`              | 1       | 1      | distance / time [m/s]                    | `time` [s]      |
| `time`               | 1       | 1      | distance / speed [s]                     | `speed` [m/s]   |
| `two_point_distance` | 2       | 1      | `|P1 - P2|` of the back-projected points  |                 |
| `translation`        | 0       | 2      | `|t|`, camera displacement between views  |                 |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depthlm_hf.geometry import CameraIntrinsics, euclidean_to_z, point_to_point_distance
from depthlm_hf.tasks.text import TASKS


def distance_label(distance: float) -> float:
    """Euclidean distance [m] of the point: the record's label itself.

    >>> distance_label(2.5)
    2.5
    """
    return float(distance)


def z_distance_label(point: Sequence[float], distance: float, intrinsics: CameraIntrinsics) -> float:
    """Principal-axis depth Z [m] of pixel `point` (2,) [px] at Euclidean `distance` [m].

    >>> z_distance_label([320 + 500, 240], 2 ** 0.5, CameraIntrinsics(500, 500, 320, 240, 640, 480))
    1.0
    """
    return round(float(euclidean_to_z([point], [distance], intrinsics)[0]), 12)


def speed_label(distance: float, time: float) -> float:
    """Speed [m/s] that covers `distance` [m] in `time` [s].

    >>> speed_label(6.0, 4.0)
    1.5
    """
    return float(distance) / float(time)


def time_label(distance: float, speed: float) -> float:
    """Time [s] to cover `distance` [m] at `speed` [m/s].

    >>> time_label(6.0, 1.5)
    4.0
    """
    return float(distance) / float(speed)


def two_point_distance_label(points: np.ndarray, distances: Sequence[float], intrinsics: CameraIntrinsics) -> float:
    """Distance `|P1 - P2|` [m] between the 3D points of pixels (2, 2) [px] at Euclidean `distances` (2,) [m].

    >>> cam = CameraIntrinsics(500, 500, 320, 240, 640, 480)
    >>> two_point_distance_label([[320, 240], [320, 240]], [1.0, 3.5], cam)
    2.5
    """
    return point_to_point_distance(points, distances, intrinsics)


def translation_label(translation: Sequence[float]) -> float:
    """Distance [m] the camera centre moved: `|t|` of the relative pose `X2 = R X1 + t`.

    >>> translation_label([0.3, 0.0, 0.4])
    0.5
    """
    return float(np.linalg.norm(np.asarray(translation, dtype=np.float64)))


@dataclass(frozen=True)
class TaskSample:
    """One question about one record.

    Attributes:
        task: a name in `depthlm_hf.tasks.text.TASKS`.
        point_indices: indices of the marked pixels in the record's `pixel_coords` (none for `translation`).
        points: (K, 2) [px] those pixels in the record's image.
        value: the label in the task's unit [m, s or m/s].
        fields: the question's placeholders (`time` [s] or `speed` [m/s]), rounded to what the question shows.
        num_images: 1, or 2 for `translation`.
    """

    task: str
    point_indices: tuple[int, ...]
    points: np.ndarray
    value: float
    fields: dict[str, float] = field(default_factory=dict)
    num_images: int = 1


@dataclass(frozen=True)
class TaskRanges:
    """Ranges the question fields are drawn from: `time` [s] for `speed`, `speed` [m/s] for `time`."""

    time: tuple[float, float] = (1.0, 10.0)
    speed: tuple[float, float] = (0.5, 5.0)


def check_task(task: str) -> str:
    """`task` itself, or a `ValueError` listing the valid names."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}. Available: {', '.join(TASKS)}.")
    return task


def build_sample(
    task: str,
    record: Mapping[str, Any],
    rng: np.random.Generator,
    candidates: Sequence[int] | np.ndarray | None = None,
    ranges: TaskRanges = TaskRanges(),
) -> TaskSample | None:
    """A random `task` sample from `record`, marking only pixels among `candidates` (default: all of them).

    Returns `None` when the record cannot host the task (too few candidate pixels, or no second view
    for `translation`). Question fields are rounded to two decimals *before* the label is computed,
    so the label answers exactly the question the model reads.

    >>> rec = {"intrinsics": [500, 500, 320, 240, 640, 480], "pixel_coords": [[320, 240]], "depth": [3.0]}
    >>> s = build_sample("time", rec, np.random.default_rng(0))
    >>> s.fields, round(s.value, 6) == round(3.0 / s.fields["speed"], 6)
    ({'speed': 3.37}, True)
    """
    check_task(task)
    if task == "translation":
        if record.get("translation") is None:
            return None
        return TaskSample(task, (), np.zeros((0, 2)), translation_label(record["translation"]), {}, 2)
    coords = np.asarray(record["pixel_coords"], dtype=np.float64)
    depth = np.asarray(record["depth"], dtype=np.float64)
    pool = np.arange(len(depth)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    needed = TASKS[task].num_points
    if len(pool) < needed:
        return None
    chosen = tuple(int(i) for i in rng.choice(pool, size=needed, replace=False))
    points, distances = coords[list(chosen)], depth[list(chosen)]
    intr = CameraIntrinsics.from_list(record["intrinsics"])
    fields: dict[str, float] = {}
    if task == "distance":
        value = distance_label(distances[0])
    elif task == "z_distance":
        z = record.get("z_depth")
        value = float(z[chosen[0]]) if z is not None else z_distance_label(points[0], distances[0], intr)
    elif task == "speed":
        fields["time"] = round(float(rng.uniform(*ranges.time)), 2)
        value = speed_label(distances[0], fields["time"])
    elif task == "time":
        fields["speed"] = round(float(rng.uniform(*ranges.speed)), 2)
        value = time_label(distances[0], fields["speed"])
    else:
        value = two_point_distance_label(points, distances, intr)
    return TaskSample(task, chosen, points, value, fields, 1)
