"""The DepthLM record: one image, its intrinsics and labelled pixels (plus a second view for two-view tasks).

A record is a plain dict, in memory and in the curated jsonl format alike:

- `image`: a path (str) or a PIL image.
- `intrinsics`: `[fx, fy, cx, cy, width, height]` [px] of that image.
- `pixel_coords`: (N, 2) `[x, y]` pixels [px] (x = column, y = row, origin top-left pixel centre).
- `depth`: (N,) Euclidean distance [m] from the camera centre to the 3D point of each pixel (the
  DepthLM label, *not* the z-depth).
- `z_depth` (optional): (N,) principal-axis depth [m] of the same pixels.
- `dataset`, `scene` (optional): names, for mixtures and per-dataset metrics.
- two-view records add `image2`, `intrinsics2`, and the relative pose `rotation` (3, 3) and
  `translation` (3,) [m] that map camera-1 coordinates to camera-2 coordinates: `X2 = R @ X1 + t`
  (so `|t|` is the distance the camera centre moved).

:func:`record_features` gives the matching `datasets.Features`; :func:`validate_record` checks a
raw record and returns a normalised copy, or raises :class:`InvalidRecordError` naming the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from depthlm_hf.geometry import CameraIntrinsics

if TYPE_CHECKING:
    import datasets

REQUIRED_FIELDS = ("image", "intrinsics", "pixel_coords", "depth")
TWO_VIEW_FIELDS = ("image2", "intrinsics2", "rotation", "translation")
VIEWS: tuple[tuple[str, str], ...] = (("image", "intrinsics"), ("image2", "intrinsics2"))
"""The (image, intrinsics) keys of a two-view record's views, first view first."""

SKIP_REASONS = (
    "bad_json",
    "line_too_long",
    "bad_value",
    "missing_field",
    "bad_intrinsics",
    "bad_coords",
    "length_mismatch",
    "bad_depth",
    "coords_outside_image",
    "bad_path",
    "unsafe_path",
    "not_a_file",
    "unreadable_image",
    "size_mismatch",
    "unified_too_large",
    "bad_pose",
)
"""Every reason a record can be rejected for (the keys of the loaders' `skipped` counters)."""


class InvalidRecordError(ValueError):
    """A record that breaks the schema; `reason` is one of :data:`SKIP_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in SKIP_REASONS, reason
        super().__init__(f"[{reason}] {message}")
        self.reason = reason


def record_features(two_view: bool = False, with_z_depth: bool = False) -> datasets.Features:
    """`datasets.Features` of a record (images decoded to PIL by `datasets`).

    >>> sorted(record_features())
    ['dataset', 'depth', 'image', 'intrinsics', 'pixel_coords', 'scene']
    >>> "rotation" in record_features(two_view=True), "rotation" in record_features()
    (True, False)
    """
    from datasets import Features, Image, List, Value

    features = {
        "image": Image(),
        "intrinsics": List(Value("float64"), length=6),
        "pixel_coords": List(List(Value("float64"), length=2)),
        "depth": List(Value("float64")),
        "dataset": Value("string"),
        "scene": Value("string"),
    }
    if with_z_depth:
        features["z_depth"] = List(Value("float64"))
    if two_view:
        features["image2"] = Image()
        features["intrinsics2"] = List(Value("float64"), length=6)
        features["rotation"] = List(List(Value("float64"), length=3), length=3)
        features["translation"] = List(Value("float64"), length=3)
    return Features(features)


def _intrinsics(raw: Any, name: str) -> CameraIntrinsics:
    try:
        return CameraIntrinsics.from_list(raw)
    except (TypeError, ValueError) as err:
        raise InvalidRecordError("bad_intrinsics", f"`{name}`: {err}") from None


_NUMBER_TYPES = (int, float, np.integer, np.floating)


def _float_array(raw: Any, name: str, reason: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    # JSON numbers only, as in `intrinsics`: `true` is not 1 and "2.5" is not 2.5 (numpy would convert both).
    try:
        leaves = np.asarray(raw, dtype=object)
        if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, _NUMBER_TYPES) for v in leaves.flat):
            raise TypeError
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidRecordError(
            reason, f"`{name}` must be a (ragged-free) list of JSON numbers (not booleans or strings)."
        ) from None
    if array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        raise InvalidRecordError(reason, f"`{name}` must have shape (N, {shape_tail}), got {array.shape}.")
    return array


def _positive_depths(raw: Any, name: str, count: int) -> np.ndarray:
    depth = _float_array(raw, name, "bad_depth", ())
    if depth.shape[0] != count:
        raise InvalidRecordError("length_mismatch", f"`{name}` has {depth.shape[0]} values for {count} `pixel_coords`.")
    if not (np.isfinite(depth).all() and (depth > 0).all()):
        raise InvalidRecordError("bad_depth", f"`{name}` must be finite and > 0 [m]; got {depth[~(depth > 0)][:3]}.")
    return depth


def _check_inside(coords: np.ndarray, intr: CameraIntrinsics) -> None:
    # Query pixels are pixel centres: x in [0, W - 1], y in [0, H - 1] (as the processor requires).
    x, y = coords[:, 0], coords[:, 1]
    inside = (x >= 0) & (x <= intr.width - 1) & (y >= 0) & (y <= intr.height - 1)
    if not inside.all():
        raise InvalidRecordError(
            "coords_outside_image",
            f"`pixel_coords` {coords[~inside][:3].tolist()} lie outside the {intr.width}x{intr.height} image.",
        )


def validate_record(raw: Mapping[str, Any], two_view: bool | None = None) -> dict[str, Any]:
    """A normalised copy of `raw` (numpy arrays, `intrinsics` as a list); raises :class:`InvalidRecordError`.

    `two_view=None` checks the two-view fields when `image2` is present. Images are not opened here.

    >>> rec = validate_record({"image": "a.png", "intrinsics": [500, 500, 320, 240, 640, 480],
    ...                        "pixel_coords": [[10, 20]], "depth": [2.5]})
    >>> rec["pixel_coords"].tolist(), rec["depth"].tolist(), rec["dataset"]
    ([[10.0, 20.0]], [2.5], '')
    >>> validate_record({**rec, "depth": [float("nan")]})
    Traceback (most recent call last):
    ...
    depthlm_hf.data.records.InvalidRecordError: [bad_depth] `depth` must be finite and > 0 [m]; got [nan].
    """
    if not isinstance(raw, Mapping):
        raise InvalidRecordError("bad_json", f"a record must be a JSON object, got {type(raw).__name__}.")
    missing = [name for name in REQUIRED_FIELDS if name not in raw or raw[name] is None]
    if two_view is None:
        two_view = raw.get("image2") is not None
    if two_view:
        missing += [name for name in TWO_VIEW_FIELDS if name not in raw or raw[name] is None]
    if missing:
        raise InvalidRecordError("missing_field", f"the record lacks {missing}.")
    intr = _intrinsics(raw["intrinsics"], "intrinsics")
    coords = _float_array(raw["pixel_coords"], "pixel_coords", "bad_coords", (2,))
    if not np.isfinite(coords).all():
        raise InvalidRecordError("bad_coords", "`pixel_coords` must be finite.")
    depth = _positive_depths(raw["depth"], "depth", coords.shape[0])
    _check_inside(coords, intr)
    record = dict(raw)
    record.update(
        intrinsics=intr.to_list(),
        pixel_coords=coords,
        depth=depth,
        dataset=str(raw.get("dataset") or ""),
        scene=str(raw.get("scene") or ""),
    )
    if raw.get("z_depth") is not None:
        record["z_depth"] = _positive_depths(raw["z_depth"], "z_depth", coords.shape[0])
    if two_view:
        record["intrinsics2"] = _intrinsics(raw["intrinsics2"], "intrinsics2").to_list()
        rotation = _float_array(raw["rotation"], "rotation", "bad_pose", (3,))
        translation = _float_array(raw["translation"], "translation", "bad_pose", ())
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise InvalidRecordError("bad_pose", "`rotation` must be (3, 3) and `translation` (3,) [m].")
        finite = np.isfinite(rotation).all() and np.isfinite(translation).all()
        if not finite or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4):
            raise InvalidRecordError("bad_pose", "`rotation` must be a finite orthonormal (3, 3) matrix.")
        record.update(rotation=rotation, translation=translation)
    return record


def to_jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with numpy arrays turned into lists (for `json.dumps`); images must already be paths.

    >>> to_jsonable({"image": "a.png", "depth": np.array([1.5])})
    {'image': 'a.png', 'depth': [1.5]}
    """
    out = {}
    for key, value in record.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"`{key}` is not finite: {value!r}.")
        elif not isinstance(value, (str, int, float, list, dict, type(None))):
            raise TypeError(f"`{key}` of type {type(value).__name__} cannot be written to JSON; save images first.")
        out[key] = value
    return out


def two_view_images(
    processor: Any,
    record: Mapping[str, Any],
    window: Callable[[CameraIntrinsics], tuple[int, int, int, int] | None] = lambda camera: None,
) -> list[Any]:
    """The two focal-unified images of a two-view record (`VIEWS` order), no marker, each cropped to the
    `(left, top, width, height)` [px] that `window` gives for its camera (None: no crop; it is called once per
    view, in order, so a seeded draw inside it stays reproducible). `processor` is a `DepthLMProcessor`."""
    images = []
    for image_key, intrinsics_key in VIEWS:
        camera = CameraIntrinsics.from_list(record[intrinsics_key])
        images.append(processor.prepare(record[image_key], camera, None, crop=window(camera)).image)
    return images
