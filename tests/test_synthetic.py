"""Synthetic scenes: rendered depth equals the analytic ray-surface distance; records, pairs, determinism."""

import math
from dataclasses import replace

import numpy as np
import pytest

from depthlm_hf.data.synthetic.scenes import (
    SCENE_PRESETS,
    Camera,
    Layout,
    SyntheticDataset,
    look_rotation,
    render,
    render_pair,
    render_scene,
    synthetic_record,
)
from depthlm_hf.geometry import CameraIntrinsics, backproject, euclidean_to_z, pixel_rays

CAM = CameraIntrinsics(200.0, 180.0, 111.5, 83.5, 224, 168)


def pixel_grid(intr):
    ys, xs = np.mgrid[0 : intr.height, 0 : intr.width]
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def test_ground_plane_depth_is_the_analytic_ray_plane_distance():
    # Level camera h metres above the ground: a pixel below the horizon meets it at Z = h * fy / (y - cy).
    h = 1.5
    view = render(Layout(sky=True), Camera(CAM, look_rotation(0.0, 0.0), np.array([0.0, h, 0.0])))
    pts = pixel_grid(CAM)
    below = pts[:, 1] > CAM.cy
    z = h * CAM.fy / (pts[below, 1] - CAM.cy)
    expected = z * np.sqrt(((pts[below, 0] - CAM.cx) / CAM.fx) ** 2 + ((pts[below, 1] - CAM.cy) / CAM.fy) ** 2 + 1)
    np.testing.assert_allclose(view.depth.ravel()[below], expected, rtol=1e-12)
    np.testing.assert_allclose(view.z_depth.ravel()[below], z, rtol=1e-12)
    assert np.isinf(view.depth.ravel()[~below]).all() and not view.valid.ravel()[~below].any()


def test_tilted_ground_matches_backprojected_points():
    camera = Camera(CAM, look_rotation(15.0, 20.0), np.array([0.3, 1.2, -0.4]))
    view = render(Layout(sky=True), camera)
    pts = pixel_grid(CAM)
    hit = np.isfinite(view.depth.ravel())
    world = backproject(pts[hit], view.depth.ravel()[hit], CAM) @ camera.rotation.T + camera.position
    np.testing.assert_allclose(world[:, 1], 0.0, atol=1e-9)  # every hit lies on the ground plane Y = 0


def test_box_front_face_and_sphere_distances_are_exact():
    camera = Camera(CAM, look_rotation(0.0, 0.0), np.array([0.0, 1.0, 0.0]))
    box = Layout(boxes=np.array([[-1.0, 0.0, 4.0, 1.0, 2.0, 5.0]]), box_colors=np.ones((1, 3)))
    view = render(box, camera)
    pts = pixel_grid(CAM)
    rays = pixel_rays(pts, CAM)
    # Front face Z = 4 between X in [-1, 1] and world Y in [0, 2] (camera y down, centre at Y = 1).
    on_face = (np.abs(rays[:, 0] * 4) < 0.99) & (np.abs(rays[:, 1] * 4) < 0.99)
    np.testing.assert_allclose(view.z_depth.ravel()[on_face], 4.0, rtol=1e-12)
    np.testing.assert_allclose(view.depth.ravel()[on_face], 4.0 * np.linalg.norm(rays[on_face], axis=1), rtol=1e-12)

    centre = np.array([0.5, 1.2, 6.0])
    sphere = Layout(spheres=np.array([[*centre, 0.8]]), sphere_colors=np.ones((1, 3)))
    view = render(sphere, camera)
    local = centre - camera.position  # camera frame = world frame with y flipped
    x, y = CAM.fx * local[0] / local[2] + CAM.cx, CAM.fy * -local[1] / local[2] + CAM.cy
    # Ray through the projected centre passes through the sphere centre: distance = |c - o| - r.
    col, row = int(round(x)), int(round(y))
    ray = pixel_rays([[col, row]], CAM)[0]
    ray_w = camera.rotation @ (ray / np.linalg.norm(ray))
    oc = centre - camera.position
    b = ray_w @ oc
    expected = b - math.sqrt(b * b - (oc @ oc - 0.8**2))
    assert view.depth[row, col] == pytest.approx(expected, rel=1e-12)
    assert abs(view.depth[int(y), int(x)] - (np.linalg.norm(oc) - 0.8)) < 0.01


def test_room_back_wall_distance():
    camera = Camera(CAM, look_rotation(0.0, 0.0), np.array([0.0, 1.5, 0.0]))
    view = render(Layout(room=(-3.0, 3.0, 3.0, -1.0, 6.0)), camera)
    assert view.z_depth[84, 112] == pytest.approx(6.0, rel=1e-12)
    assert view.valid.all()


@pytest.mark.parametrize("preset", ["indoor", "outdoor", "ground"])
def test_records_label_the_depth_map_and_respect_the_range(preset):
    cfg = SCENE_PRESETS[preset]
    rec = synthetic_record(preset, seed=3, num_points=50)
    view = render_scene(preset, seed=np.random.default_rng(3))
    xy = rec["pixel_coords"]
    np.testing.assert_array_equal(rec["depth"], view.depth[xy[:, 1], xy[:, 0]])
    intr = CameraIntrinsics.from_list(rec["intrinsics"])
    np.testing.assert_allclose(rec["z_depth"], euclidean_to_z(xy, rec["depth"], intr), rtol=1e-12)
    assert rec["depth"].min() >= cfg.depth_range[0] and rec["depth"].max() <= cfg.depth_range[1]
    assert rec["image"].size == (intr.width, intr.height) and len(np.unique(xy, axis=0)) == len(xy)


def test_random_cameras_follow_the_config():
    cfg = replace(SCENE_PRESETS["indoor"], width=(100, 120), height=(80, 90), focal=(300.0, 1500.0))
    sizes = [render_scene(cfg, s).camera.intrinsics for s in range(20)]
    assert all(100 <= c.width <= 120 and 80 <= c.height <= 90 and 300 <= c.fx <= 1500 for c in sizes)
    assert len({c.fx for c in sizes}) == 20


def test_pairs_have_a_known_motion_consistent_with_both_depth_maps():
    v1, v2 = render_pair("ground", seed=5)
    rotation, translation = v1.camera.relative_pose(v2.camera)
    assert np.linalg.norm(translation) == pytest.approx(np.linalg.norm(v1.camera.position - v2.camera.position))
    cfg = SCENE_PRESETS["ground"]
    assert cfg.motion[0] <= np.linalg.norm(translation) <= cfg.motion[1]
    intr = v1.camera.intrinsics
    pts = pixel_grid(intr)[::37]
    hit = v1.valid.ravel()[::37] & (v1.depth.ravel()[::37] < 8)
    p2 = backproject(pts[hit], v1.depth.ravel()[::37][hit], intr) @ rotation.T + translation
    u = intr.fx * p2[:, 0] / p2[:, 2] + intr.cx
    v = intr.fy * p2[:, 1] / p2[:, 2] + intr.cy
    inside = (p2[:, 2] > 0) & (u > 1) & (u < intr.width - 2) & (v > 1) & (v < intr.height - 2)
    assert inside.sum() > 20
    seen = v2.depth[np.rint(v[inside]).astype(int), np.rint(u[inside]).astype(int)]
    # Ground is smooth: the nearest pixel's distance is within a few percent of the exact one.
    np.testing.assert_allclose(seen, np.linalg.norm(p2[inside], axis=1), rtol=0.05)


def test_two_view_records_carry_the_pose():
    rec = synthetic_record("indoor", seed=2, num_points=10, two_view=True)
    assert rec["rotation"].shape == (3, 3) and rec["translation"].shape == (3,)
    np.testing.assert_allclose(rec["rotation"] @ rec["rotation"].T, np.eye(3), atol=1e-12)
    assert rec["image2"].size == rec["image"].size and rec["intrinsics2"] == rec["intrinsics"]


def test_dataset_is_deterministic_and_lazy():
    a, b = SyntheticDataset("indoor", num_scenes=5, seed=1), SyntheticDataset("indoor", num_scenes=5, seed=1)
    assert np.array_equal(np.asarray(a[3]["image"]), np.asarray(b[3]["image"]))
    assert a[3]["depth"].tolist() == b[3]["depth"].tolist() and a[3]["index"] == 3
    assert not np.array_equal(a[2]["depth"][:5], a[3]["depth"][:5])
    assert SyntheticDataset("indoor", num_scenes=5, seed=2)[3]["scene"] != a[3]["scene"]
    assert len(list(a)) == 5
    with pytest.raises(IndexError):
        a[5]
    assert SyntheticDataset("ground", num_scenes=1, width=(64, 64), height=(48, 48))[0]["image"].size == (
        64,
        48,
    )


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Available: indoor, outdoor, ground"):
        render_scene("moon")


def test_horizon_option_places_the_horizon_row():
    cfg = replace(SCENE_PRESETS["ground"], horizon=(0.25, 0.25))
    view = render_scene(cfg, 0)
    sky_rows = np.flatnonzero(np.isinf(view.depth).all(axis=1))
    assert sky_rows.max() == 41  # rows 0..41 see the sky: the horizon is at 168 * 0.25 - 0.5 = 41.5
    assert np.isfinite(view.depth[42]).all()
