"""Views of record sources as rows for TRL trainers: training view, weighted mixture, shared machinery.

The fixed evaluation view, built on the same machinery, is :mod:`depthlm_hf.data.eval_view`.

A *source* is any sequence of records with `len()` and `source[i]` (a
:class:`~depthlm_hf.data.curated.CuratedDataset`, a :class:`~depthlm_hf.data.synthetic.scenes.SyntheticDataset`
or a plain list). A view turns it into rows on the fly:

- SFT rows `{"images": [marked image], "prompt": [user msg], "completion": [assistant msg]}`,
  the prompt/completion format TRL's `SFTTrainer` trains VLMs on (answer-only loss);
- GRPO rows `{"images": [...], "prompt": [user msg], "depth": label, "task": name}` for
  `GRPOTrainer` (`depth` holds the task's target value, passed to reward functions);
- evaluation rows: GRPO rows plus `point`, `record_index`, `point_index`, `dataset`, `scene`.

Every row is a pure function of `(seed, row index)`: a numpy generator seeded with
`SeedSequence([seed, index])`, never Python's `hash()` or global state, so two processes (or
two data-loader workers) build identical rows. `to_iterable_dataset()` wraps a view as a
`datasets.IterableDataset` whose shards split the row indices, for TRL and multi-worker loading.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from depthlm_hf.choices import check_choice
from depthlm_hf.data.records import InvalidRecordError, two_view_images
from depthlm_hf.data.seeding import rng as _rng
from depthlm_hf.geometry import CameraIntrinsics, UnifiedImageTooLargeError, centered_crop_window
from depthlm_hf.tasks.samples import TaskRanges, TaskSample, build_sample, check_task
from depthlm_hf.tasks.text import get_task

RowFormat = Literal["sft", "grpo"]
"""Rows for `SFTTrainer` (prompt/completion) or for `GRPOTrainer` (prompt and label)."""
ROW_FORMATS: tuple[RowFormat, ...] = get_args(RowFormat)
CropPosition = Literal["center", "random"]
"""Training-crop placement: centred on the principal point, or anywhere that keeps it inside."""
CROP_POSITIONS: tuple[CropPosition, ...] = get_args(CropPosition)

PAPER_MIXTURE_WEIGHTS: dict[str, float] = {"matterport3d": 0.1}
"""The paper's mixture: every dataset weight 1 except Matterport3D, 0.1 (see :func:`mixture_weights`)."""


def mixture_weights(names: Sequence[str], overrides: Mapping[str, float] = PAPER_MIXTURE_WEIGHTS) -> list[float]:
    """Weights of datasets `names`: 1.0 each, or `overrides[name]` (case-insensitive).

    >>> mixture_weights(["ScanNet++", "Matterport3D", "Argoverse2"])
    [1.0, 0.1, 1.0]
    """
    lower = {k.lower(): float(v) for k, v in overrides.items()}
    return [lower.get(name.lower(), 1.0) for name in names]


@dataclass(frozen=True)
class TrainingViewConfig:
    """Augmentations of the training view (paper Sec. 4 and the official release).

    Args:
        crop: crop the focal-unified image to a random size (paper: yes).
        crop_width: inclusive range of the crop width [px] in the unified image (paper:
            1000-1400); a crop wider than the image keeps the whole width.
        crop_height: the same for the height (paper: 700-1200).
        crop_position: "center" keeps the crop centred on the principal point, so it stays at the
            centre of the model's image (the official release centres crops on the image centre,
            the same for central principal points); "random" places the crop anywhere that keeps
            the principal point inside it.
        aspect_jitter: `(lo, hi)` or None. Scales the image height by a random factor in that range
            while keeping the nominal intrinsics (the paper's fix for Taskonomy's noisy intrinsics;
            the official release sets width / height to U(1.0, 1.3), which for Taskonomy's square
            images is `aspect_jitter=(1 / 1.3, 1.0)`). Labels are unchanged.
        tasks: task name -> weight; each sample draws its task from these.
        ranges: ranges of the `time` and `speed` question fields.
        max_tries: records drawn per sample before giving up (a record may be invalid or have no
            pixel where a marker fits in the crop).
    """

    crop: bool = True
    crop_width: tuple[int, int] = (1000, 1400)
    crop_height: tuple[int, int] = (700, 1200)
    crop_position: CropPosition = "center"
    aspect_jitter: tuple[float, float] | None = None
    tasks: Mapping[str, float] = field(default_factory=lambda: {"distance": 1.0})
    ranges: TaskRanges = TaskRanges()
    max_tries: int = 20

    def __post_init__(self) -> None:
        for name in ("crop_width", "crop_height"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"`{name}` must be a range (lo, hi) with 1 <= lo <= hi, got {(lo, hi)!r}.")
        check_choice("crop_position", self.crop_position, CropPosition)
        if self.aspect_jitter is not None and not 0 < self.aspect_jitter[0] <= self.aspect_jitter[1]:
            raise ValueError(f"`aspect_jitter` must be (lo, hi) with 0 < lo <= hi, got {self.aspect_jitter!r}.")
        if not self.tasks or any(w < 0 for w in self.tasks.values()) or sum(self.tasks.values()) <= 0:
            raise ValueError(f"`tasks` must map task names to weights >= 0 with a positive sum, got {self.tasks!r}.")
        for task in self.tasks:
            check_task(task)


class _View:
    """Shared plumbing: length, iteration, sharded `datasets.IterableDataset`."""

    num_samples: int | None

    def sample(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError(f"{type(self).__name__} with `num_samples=None` is endless and has no length.")
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.num_samples is not None and not 0 <= index < self.num_samples:
            raise IndexError(f"row {index} out of range for {self.num_samples} rows.")
        return self.sample(index)

    def indices(self, shard: int = 0, num_shards: int = 1) -> Iterator[int]:
        """Row indices `shard, shard + num_shards, ...` (endless when `num_samples` is None)."""
        index = shard
        while self.num_samples is None or index < self.num_samples:
            yield index
            index += num_shards

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in self.indices():
            yield self.sample(index)

    def to_iterable_dataset(self, num_shards: int = 1):
        """A `datasets.IterableDataset` of this view's rows (PIL images kept as they are, no Arrow encoding).

        Shard `k` yields rows `k, k + num_shards, ...`; use `num_shards >= dataloader_num_workers`.
        An endless view needs `max_steps` in the trainer's arguments.
        """
        import datasets

        return datasets.IterableDataset.from_generator(
            _generate_rows,
            gen_kwargs={"shards": list(range(num_shards)), "view": _Frozen(self), "num_shards": num_shards},
        )


ROW_COLUMNS: dict[RowFormat, tuple[str, ...]] = {
    "sft": ("images", "prompt", "completion", "depth", "task", "index"),
    "grpo": ("images", "prompt", "depth", "task", "index"),
}
"""The columns of the rows trainers read, by row format: both carry the `depth` target and `task` (rewards and
generation metrics read them) and the row `index` (it identifies the row in logs and tests)."""


class RowTransform:
    """Picklable `datasets` transform from a batch of row indices to `view`'s rows, in the columns of `row_format`."""

    def __init__(self, view: Any, row_format: RowFormat) -> None:
        self.view, self.row_format = view, check_choice("row_format", row_format, RowFormat)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = [self.view[int(index)] for index in batch["index"]]
        columns = {key: [row[key] for row in rows] for key in ROW_COLUMNS[self.row_format] if key != "index"}
        columns["index"] = [int(index) for index in batch["index"]]
        return columns


def index_dataset(num_samples: int, view: Any, row_format: RowFormat) -> Any:
    """The one lazy adapter from a view (anything with `view[i]`) to a map-style `datasets.Dataset` of rows
    `0 .. num_samples - 1`: it stores only the row indices and renders rows on access (`set_transform`), so a
    run resumes and shards across processes exactly (row i is a pure function of i). Trainers must keep the
    `index` column: `remove_unused_columns=False` in their arguments."""
    import datasets

    dataset = datasets.Dataset.from_dict({"index": np.arange(num_samples, dtype=np.int64)})
    dataset.set_transform(RowTransform(view, row_format))
    return dataset


class _Frozen:
    """Wraps a view for `datasets` gen_kwargs: not a list (so it is not sharded) and cheap to fingerprint."""

    def __init__(self, view: _View) -> None:
        self.view = view

    def __reduce__(self):
        return (_Frozen, (self.view,))


def _generate_rows(shards: list[int], view: _Frozen, num_shards: int) -> Iterator[dict[str, Any]]:
    for shard in shards:
        for index in view.view.indices(shard, num_shards):
            yield view.view.sample(index)


class TrainingView(_View):
    """Random training rows from one source: 1 labelled pixel (or the task's markers) per row.

    Per row: draw a record and a task, unify the focal length (`processor.focal_transform`), draw
    a crop size and place the crop (centred on the principal point by default), keep the record's
    pixels whose marker fits inside the crop, draw the task's pixels among them, and let
    `processor` resize, crop and draw the markers. Labels never change with the augmentation.

    Args:
        source: records (`len()` and `source[i]`).
        processor: a :class:`~depthlm_hf.prompting.processing.DepthLMProcessor`.
        config: augmentations, tasks and their weights.
        seed: the rows are a pure function of `(seed, index)`.
        num_samples: rows in the view (None: endless, for `max_steps` training).
        row_format: "sft" (prompt/completion) or "grpo" (prompt + `depth` label column).

    :attr:`stats` counts the records skipped while drawing, by reason.
    """

    def __init__(
        self,
        source: Sequence[Mapping[str, Any]],
        processor: Any,
        config: TrainingViewConfig = TrainingViewConfig(),
        seed: int = 0,
        num_samples: int | None = None,
        row_format: RowFormat = "sft",
    ) -> None:
        check_choice("row_format", row_format, RowFormat)
        if len(source) == 0:
            raise ValueError("`source` has no records.")
        self.source, self.processor, self.config = source, processor, config
        self.seed, self.num_samples, self.row_format = int(seed), num_samples, row_format
        self._tasks = list(config.tasks)
        weights = np.asarray([config.tasks[t] for t in self._tasks], dtype=np.float64)
        self._task_p = weights / weights.sum()
        self.stats: Counter[str] = Counter()

    def sample(self, index: int) -> dict[str, Any]:
        """Row `index` (deterministic)."""
        rng = _rng(self.seed, index)
        for _ in range(self.config.max_tries):
            row = self._try(rng)
            if row is not None:
                return row
        raise RuntimeError(
            f"no usable record after {self.config.max_tries} draws for row {index} (skipped so far: "
            f"{dict(self.stats)}); check the source and the crop sizes."
        )

    def _try(self, rng: np.random.Generator) -> dict[str, Any] | None:
        record_index = int(rng.integers(len(self.source)))
        task = self._tasks[int(rng.choice(len(self._tasks), p=self._task_p))]
        # A record that cannot be read or unified is counted by reason and another is drawn ("ok" counts the
        # records that could, so the skipped fraction of a run is known).
        try:
            record = self.source[record_index]
            if get_task(task).num_images > 1:
                row = self._two_view_row(task, record, rng)
            else:
                row = self._point_row(record, task, rng)
        except InvalidRecordError as err:
            self.stats[err.reason] += 1
            return None
        except UnifiedImageTooLargeError:
            self.stats["unified_too_large"] += 1
            return None
        self.stats["ok"] += 1
        return row

    def _point_row(self, record: Mapping[str, Any], task: str, rng: np.random.Generator) -> dict[str, Any] | None:
        intr = self._jittered(CameraIntrinsics.from_list(record["intrinsics"]), rng)
        window = self._window(intr, rng)
        candidates = self._fitting(record["pixel_coords"], intr, window)
        locate = lambda pts: self.processor.map_queries(intr, pts, window).points  # noqa: E731
        sample = build_sample(task, record, rng, candidates, self.config.ranges, locate)
        if sample is None:
            self.stats["no_point_in_crop"] += 1
            return None
        return self._row(record["image"], intr, sample, window)

    def _jittered(self, intr: CameraIntrinsics, rng: np.random.Generator) -> CameraIntrinsics:
        if self.config.aspect_jitter is None:
            return intr
        # Claiming fy / s makes the focal unification stretch the height by s more than the truth.
        scale = float(rng.uniform(*self.config.aspect_jitter))
        return CameraIntrinsics(intr.fx, intr.fy / scale, intr.cx, intr.cy, intr.width, intr.height)

    def _crop_size(self, rng: np.random.Generator) -> tuple[int, int]:
        (w0, w1), (h0, h1) = self.config.crop_width, self.config.crop_height
        return int(rng.integers(w0, w1 + 1)), int(rng.integers(h0, h1 + 1))

    def _window(
        self, intr: CameraIntrinsics, rng: np.random.Generator, size: tuple[int, int] | None = None
    ) -> tuple[int, int, int, int] | None:
        """The crop `(left, top, width, height)` in the unified image, or None without cropping."""
        if not self.config.crop:
            return None
        transform = self.processor.focal_transform(intr)
        width, height = size if size is not None else self._crop_size(rng)
        width, height = min(width, transform.out_width), min(height, transform.out_height)
        if self.config.crop_position == "center":
            return centered_crop_window(transform.map_intrinsics(intr), width, height)
        # Anywhere, as long as the principal point stays inside the crop (intrinsics need cx, cy > 0).
        unified = transform.map_intrinsics(intr)
        left = _random_offset(rng, unified.cx, width, transform.out_width)
        top = _random_offset(rng, unified.cy, height, transform.out_height)
        return left, top, width, height

    def _fitting(
        self, coords: np.ndarray, intr: CameraIntrinsics, window: tuple[int, int, int, int] | None
    ) -> np.ndarray:
        """Indices of the pixels (N, 2) whose marker fits in the (cropped) model image."""
        return np.flatnonzero(self.processor.markable(intr, coords, crop=window))

    def _row(self, image: Any, intr: CameraIntrinsics, sample: TaskSample, window) -> dict[str, Any]:
        if self.row_format == "sft":  # the target and task ride along for generation metrics; collators ignore them
            row = self.processor.training_row(
                image, intr, sample.points, sample.value, task=sample.task, crop=window, **sample.fields
            )
            return {**row, "depth": sample.value, "task": sample.task}
        prepared = self.processor.prepare(image, intr, sample.points, crop=window)
        return {
            "images": [prepared.image],
            "prompt": self.processor.task_messages(sample.task, **sample.fields),
            "depth": sample.value,
            "task": sample.task,
        }

    def _two_view_row(self, task: str, record: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any] | None:
        sample = build_sample(task, record, rng)
        if sample is None:
            self.stats["no_second_view"] += 1
            return None
        size = self._crop_size(rng)  # one crop size for both views
        images = two_view_images(self.processor, record, lambda camera: self._window(camera, rng, size))
        # Every task's rows carry the same columns (the trainers' datasets select them by name).
        row: dict[str, Any] = {"images": images, "prompt": self.processor.task_messages(task)}
        if self.row_format == "sft":
            row["completion"] = self.processor.completion_messages(sample.value, task)
        return {**row, "depth": sample.value, "task": task}


def _random_offset(rng: np.random.Generator, centre: float, size: int, full: int) -> int:
    """A crop start in [0, full - size] whose window [start, start + size - 1] has `centre` inside."""
    lo = max(0, math.floor(centre) - size + 2)
    hi = min(full - size, math.ceil(centre) - 1)
    return int(rng.integers(lo, hi + 1)) if lo <= hi else min(max(0, round(centre - size / 2)), full - size)


class MixtureView(_View):
    """Rows drawn from several views with probabilities proportional to `weights`.

    Paper: equal weights, Matterport3D 0.1 (the default for named views, see :func:`mixture_weights`).

    Row `i` picks view `k` with a generator seeded by `(seed, i)` and returns `views[k].sample(i)`.
    """

    def __init__(
        self,
        views: Sequence[_View] | Mapping[str, _View],
        weights: Sequence[float] | None = None,
        seed: int = 0,
        num_samples: int | None = None,
    ) -> None:
        self.names = list(views) if isinstance(views, Mapping) else [str(i) for i in range(len(views))]
        self.views = list(views.values()) if isinstance(views, Mapping) else list(views)
        if not self.views:
            raise ValueError("`views` is empty.")
        if weights is None:
            weights = mixture_weights(self.names) if isinstance(views, Mapping) else [1.0] * len(self.views)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.views),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"`weights` must be {len(self.views)} values >= 0 with a positive sum, got {list(weights)!r}."
            )
        self.probabilities = w / w.sum()
        self.seed, self.num_samples = int(seed), num_samples

    def choose(self, index: int) -> int:
        """Which view row `index` comes from."""
        return int(_rng(self.seed, index, 1).choice(len(self.views), p=self.probabilities))

    def sample(self, index: int) -> dict[str, Any]:
        return self.views[self.choose(index)].sample(index)
