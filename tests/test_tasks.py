"""The six tasks: labels on synthetic scenes agree with the scene geometry; the registry is the one list of tasks."""

from dataclasses import replace
from typing import get_args

import numpy as np
import pytest

from depthlm_hf.data.synthetic.scenes import render_pair, render_scene, synthetic_record
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.tasks.samples import TaskRanges, build_sample
from depthlm_hf.tasks.text import DEFAULT_TASK, TASK_NAMES, TASKS, TaskName, get_task, question


def world_point(view, xy):
    """The scene point seen at pixel xy: camera centre + distance * unit world ray."""
    intr = view.camera.intrinsics
    ray = np.array([(xy[0] - intr.cx) / intr.fx, (xy[1] - intr.cy) / intr.fy, 1.0])
    ray = view.camera.rotation @ (ray / np.linalg.norm(ray))
    return view.camera.position + view.depth[int(xy[1]), int(xy[0])] * ray


@pytest.mark.parametrize("seed", range(5))
def test_two_point_distance_is_the_distance_between_scene_points(seed):
    rec = synthetic_record("indoor", seed=seed, num_points=20)
    view = render_scene("indoor", np.random.default_rng(seed))
    sample = build_sample("two_point_distance", rec, np.random.default_rng(seed))
    p1, p2 = (world_point(view, xy) for xy in sample.points)
    assert sample.value == pytest.approx(np.linalg.norm(p1 - p2), rel=1e-9)
    assert len(set(sample.point_indices)) == 2 and sample.num_images == 1


@pytest.mark.parametrize("seed", range(5))
def test_translation_is_the_camera_displacement(seed):
    rec = synthetic_record("outdoor", seed=seed, num_points=5, two_view=True)
    v1, v2 = render_pair("outdoor", np.random.default_rng(seed))
    sample = build_sample("translation", rec, np.random.default_rng(0))
    assert sample.value == pytest.approx(np.linalg.norm(v1.camera.position - v2.camera.position), rel=1e-12)
    assert sample.num_images == 2 and sample.points.shape == (0, 2)


def test_time_speed_distance_and_z_labels():
    rec = synthetic_record("indoor", seed=11, num_points=30)
    view = render_scene("indoor", np.random.default_rng(11))
    ranges = TaskRanges(time=(2.0, 3.0), speed=(1.0, 1.5))
    for seed in range(10):
        t = build_sample("time", rec, np.random.default_rng(seed), ranges=ranges)
        s = build_sample("speed", rec, np.random.default_rng(seed), ranges=ranges)
        d = build_sample("distance", rec, np.random.default_rng(seed))
        z = build_sample("z_distance", rec, np.random.default_rng(seed))
        assert t.point_indices == s.point_indices == d.point_indices == z.point_indices
        assert 1.0 <= t.fields["speed"] <= 1.5 and round(t.fields["speed"], 2) == t.fields["speed"]
        assert t.value == pytest.approx(d.value / t.fields["speed"], rel=1e-12)
        assert s.value == pytest.approx(d.value / s.fields["time"], rel=1e-12)
        x, y = d.points[0].astype(int)
        assert d.value == view.depth[y, x]
        assert z.value == pytest.approx(view.z_depth[y, x], rel=1e-12)
        assert question(t.task, **t.fields).endswith(f"{t.fields['speed']:.2f} meters per second?")


def test_z_label_from_geometry_when_the_record_has_no_z():
    rec = synthetic_record("ground", seed=0, num_points=10)
    without = {k: v for k, v in rec.items() if k != "z_depth"}
    a = build_sample("z_distance", rec, np.random.default_rng(1))
    b = build_sample("z_distance", without, np.random.default_rng(1))
    assert b.value == pytest.approx(a.value, rel=1e-12)


def test_candidates_restrict_the_marked_pixels_and_too_few_give_none():
    rec = synthetic_record("indoor", seed=1, num_points=20)
    for seed in range(20):
        assert build_sample("distance", rec, np.random.default_rng(seed), candidates=[3, 7]).point_indices[0] in (3, 7)
    assert build_sample("two_point_distance", rec, np.random.default_rng(0), candidates=[3]) is None
    assert build_sample("translation", rec, np.random.default_rng(0)) is None


def test_every_task_is_buildable_and_unknown_ones_are_refused():
    rec = synthetic_record("indoor", seed=4, num_points=10, two_view=True)
    for task in TASKS:
        sample = build_sample(task, rec, np.random.default_rng(0), locate=lambda pts: pts + [3, 5])
        assert (
            sample.task == task
            and sample.value > 0
            and len(sample.points) == TASKS[task].num_points * (TASKS[task].num_images == 1)
        )
    with pytest.raises(ValueError, match="Available: distance"):
        build_sample("depth", rec, np.random.default_rng(0))
    # "marker_row" is read in the model image: `locate` maps the record's pixel there, and it is needed.
    sample = build_sample("marker_row", rec, np.random.default_rng(0), locate=lambda pts: pts + [3, 5])
    assert sample.value == (sample.points[0][1] + 5) / 10  # tens of pixels
    with pytest.raises(ValueError, match="`LabelInputs.locate`"):
        build_sample("marker_row", rec, np.random.default_rng(0))
    assert CameraIntrinsics.from_list(rec["intrinsics"]).width == rec["image"].width


def test_the_task_names_literal_is_the_registry():
    assert TASK_NAMES == get_args(TaskName) == tuple(TASKS) and DEFAULT_TASK in TASK_NAMES
    assert all(task.name == name for name, task in TASKS.items())
    with pytest.raises(ValueError, match="Unknown task 'depth'. Available: " + ", ".join(TASK_NAMES)):
        get_task("depth")


def test_per_pixel_tasks_and_preset_prompts_follow_the_fields():
    """One question per pixel of one image with no question field: the tasks whose answers form a map."""
    assert [name for name, task in TASKS.items() if task.is_per_pixel()] == ["distance", "z_distance", "marker_row"]
    assert not replace(TASKS["distance"], num_points=2).is_per_pixel()
    assert not replace(TASKS["distance"], fields=("time",)).is_per_pixel()
    assert [name for name, task in TASKS.items() if task.preset_prompt] == ["distance"]
