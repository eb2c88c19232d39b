"""Camera geometry: focal unification, crops and back-projection keep every pixel's 3D point."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depthlm_hf.geometry import (
    CameraIntrinsics,
    backproject,
    centered_crop_window,
    crop_transform,
    euclidean_to_z,
    point_to_point_distance,
    release_focal_resize,
    unify_focal_length,
    z_to_euclidean,
)

IBIMS = CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)


def test_ibims_camera_at_focal_1000_exact_size_and_pixel():
    t = unify_focal_length(IBIMS, 1000.0)
    assert (t.out_width, t.out_height) == (1143, 859)  # floor(640 * 1000 / 559.62), floor(480 * 1000 / 558.14)
    # x' = s (x + 0.5) - 0.5 with s = 1000 / 559.62: 927.806..., y' = 1000 / 558.14 * 129.5 - 0.5 = 231.520...
    x, y = t.map_points([[519, 129]])[0]
    assert x == pytest.approx(1000 / 559.62 * 519.5 - 0.5, abs=1e-12)
    assert y == pytest.approx(1000 / 558.14 * 129.5 - 0.5, abs=1e-12)
    assert np.rint([x, y]).astype(int).tolist() == [928, 232]
    new = t.map_intrinsics(IBIMS)
    assert new.fx == pytest.approx(1000.0, abs=1e-9) and new.fy == pytest.approx(1000.0, abs=1e-9)


def test_official_fx_mode_leaves_fy_off():
    new = unify_focal_length(IBIMS, 750.0, mode="fx").map_intrinsics(IBIMS)
    assert new.fx == pytest.approx(750.0)
    assert new.fy == pytest.approx(558.14 * 750.0 / 559.62)


cameras = st.builds(
    lambda fx, ratio, cxr, cyr, w, h: CameraIntrinsics(fx, fx * ratio, cxr * w, cyr * h, w, h),
    st.floats(100, 3000),
    st.floats(0.8, 1.25),
    st.floats(0.2, 0.8),
    st.floats(0.2, 0.8),
    st.integers(64, 2000),
    st.integers(64, 2000),
)


@settings(max_examples=200, deadline=None)
@given(cameras, st.floats(200, 2000), st.floats(0.01, 0.99), st.floats(0.01, 0.99), st.floats(0.1, 100.0))
def test_unify_and_crop_keep_3d_points(camera, focal, u, v, distance):
    point = [[u * (camera.width - 1), v * (camera.height - 1)]]
    before = backproject(point, [distance], camera)
    t = unify_focal_length(camera, focal, max_pixels=10**12)  # a transform allocates nothing; the bound is tested below
    unified = t.map_intrinsics(camera)
    assert math.isclose(unified.fx, focal, rel_tol=1e-12) and math.isclose(unified.fy, focal, rel_tol=1e-12)
    left, top, w, h = centered_crop_window(unified, max(1, t.out_width // 2), max(1, t.out_height // 2))
    t = t.then(crop_transform(t.out_width, t.out_height, left, top, w, h))
    after = backproject(t.map_points(point), [distance], t.map_intrinsics(camera))
    assert np.linalg.norm(after - before) <= 1e-6 * np.linalg.norm(before)
    np.testing.assert_allclose(t.unmap_points(t.map_points(point)), point, rtol=0, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(cameras, st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 500.0))
def test_euclidean_z_round_trip(camera, u, v, distance):
    point = [[u * (camera.width - 1), v * (camera.height - 1)]]
    z = euclidean_to_z(point, [distance], camera)
    assert z[0] <= distance
    assert z_to_euclidean(point, z, camera)[0] == pytest.approx(distance, rel=1e-12)
    assert backproject(point, z, camera, kind="z")[0] == pytest.approx(backproject(point, [distance], camera)[0])


def test_two_point_distance_is_the_3d_distance():
    cam = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)
    # (820, 240) lies on the ray (1, 0, 1): at Euclidean distance sqrt(2) it is the point (1, 0, 1).
    assert point_to_point_distance([[320, 240], [820 - 1e-9, 240]], [1.0, math.sqrt(2)], cam) == pytest.approx(1.0)


def test_centered_crop_is_centred_on_principal_point_and_clipped():
    cam = CameraIntrinsics(1000, 1000, 599.5, 399.5, 1200, 800)
    assert centered_crop_window(cam, 1000, 700) == (100, 50, 1000, 700)
    assert centered_crop_window(cam, 1400, 900) == (0, 0, 1200, 800)
    off = CameraIntrinsics(1000, 1000, 100.0, 100.0, 1200, 800)
    assert centered_crop_window(off, 1000, 700) == (0, 0, 1000, 700)


@pytest.mark.parametrize(
    "values, message",
    [
        ([0.0, 500, 320, 240, 640, 480], "`fx` must be finite and > 0"),
        ([500, -1, 320, 240, 640, 480], "`fy` must be finite and > 0"),
        ([500, 500, float("nan"), 240, 640, 480], "`cx` must be finite and > 0"),
        ([500, 500, 320, float("inf"), 640, 480], "`cy` must be finite and > 0"),
        ([500, 500, 0.0, 240, 640, 480], "`cx` must be finite and > 0"),
        ([500, 500, 320, 240, 640.5, 480], "`width` must be a positive integer"),
        ([500, 500, 320, 240, 640], "must have 6 values"),
    ],
)
def test_bad_intrinsics_name_the_argument(values, message):
    with pytest.raises(ValueError, match=message):
        CameraIntrinsics.from_list(values)


def test_bad_types_and_crop_windows():
    with pytest.raises(TypeError, match="`fx` must be a real number"):
        CameraIntrinsics("500", 500, 320, 240, 640, 480)
    with pytest.raises(TypeError, match="`intrinsics` must be"):
        CameraIntrinsics.from_list("500 500 320 240 640 480")
    with pytest.raises(ValueError, match="must lie inside the 100x80 image"):
        crop_transform(100, 80, 60, 0, 50, 40)
    with pytest.raises(ValueError, match="`mode` must be one of"):
        unify_focal_length(IBIMS, 1000.0, mode="yx")
    with pytest.raises(ValueError, match="`distance` has 1 values for 2 points"):
        backproject([[0, 0], [1, 1]], [1.0], IBIMS)


def test_a_unified_image_over_the_pixel_limit_is_refused_naming_the_intrinsics():
    camera = CameraIntrinsics(1e-3, 1e-3, 320.0, 240.0, 640, 480)
    with pytest.raises(
        ValueError, match=r"`intrinsics` \[0.001, 0.001, 320.0, 240.0, 640, 480\] .* 6.4e\+08 x 4.8e\+08 px"
    ):
        unify_focal_length(camera, 1000.0)
    limit = unify_focal_length(CameraIntrinsics(100.0, 100.0, 320.0, 240.0, 640, 480), 1000.0)  # 6400 x 4800
    assert (limit.out_width, limit.out_height) == (6400, 4800)
    with pytest.raises(ValueError, match="more than `max_pixels` = 30000000"):
        unify_focal_length(CameraIntrinsics(100.0, 100.0, 320.0, 240.0, 640, 480), 1000.0, max_pixels=30_000_000)
    with pytest.raises(ValueError, match=r"`intrinsics` \[0.001, .* 6.4e\+08 x 4.8e\+08 px"):
        release_focal_resize(camera, 1000.0)
    huge = CameraIntrinsics(1e-300, 1e-300, 1.0, 1.0, 640, 480)  # overflows to inf: still refused, not an OverflowError
    with pytest.raises(ValueError, match="unified image"):
        unify_focal_length(huge, 1000.0)
