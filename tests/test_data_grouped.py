"""GroupedTrainingView: one decode and unification per group of rows, rows a pure function of (seed, index),
the same images as TrainingView's one-call path (to one intensity level), whole groups per shard."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.data import GroupedMixtureView, GroupedTrainingView, TrainingViewConfig
from depthlm_hf.data import grouped as grouped_module
from depthlm_hf.data.synthetic.scenes import SyntheticDataset
from depthlm_hf.models.tiny import tiny_processor
from depthlm_hf.prompting.presets import PRESETS

ALL_TASKS = ["distance", "z_distance", "speed", "time", "two_point_distance", "translation"]


class Counting(list):
    """A list source that counts record reads."""

    reads = 0

    def __getitem__(self, index):
        self.reads += 1
        return super().__getitem__(index)


def preset_processor(preset: str):
    """The tiny processor with the settings of `PRESETS[preset]` (its wrapped class stays the tiny Qwen one)."""
    settings = {key: value for key, value in PRESETS[preset].items() if key != "base_processor_class"}
    return tiny_processor(**{**settings, "preset": preset})


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


@pytest.mark.parametrize("preset", list(PRESETS))
def test_rows_of_a_group_share_the_record_and_match_the_one_call_path(source, preset, monkeypatch):
    processor = preset_processor(preset)
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


IBIMS1 = [559.62, 558.14, 361.87, 241.99, 640, 480]
"""iBims-1's camera `[fx, fy, cx, cy, width, height]` [px] (its README and jsonl)."""
GREY = (90, 90, 90)


def marker_mask(image: Image.Image) -> np.ndarray:
    """(H, W) bool: the pixels a marker painted on a uniform grey image (a resize of grey stays grey)."""
    return (np.abs(np.asarray(image, dtype=int) - GREY) > 2).any(axis=-1)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_grouped_and_plain_views_place_and_fit_markers_alike_near_the_border(preset):
    """Under every preset, for iBims-1 pixels at and near every border, with and without a crop: the grouped view
    keeps exactly the pixels whose marker fits for the plain view (`markable`), draws each at the processor's
    pixel (the same marker pixels as a one-call `prepare`), and refuses the others as the processor does."""
    processor = preset_processor(preset)
    record = {"image": Image.new("RGB", (640, 480), GREY), "intrinsics": IBIMS1, "pixel_coords": [], "depth": []}
    xs, ys = (0, 3, 5, 6, 7, 8, 9, 519, 630, 632, 633, 634, 635, 636, 639), (0, 2, 3, 4, 5, 6, 129, 474, 475, 476, 479)
    coords = np.array([(x, y) for x in xs for y in ys], dtype=np.float64)
    view = GroupedTrainingView([record], processor, config(), rows_per_image=2)
    unified = view.unified(0)
    size = (unified.image.width, unified.image.height)
    for window in (None, (7, 5, size[0] - 16, size[1] - 11)):  # a crop whose edges sit near the border points
        fits = processor.markable(IBIMS1, coords, crop=window)
        assert 0 < fits.sum() < len(coords)  # the border points test both verdicts
        np.testing.assert_array_equal(view._fitting(coords, unified.intrinsics, window), np.flatnonzero(fits))
        for point, fit in zip(coords, fits, strict=True):
            if not fit:
                with pytest.raises(ValueError, match="`points`"):
                    view.render(unified, point[None], window)
                continue
            grouped = view.render(unified, point[None], window)
            want = processor.map_queries(IBIMS1, point[None], crop=window)
            np.testing.assert_array_equal(grouped.points, want.points)
            assert grouped.transform == want.transform
            if point[0] in (6, 519, 633) and point[1] in (4, 129, 475):  # pixel work of the plain view for a few
                plain = processor.prepare(record["image"], IBIMS1, point[None], crop=window)
                np.testing.assert_array_equal(marker_mask(grouped.image), marker_mask(plain.image))


def test_official_pixtral_marks_the_release_pixel_in_the_grouped_view():
    """iBims-1 pixel (519, 129) at f* 750: the release's truncation puts the arrow's anchor at (695, 172), where the
    processor draws it; rounding the exact map would say (695, 173)."""
    processor = preset_processor("official_pixtral")
    record = {"image": Image.new("RGB", (640, 480), GREY), "intrinsics": IBIMS1, "pixel_coords": [], "depth": []}
    view = GroupedTrainingView([record], processor, config(), rows_per_image=2)
    unified = view.unified(0)
    np.testing.assert_array_equal(np.rint(unified.transform.map_points([[519, 129]])), [[695, 173]])
    grouped = view.render(unified, np.array([[519.0, 129.0]]), None)
    assert grouped.points.tolist() == [[695, 172]]
    painted = np.argwhere(marker_mask(grouped.image))[:, ::-1].tolist()  # (x, y)
    shaft = [[x, 172] for x in range(690, 695)]  # `size` 5 pixels left of the unpainted anchor
    assert all(pixel in painted for pixel in shaft) and [695, 172] not in painted and [694, 173] not in painted
