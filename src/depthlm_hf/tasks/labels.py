"""Labels of the DepthLM tasks computed from geometry, in SI units: [m], [s], [m/s].

`LabelInputs` holds what a task's label may need; each task's `label` (see `depthlm_hf.tasks.text.TASKS`)
reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from depthlm_hf.geometry import CameraIntrinsics, euclidean_to_z, point_to_point_distance


@dataclass(frozen=True)
class LabelInputs:
    """What a label is computed from.

    Attributes:
        points: (K, 2) [px] the marked pixels.
        distances: (K,) [m] their Euclidean distances.
        intrinsics: the image's camera.
        fields: the question's placeholders (`time` [s], `speed` [m/s]).
        z_depth: (K,) [m] principal-axis depths when the record has them, else None.
        translation: (3,) [m] the camera displacement between two views, else None.
        locate: maps (K, 2) [px] pixels to the model image (after unification and crop), when known; labels read
            there ("marker_row") call it.
    """

    points: np.ndarray
    distances: np.ndarray
    intrinsics: CameraIntrinsics | None
    fields: Mapping[str, float] = field(default_factory=dict)
    z_depth: np.ndarray | None = None
    translation: Sequence[float] | None = None
    locate: Callable[[np.ndarray], np.ndarray] | None = None


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


def marker_row_label(model_point: Sequence[float]) -> float:
    """Row of the marker's anchor `model_point` (2,) [px] in the model image, in tens of pixels (where the model must
    look; one digit before the decimal point for images up to 99 px tall, as the distances' answers have).

    >>> marker_row_label([30, 42])
    4.2
    """
    return float(model_point[1]) / 10.0


def label_distance(q: LabelInputs) -> float:
    return distance_label(q.distances[0])


def label_z_distance(q: LabelInputs) -> float:
    if q.z_depth is not None:
        return float(q.z_depth[0])
    return z_distance_label(q.points[0], q.distances[0], q.intrinsics)


def label_speed(q: LabelInputs) -> float:
    return speed_label(q.distances[0], q.fields["time"])


def label_time(q: LabelInputs) -> float:
    return time_label(q.distances[0], q.fields["speed"])


def label_two_point_distance(q: LabelInputs) -> float:
    return two_point_distance_label(q.points, q.distances, q.intrinsics)


def label_translation(q: LabelInputs) -> float:
    return translation_label(q.translation)


def label_marker_row(q: LabelInputs) -> float:
    if q.locate is None:
        raise ValueError(
            "task 'marker_row' is labelled in the model image: pass `locate` (`LabelInputs.locate`, "
            "`depthlm_hf.tasks.samples.build_sample`)."
        )
    return marker_row_label(np.asarray(q.locate(q.points), dtype=np.float64)[0])
