"""The fixed evaluation view: the same (record, pixel) pairs in every run and process, no augmentation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from depthlm_hf.data.records import InvalidRecordError
from depthlm_hf.data.views import _rng, _View
from depthlm_hf.prompting.markers import marker_fits
from depthlm_hf.tasks.samples import build_sample, check_task


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
    ) -> None:
        if check_task(task) not in ("distance", "z_distance"):
            raise ValueError(f"`task` must be 'distance' or 'z_distance' for the evaluation view, got {task!r}.")
        self.source, self.processor, self.seed, self.task = source, processor, int(seed), task
        self.stats: Counter[str] = Counter()
        pairs = self._eligible()
        if num_samples is not None and num_samples < len(pairs):
            chosen = np.sort(_rng(self.seed).choice(len(pairs), size=num_samples, replace=False))
            pairs = pairs[chosen]
        self.pairs = pairs  # (M, 2) int: record index, pixel index
        self.num_samples = len(pairs)
        self._cache: tuple[int, Mapping[str, Any]] | None = None

    def _eligible(self) -> np.ndarray:
        # Scan without decoding images when the source can (a CuratedDataset's `with_paths()`).
        scan = self.source.with_paths() if hasattr(self.source, "with_paths") else self.source
        style = self.processor.marker_style
        pairs = []
        for record_index in range(len(scan)):
            try:
                record = scan[record_index]
            except InvalidRecordError as err:
                self.stats[err.reason] += 1
                continue
            transform = self.processor.focal_transform(record["intrinsics"])
            mapped = np.rint(transform.map_points(record["pixel_coords"]))
            fits = np.flatnonzero(marker_fits(mapped, transform.out_width, transform.out_height, style))
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
        sample = build_sample(self.task, record, _rng(self.seed, index), candidates=[point_index])
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
