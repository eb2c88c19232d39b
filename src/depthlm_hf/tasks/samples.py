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
| `marker_row`         | 1       | 1      | the marker's row in the model image [px] (localisation, a warm start) | |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.tasks.labels import (  # noqa: F401  (re-exported: the labels' former home)
    LabelInputs,
    distance_label,
    speed_label,
    time_label,
    translation_label,
    two_point_distance_label,
    z_distance_label,
)
from depthlm_hf.tasks.text import get_task


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
    return get_task(task).name


def build_sample(
    task: str,
    record: Mapping[str, Any],
    rng: np.random.Generator,
    candidates: Sequence[int] | np.ndarray | None = None,
    ranges: TaskRanges = TaskRanges(),
    locate: Callable[[np.ndarray], np.ndarray] | None = None,
) -> TaskSample | None:
    """A random `task` sample from `record`, marking only pixels among `candidates` (default: all of them).

    Returns `None` when the record cannot host the task (too few candidate pixels, or no second view
    for `translation`). Question fields are rounded to two decimals *before* the label is computed,
    so the label answers exactly the question the model reads. `locate` maps (K, 2) [px] pixels of the record to
    the model image (after unification and crop); labels read there ("marker_row") call it, others ignore it.

    >>> rec = {"intrinsics": [500, 500, 320, 240, 640, 480], "pixel_coords": [[320, 240]], "depth": [3.0]}
    >>> s = build_sample("time", rec, np.random.default_rng(0))
    >>> s.fields, round(s.value, 6) == round(3.0 / s.fields["speed"], 6)
    ({'speed': 3.37}, True)
    """
    spec = get_task(task)
    if spec.num_images == 2:
        if record.get("translation") is None:
            return None
        inputs = LabelInputs(np.zeros((0, 2)), np.zeros(0), None, translation=record["translation"])
        return TaskSample(task, (), np.zeros((0, 2)), spec.label(inputs), {}, 2)
    coords = np.asarray(record["pixel_coords"], dtype=np.float64)
    depth = np.asarray(record["depth"], dtype=np.float64)
    pool = np.arange(len(depth)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if len(pool) < spec.num_points:
        return None
    chosen = tuple(int(i) for i in rng.choice(pool, size=spec.num_points, replace=False))
    # Fields are rounded to what the question shows before the label is computed.
    fields = {name: round(float(rng.uniform(*getattr(ranges, name))), 2) for name in spec.fields}
    z = record.get("z_depth")
    inputs = LabelInputs(
        coords[list(chosen)],
        depth[list(chosen)],
        CameraIntrinsics.from_list(record["intrinsics"]),
        fields,
        None if z is None else np.asarray(z, dtype=np.float64)[list(chosen)],
        locate=locate,
    )
    return TaskSample(task, chosen, inputs.points, spec.label(inputs), fields, 1)
