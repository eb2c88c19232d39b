"""The fixed evaluation sets: the same (record, pixel) pairs in every run and process, no augmentation.

`EvaluationView` gives rows of the single-point tasks for trainers; `build_samples` gives the samples of
every task that `depthlm eval` (`depthlm_hf.metrics.runner`) asks a model about.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np

from depthlm_hf.data.records import InvalidRecordError
from depthlm_hf.data.seeding import rng
from depthlm_hf.data.views import _View
from depthlm_hf.geometry import UnifiedImageTooLargeError
from depthlm_hf.tasks.samples import build_sample
from depthlm_hf.tasks.text import DEFAULT_TASK, TASKS, get_task

Protocol = Literal["fixed", "official"]
PROTOCOLS: tuple[Protocol, ...] = get_args(Protocol)
"""How evaluation samples are drawn: "fixed": `num_samples` eligible (record, pixel) pairs drawn with `seed`
(or all of them); "official": the official release's 128 samples (`official_pairs`)."""

OFFICIAL_SAMPLES = 128
"""Samples of the official release's evaluation (its `eval.sh`: `--samples_to_eval 128`)."""


class EvaluationView(_View):
    """A fixed evaluation set: `num_samples` (record, pixel) pairs drawn once with `seed`, no crop.

    Only pixels whose marker fits in the focal-unified image are eligible. The selection depends
    only on the source's content and `seed` (identical across runs and processes); rows come in
    record order. `num_samples=None` (or more than available) keeps every eligible pixel.

    Rows: `{"images", "prompt", "depth", "task", "point" [x, y] (input image px), "point_index",
    "record_index", "dataset", "scene"}` where `depth` is the label [m].
    """

    def __init__(
        self,
        source: Sequence[Mapping[str, Any]],
        processor: Any,
        num_samples: int | None = 8192,
        seed: int = 0,
        task: str = "distance",
        protocol: Protocol = "fixed",
    ) -> None:
        if not get_task(task).is_per_pixel():
            per_pixel = [name for name, spec in TASKS.items() if spec.is_per_pixel()]
            raise ValueError(f"`task` must be one of {', '.join(per_pixel)} for the evaluation view, got {task!r}.")
        if protocol not in PROTOCOLS:
            raise ValueError(f"`protocol` must be one of {', '.join(PROTOCOLS)}, got {protocol!r}.")
        self.source, self.processor, self.seed, self.task = source, processor, int(seed), task
        self.stats: Counter[str] = Counter()
        pairs = official_pairs(source, processor) if protocol == "official" else self._eligible()
        if protocol == "fixed" and num_samples is not None and num_samples < len(pairs):
            chosen = np.sort(rng(self.seed).choice(len(pairs), size=num_samples, replace=False))
            pairs = pairs[chosen]
        self.pairs = pairs  # (M, 2) int: record index, pixel index
        self.num_samples = len(pairs)
        self._cache: tuple[int, Mapping[str, Any]] | None = None

    def _eligible(self) -> np.ndarray:
        # Scan without decoding images when the source can (a CuratedDataset's `with_paths()`).
        scan = self.source.with_paths() if hasattr(self.source, "with_paths") else self.source
        pairs = []
        for record_index in range(len(scan)):
            try:
                record = scan[record_index]
                # markable unifies the focal length, which refuses a unified image over the pixel limit
                fits = np.flatnonzero(self.processor.markable(record["intrinsics"], record["pixel_coords"]))
            except InvalidRecordError as err:
                self.stats[err.reason] += 1
                continue
            except UnifiedImageTooLargeError:
                self.stats["unified_too_large"] += 1
                continue
            self.stats["ok"] += 1
            if len(fits) < len(record["depth"]):
                self.stats["marker_does_not_fit"] += len(record["depth"]) - len(fits)
            pairs.append(np.stack([np.full(len(fits), record_index), fits], axis=1))
        return np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), np.int64)

    def _record(self, record_index: int) -> Mapping[str, Any]:
        if self._cache is None or self._cache[0] != record_index:
            self._cache = (record_index, self.source[record_index])
        return self._cache[1]

    def sample(self, index: int) -> dict[str, Any]:
        record_index, point_index = (int(v) for v in self.pairs[index])
        record = self._record(record_index)
        point = np.asarray(record["pixel_coords"][point_index], dtype=np.float64)
        locate = lambda pts: self.processor.map_queries(record["intrinsics"], pts).points  # noqa: E731
        sample = build_sample(self.task, record, rng(self.seed, index), candidates=[point_index], locate=locate)
        prepared = self.processor.prepare(record["image"], record["intrinsics"], point[None])
        return {
            "images": [prepared.image],
            "prompt": self.processor.task_messages(self.task),
            "depth": sample.value,
            "task": self.task,
            "point": point.tolist(),
            "point_index": point_index,
            "record_index": record_index,
            "dataset": str(record.get("dataset") or ""),
            "scene": str(record.get("scene") or ""),
        }


def build_samples(
    source,
    processor,
    task: str,
    num_samples: int | None,
    seed: int,
    protocol: Protocol = "fixed",
    stats: Counter[str] | None = None,
) -> list[dict[str, Any]]:
    """The fixed evaluation samples of `task`: `{"id", "record_index", "point_indices", "label", "fields"}`.

    Tasks about pixels of one image use the (record, pixel) pairs of `EvaluationView`; a task with
    `num_points` 2 ("two_point_distance") pairs each of them with another eligible pixel of the same record;
    a task with `num_images` 2 ("translation") takes records with a second view. Question fields (speed,
    time) come from a generator seeded by `(seed, id, task)`. With `protocol` "official" the distance task
    gets the release's 128 samples (`official_pairs`). `stats`, when given, receives the scan's counts: `ok`
    records and those left out of the set, by reason.
    """
    if protocol == "official" and task != DEFAULT_TASK:
        raise ValueError(f"`protocol` 'official' evaluates the distance task only (as the release), not {task!r}.")
    spec = get_task(task)
    if spec.num_points > 2:
        raise ValueError(f"`task` {task!r} marks {spec.num_points} points; the evaluation sets mark at most 2.")
    paths = source.with_paths()
    if spec.num_images == 2:
        return _two_view_samples(paths, task, num_samples, seed, Counter() if stats is None else stats)
    view_task = task if spec.is_per_pixel() else DEFAULT_TASK  # the view only draws the (record, pixel) pairs
    view = EvaluationView(paths, processor, num_samples=num_samples, seed=seed, task=view_task, protocol=protocol)
    if stats is not None:
        stats.update(view.stats)
    samples, record = [], None
    for k, (record_index, point_index) in enumerate(view.pairs.tolist()):
        if record is None or record["index"] != record_index:
            record = paths[record_index]
            markable = _markable(processor, record)
        candidates = [point_index]
        if spec.num_points == 2:  # the view's pixel is always one of the two points
            others = [i for i in markable if i != point_index]
            if not others:
                continue
            candidates = [point_index, int(rng(seed, k, task).choice(others))]
        locate = lambda pts, rec=record: processor.map_queries(rec["intrinsics"], pts).points  # noqa: E731
        sample = build_sample(task, record, rng(seed, k, task), candidates=candidates, locate=locate)
        samples.append(
            {
                "id": k,
                "record_index": record_index,
                "point_indices": list(sample.point_indices),
                "label": float(sample.value),
                "fields": sample.fields,
            }
        )
    return samples


def _two_view_samples(
    paths, task: str, num_samples: int | None, seed: int, stats: Counter[str]
) -> list[dict[str, Any]]:
    ids = []
    for index in range(len(paths)):
        try:
            record = paths[index]
        except InvalidRecordError as err:
            stats[err.reason] += 1
            continue
        stats["ok"] += 1
        if record.get("translation") is not None:
            ids.append(index)
    if num_samples is not None and num_samples < len(ids):
        ids = sorted(np.random.default_rng(seed).choice(ids, size=num_samples, replace=False).tolist())
    samples = []
    for k, index in enumerate(ids):
        value = build_sample(task, paths[index], rng(seed, k, task)).value
        samples.append({"id": k, "record_index": index, "point_indices": [], "label": float(value), "fields": {}})
    return samples


def _markable(processor, record) -> list[int]:
    """Indices of the record's pixels whose marker fits in the focal-unified image."""
    return np.flatnonzero(processor.markable(record["intrinsics"], record["pixel_coords"])).tolist()


def official_pairs(source: Sequence[Mapping[str, Any]], processor: Any, count: int = OFFICIAL_SAMPLES) -> np.ndarray:
    """The official release's evaluation samples: (count, 2) int (record index, pixel index), in sample order.

    As the release's `dataset_eval`: with N records of P pixels each, `random.seed(42)` draws one pixel
    index `random.sample(range(P), 1)` for each of the N * P sample slots; sample k asks about record
    k mod N at the pixel of slot k; when that pixel's marker does not fit (`processor.markable`), it takes
    the record and pixel of slot k + 1 instead (and so on). Samples may repeat. Every record must have P pixels.
    """
    scan = source.with_paths() if hasattr(source, "with_paths") else source
    records = [scan[i] for i in range(len(scan))]
    sizes = {len(record["pixel_coords"]) for record in records}
    if len(sizes) != 1:
        raise ValueError(f"the official protocol needs the same number of pixels in every record, got {sorted(sizes)}.")
    pixels = sizes.pop()
    slots = len(records) * pixels
    draw = random.Random(42)
    slot_pixel = [draw.sample(range(pixels), 1)[0] for _ in range(slots)]
    markable = [processor.markable(record["intrinsics"], record["pixel_coords"]) for record in records]
    pairs = []
    for k in range(min(count, slots)):
        slot = k
        while not markable[slot % len(records)][slot_pixel[slot]]:
            slot = (slot + 1) % slots
        pairs.append((slot % len(records), slot_pixel[slot]))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
