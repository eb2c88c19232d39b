"""A training view that decodes and unifies each drawn image once and draws several rows from it.

About 80% of a :class:`~depthlm_hf.data.views.TrainingView` row is the PNG decode and the bicubic
focal-unification resize, done again for every row. :class:`GroupedTrainingView` draws one record (and
its aspect jitter) per group of `rows_per_image` consecutive rows, unifies its image once, and gives each
row of the group its own crop, task and labelled pixels (the paper trains on several labelled pixels
per image). Rows stay a pure function of `(seed, index)`: row `i` belongs to group `i // rows_per_image`,
whose record comes from a generator seeded by `(seed, group)`, and its crop, task and pixels from one
seeded by `(seed, i)`. Only the speed depends on the order of reading: reading rows in index order (as
`depthlm sft` does when `rows_per_image > 1`) decodes each image once.

A row's image is the crop of the unified image, as in the official release (resize, then crop), where
:class:`~depthlm_hf.data.views.TrainingView` resamples straight into the crop in one call: the two
differ by at most one intensity level on a few pixels in 100,000 (PIL's rounding of the resize box).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from depthlm_hf.data.records import InvalidRecordError
from depthlm_hf.data.seeding import rng as _rng
from depthlm_hf.data.views import MixtureView, RowFormat, TrainingView, TrainingViewConfig
from depthlm_hf.geometry import CameraIntrinsics, PixelTransform, crop_transform
from depthlm_hf.prompting.query_inputs import PreparedImage
from depthlm_hf.tasks.samples import build_sample
from depthlm_hf.tasks.text import get_task

_GROUP_STREAM = 1
"""Third seed word of the group generators, so that they never coincide with a row's `(seed, index)`."""


@dataclass(frozen=True)
class UnifiedImage:
    """One record with its image at the unified focal length.

    Attributes:
        record: the source record.
        intrinsics: its camera after the group's aspect jitter, in input-image pixels [px].
        image: the focal-unified RGB image (no crop, no marker).
        transform: input image [px] -> unified image [px].
    """

    record: Mapping[str, Any]
    intrinsics: CameraIntrinsics
    image: Image.Image
    transform: PixelTransform


class GroupedTrainingView(TrainingView):
    """:class:`TrainingView` rows in groups of `rows_per_image` that share one decoded, unified image.

    Args:
        source, processor, config, seed, num_samples, row_format: as for :class:`TrainingView` (`config`
            None: the defaults).
        rows_per_image: consecutive rows drawn from one image (1 behaves like one decode per row).
        cache_size: unified images kept (least recently used goes first); 2 covers a reader that
            straddles two groups.

    A row whose own crop holds no usable pixel after `config.max_tries` draws falls back to a fresh
    record for that row alone (:class:`TrainingView`'s draw), so a group never fails as a whole.
    """

    def __init__(
        self,
        source: Sequence[Mapping[str, Any]],
        processor: Any,
        config: TrainingViewConfig | None = None,
        seed: int = 0,
        num_samples: int | None = None,
        row_format: RowFormat = "sft",
        rows_per_image: int = 4,
        cache_size: int = 2,
    ) -> None:
        if not isinstance(rows_per_image, int) or rows_per_image < 1:
            raise ValueError(f"`rows_per_image` must be an integer >= 1, got {rows_per_image!r}.")
        if not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"`cache_size` must be an integer >= 1, got {cache_size!r}.")
        config = TrainingViewConfig() if config is None else config
        super().__init__(source, processor, config, seed=seed, num_samples=num_samples, row_format=row_format)
        self.rows_per_image, self.cache_size = rows_per_image, cache_size
        self._cache: OrderedDict[int, UnifiedImage | None] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        # Data-loader workers and `datasets` fingerprints get the view without its images.
        return {**self.__dict__, "_cache": OrderedDict()}

    def indices(self, shard: int = 0, num_shards: int = 1) -> Iterator[int]:
        """Row indices of whole groups `shard, shard + num_shards, ...`, each group's rows in order."""
        group = shard
        while True:
            for index in range(group * self.rows_per_image, (group + 1) * self.rows_per_image):
                if self.num_samples is not None and index >= self.num_samples:
                    return
                yield index
            group += num_shards

    def sample(self, index: int) -> dict[str, Any]:
        """Row `index` (deterministic)."""
        unified = self.unified(index // self.rows_per_image)
        if unified is not None:
            rng = _rng(self.seed, index)
            for _ in range(self.config.max_tries):
                row = self._grouped_row(unified, rng)
                if row is not None:
                    return row
        return super().sample(index)

    def unified(self, group: int) -> UnifiedImage | None:
        """The record and unified image of `group` (None when `max_tries` draws found no valid record)."""
        if group in self._cache:
            self._cache.move_to_end(group)
            return self._cache[group]
        rng = _rng(self.seed, group, _GROUP_STREAM)
        entry = None
        for _ in range(self.config.max_tries):
            record_index = int(rng.integers(len(self.source)))
            try:
                record = self.source[record_index]
            except InvalidRecordError as err:
                self.stats[err.reason] += 1
                continue
            intrinsics = self._jittered(CameraIntrinsics.from_list(record["intrinsics"]), rng)
            prepared = self.processor.prepare(record["image"], intrinsics, None)
            entry = UnifiedImage(record, intrinsics, prepared.image, prepared.transform)
            break
        self._cache[group] = entry
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    def _grouped_row(self, unified: UnifiedImage, rng: np.random.Generator) -> dict[str, Any] | None:
        task = self._tasks[int(rng.choice(len(self._tasks), p=self._task_p))]
        if get_task(task).num_images > 1:
            return self._two_view_row(task, unified.record, rng)
        window = self._window(unified.intrinsics, rng)
        candidates = self._fitting(unified.record["pixel_coords"], unified.intrinsics, window)
        locate = lambda pts: self.processor.map_queries(unified.intrinsics, pts, window).points  # noqa: E731
        sample = build_sample(task, unified.record, rng, candidates, self.config.ranges, locate)
        if sample is None:
            self.stats["no_point_in_crop"] += 1
            return None
        image = self.render(unified, sample.points, window).image
        prompt = self.processor.task_messages(sample.task, **sample.fields)
        row = {"images": [image], "prompt": prompt, "depth": sample.value, "task": sample.task}
        if self.row_format == "sft":  # as TrainingView's: the target and task ride along for generation metrics
            row["completion"] = self.processor.completion_messages(sample.value, sample.task)
        return row

    def render(
        self, unified: UnifiedImage, points: np.ndarray, window: tuple[int, int, int, int] | None
    ) -> PreparedImage:
        """The model image of a row: `unified`'s image cropped to `window` with markers on the (K, 2) [px] input
        `points`, placed and drawn by the processor (`map_queries` and `render`, as a one-call row's), so the
        marker pixels and the fit check are those of :meth:`DepthLMProcessor.prepare` under every `pixel_map`.

        Raises the processor's `ValueError` when a marker does not fit (`DepthLMProcessor.markable`).
        """
        mapping = self.processor.map_queries(unified.intrinsics, points, crop=window)
        # The cached image went through the focal unification already: only the crop is left to apply.
        width, height = unified.image.width, unified.image.height
        crop = crop_transform(width, height, *(window if window is not None else (0, 0, width, height)))
        prepared = self.processor.render(unified.image, replace(mapping, transform=crop))
        return replace(prepared, transform=mapping.transform)  # a copy: rows never share the cached image


class GroupedMixtureView(MixtureView):
    """A :class:`~depthlm_hf.data.views.MixtureView` of grouped views that picks the view once per group.

    Row `i` comes from the view that group `i // rows_per_image` picks, so the rows of a group stay in one
    view and share its decoded image (a per-row pick would scatter them over the views and decode each image
    about once per row). `rows_per_image` must match the views'.
    """

    def __init__(
        self,
        views: Sequence[GroupedTrainingView] | Mapping[str, GroupedTrainingView],
        weights: Sequence[float] | None = None,
        seed: int = 0,
        num_samples: int | None = None,
        rows_per_image: int = 4,
    ) -> None:
        super().__init__(views, weights=weights, seed=seed, num_samples=num_samples)
        if any(not isinstance(v, GroupedTrainingView) or v.rows_per_image != rows_per_image for v in self.views):
            raise ValueError(f"`views` must all be GroupedTrainingView with `rows_per_image` = {rows_per_image}.")
        self.rows_per_image = rows_per_image

    def choose(self, index: int) -> int:
        """Which view row `index` comes from: the pick of its group."""
        return super().choose(index // self.rows_per_image)

    def indices(self, shard: int = 0, num_shards: int = 1) -> Iterator[int]:
        """Row indices of whole groups per shard, as :meth:`GroupedTrainingView.indices`."""
        return GroupedTrainingView.indices(self, shard, num_shards)
