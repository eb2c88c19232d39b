"""RGB-D converter: exact labels on an analytic plane, scaled integers, masks, ranges, determinism."""

import numpy as np
import pytest

from depthlm_hf.data.convert import decode_depth, rgbd_to_record, sample_pixels, valid_pixels
from depthlm_hf.geometry import CameraIntrinsics

CAM = CameraIntrinsics(120.0, 100.0, 40.3, 29.7, 80, 60)
RGB = np.zeros((60, 80, 3), np.uint8)


def plane_label(xy, z):
    return z * np.sqrt(((xy[:, 0] - CAM.cx) / CAM.fx) ** 2 + ((xy[:, 1] - CAM.cy) / CAM.fy) ** 2 + 1)


def test_fronto_parallel_plane_labels_are_exact():
    z = 3.7
    rec = rgbd_to_record(RGB, np.full((60, 80), z), CAM, num_points=100, seed=1)
    xy = rec["pixel_coords"]
    assert xy.shape == (100, 2) and xy.dtype == np.int64
    np.testing.assert_allclose(rec["depth"], plane_label(xy, z), rtol=1e-15)
    np.testing.assert_array_equal(rec["z_depth"], np.full(100, z))
    assert rec["intrinsics"] == CAM.to_list()


def test_range_input_is_kept_and_z_recovered():
    xy_all = np.stack(np.meshgrid(np.arange(80), np.arange(60)), -1).reshape(-1, 2)
    ranges = plane_label(xy_all, 2.0).reshape(60, 80)
    rec = rgbd_to_record(RGB, ranges, CAM, num_points=30, depth_kind="euclidean", seed=0)
    np.testing.assert_allclose(rec["z_depth"], 2.0, rtol=1e-12)
    np.testing.assert_array_equal(rec["depth"], ranges[rec["pixel_coords"][:, 1], rec["pixel_coords"][:, 0]])


def test_scaled_integer_depth_with_invalid_zeros_and_mask():
    depth = np.full((60, 80), 2500, np.uint16)  # millimetres
    depth[:, :40] = 0  # no reading
    mask = np.ones((60, 80), bool)
    mask[:30] = False
    rec = rgbd_to_record(RGB, depth, CAM, num_points=500, depth_scale=1000.0, valid_mask=mask, seed=0)
    xy = rec["pixel_coords"]
    assert len(xy) == 500 and (xy[:, 0] >= 40).all() and (xy[:, 1] >= 30).all()
    np.testing.assert_allclose(rec["depth"], plane_label(xy, 2.5), rtol=1e-12)


def test_fewer_valid_pixels_than_requested_gives_them_all():
    depth = np.full((60, 80), np.nan)
    depth[10, 20], depth[5, 7] = 1.0, 50.0
    rec = rgbd_to_record(RGB, depth, CAM, num_points=100, depth_range=(0.5, 10.0))
    assert rec["pixel_coords"].tolist() == [[20, 10]]


def test_sampling_is_deterministic_by_seed():
    depth = np.random.default_rng(0).uniform(1, 5, (60, 80))
    a = rgbd_to_record(RGB, depth, CAM, seed=7)["pixel_coords"]
    b = rgbd_to_record(RGB, depth, CAM, seed=7)["pixel_coords"]
    c = rgbd_to_record(RGB, depth, CAM, seed=8)["pixel_coords"]
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_border_keeps_room_for_markers():
    valid = valid_pixels(np.ones((60, 80)), border=6)
    xy = sample_pixels(valid, 4800, np.random.default_rng(0))
    assert xy[:, 0].min() == 6 and xy[:, 0].max() == 73 and xy[:, 1].min() == 6 and xy[:, 1].max() == 53


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="`depth_kind`"):
        rgbd_to_record(RGB, np.ones((60, 80)), CAM, depth_kind="disparity")
    with pytest.raises(ValueError, match="intrinsics describe"):
        rgbd_to_record(RGB, np.ones((30, 80)), CAM)
    with pytest.raises(ValueError, match="`image` is 80x60"):
        rgbd_to_record(RGB, np.ones((60, 80)), CameraIntrinsics(1, 1, 1, 1, 8, 6))
    with pytest.raises(ValueError, match="`depth_scale`"):
        decode_depth(np.ones((2, 2)), 0)
    with pytest.raises(ValueError, match="`num_points`"):
        sample_pixels(np.ones((2, 2), bool), 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="`valid_mask`"):
        valid_pixels(np.ones((2, 2)), np.ones((3, 3)))
