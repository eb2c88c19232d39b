"""GroupedTrainingView: one decode and unification per group of rows, rows a pure function of (seed, index),
the same images as TrainingView's one-call path (to one intensity level), whole groups per shard."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from depthlm_hf.data import GroupedMixtureView, GroupedTrainingView, TrainingViewConfig
from depthlm_hf.data import grouped as grouped_module
from depthlm_hf.data.synthetic.scenes import SyntheticDataset

ALL_TASKS = ["distance", "z_distance", "speed", "time", "two_point_distance", "translation"]


class Counting(list):
    """A list source that counts record reads."""

    reads = 0

    def __getitem__(self, index):
        self.reads += 1
        return super().__getitem__(index)


def config(**kwargs) -> TrainingViewConfig:
    return TrainingViewConfig(**{"crop_width": (40, 70), "crop_height": (30, 50), **kwargs})


def fingerprint(row: dict) -> tuple:
    return tuple(np.asarray(image).tobytes() for image in row["images"]) + (
        repr(row["prompt"]),
        repr(row["completion"]),
    )


def test_one_read_and_one_unification_per_group(source, processor, monkeypatch):
    records = Counting(source[i] for i in range(len(source)))
    view = GroupedTrainingView(records, processor, config(), seed=5, rows_per_image=4)
    unifications = []
    original = type(processor).prepare

    def prepare(image, intrinsics, points, crop=None):
        unifications.append(points)
        return original(processor, image, intrinsics, points, crop=crop)

    monkeypatch.setattr(processor, "prepare", prepare)
    records.reads = 0
    rows = [view[i] for i in range(12)]
    assert records.reads == 3 and len(unifications) == 3 and all(p is None for p in unifications)
    assert len({row["images"][0].size for row in rows}) > 3  # each row draws its own crop


def test_rows_are_a_pure_function_of_seed_and_index(source, processor):
    first = GroupedTrainingView(
        source, processor, config(tasks=dict.fromkeys(ALL_TASKS, 1.0)), seed=7, rows_per_image=3
    )
    again = GroupedTrainingView(
        source, processor, config(tasks=dict.fromkeys(ALL_TASKS, 1.0)), seed=7, rows_per_image=3
    )
    forward = [fingerprint(first[i]) for i in range(15)]
    assert [fingerprint(again[i]) for i in reversed(range(15))] == forward[::-1]
    other = GroupedTrainingView(
        source, processor, config(tasks=dict.fromkeys(ALL_TASKS, 1.0)), seed=8, rows_per_image=3
    )
    assert [fingerprint(other[i]) for i in range(15)] != forward


def test_rows_of_a_group_share_the_record_and_match_the_one_call_path(source, processor, monkeypatch):
    view = GroupedTrainingView(source, processor, config(aspect_jitter=(0.8, 1.0)), seed=1, rows_per_image=4)
    drawn = []
    windows = []
    real_build, real_window = grouped_module.build_sample, view._window

    def build_sample(*args, **kwargs):
        drawn.append(real_build(*args, **kwargs))
        return drawn[-1]

    def window(*args, **kwargs):
        windows.append(real_window(*args, **kwargs))
        return windows[-1]

    monkeypatch.setattr(grouped_module, "build_sample", build_sample)
    monkeypatch.setattr(view, "_window", window)
    for group in range(3):
        unified = view.unified(group)
        for index in range(4 * group, 4 * group + 4):
            row = view[index]
            sample, crop = drawn[-1], windows[-1]
            depth = unified.record["depth"][sample.point_indices[0]]
            assert row["completion"] == processor.completion_messages(depth)
            one_call = processor.prepare(unified.record["image"], unified.intrinsics, sample.points, crop=crop).image
            got, want = np.asarray(row["images"][0], dtype=int), np.asarray(one_call, dtype=int)
            assert got.shape == want.shape
            assert np.abs(got - want).max() <= 1 and (got != want).mean() < 0.01


def test_shards_hold_whole_groups_and_cover_every_row(source, processor):
    view = GroupedTrainingView(source, processor, config(), seed=0, num_samples=10, rows_per_image=3)
    shards = [list(view.indices(shard, 2)) for shard in range(2)]
    assert shards == [[0, 1, 2, 6, 7, 8], [3, 4, 5, 9]]
    rows = list(view.to_iterable_dataset(num_shards=2))
    assert sorted(fingerprint(r) for r in rows) == sorted(fingerprint(view[i]) for i in range(10))


def test_grpo_rows_all_tasks_and_cache_bound(processor):
    source = SyntheticDataset(
        "indoor", num_scenes=6, num_points=40, seed=4, width=(96, 128), height=(72, 96), two_view=True
    )
    view = GroupedTrainingView(
        source, processor, config(tasks=dict.fromkeys(ALL_TASKS, 1.0)), seed=2, rows_per_image=2, row_format="grpo"
    )
    rows = [view[i] for i in range(24)]
    assert {row["task"] for row in rows} == set(ALL_TASKS)
    assert all(len(row["images"]) == (2 if row["task"] == "translation" else 1) for row in rows)
    assert all(set(row) == {"images", "prompt", "depth", "task"} for row in rows)
    assert len(view._cache) == view.cache_size


def test_bad_arguments_name_themselves(source, processor):
    with pytest.raises(ValueError, match="`rows_per_image`"):
        GroupedTrainingView(source, processor, rows_per_image=0)
    with pytest.raises(ValueError, match="`cache_size`"):
        GroupedTrainingView(source, processor, cache_size=0)


def test_mixture_picks_one_view_per_group_so_each_image_is_decoded_once(source, processor):
    sources = [Counting(source[i] for i in range(6)), Counting(source[i] for i in range(6, 12))]
    views = [GroupedTrainingView(s, processor, config(), seed=9, rows_per_image=4) for s in sources]
    mixture = GroupedMixtureView(views, seed=9, rows_per_image=4)
    picks = [mixture.choose(i) for i in range(24)]
    assert all(len(set(picks[g : g + 4])) == 1 for g in range(0, 24, 4)) and len(set(picks)) == 2
    for s in sources:
        s.reads = 0
    rows = [mixture[i] for i in range(24)]
    assert sum(s.reads for s in sources) == 6 and len(rows) == 24
    assert list(itertools.islice(mixture.indices(1, 2), 5)) == [4, 5, 6, 7, 12]
    with pytest.raises(ValueError, match="`views`"):
        GroupedMixtureView(views, rows_per_image=2)
