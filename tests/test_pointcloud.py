"""Point clouds: grid queries, back-projection of known distances, PLY round trip, dense depth maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from plyfile import PlyData

from depthlm_hf.geometry import CameraIntrinsics, backproject, z_to_euclidean
from depthlm_hf.inference.decoding import DepthPrediction
from depthlm_hf.inference.pointcloud import PointCloud, fill_holes, interpolate_grid, point_cloud, query_grid
from depthlm_hf.inference.predictor import DepthLMPredictor

W, H = 112, 84
CAMERA = CameraIntrinsics(90.0, 95.0, 55.3, 40.8, W, H)
PLANE_Z = 3.0


class PlanePredictor:
    """Answers the exact distance of a fronto-parallel plane at z = 3 m, and None for every 7th query."""

    def __init__(self, processor):
        self.processor = processor
        self.calls = []

    def predict(self, image, intrinsics, points, batch_size=None, progress=None):
        points = np.asarray(points)
        self.calls.append(points)
        distance = z_to_euclidean(points, np.full(len(points), PLANE_Z), intrinsics)
        values = [None if i % 7 == 3 else float(d) for i, d in enumerate(distance)]
        confidence = np.array([math.nan if v is None else 0.5 + 0.5 * (i % 2) for i, v in enumerate(values)])
        return DepthPrediction(values, confidence, [str(v) for v in values])


@pytest.fixture()
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8))


@pytest.fixture()
def cloud(tiny, image):
    return point_cloud(PlanePredictor(tiny[1]), image, CAMERA, num_points=60)


def test_points_equal_backprojection_of_known_distances(cloud, image):
    valid = cloud.valid
    assert (
        cloud.points.shape == (len(cloud.pixels), 3)
        and valid.sum() == len(cloud.pixels) - (np.arange(len(cloud.pixels)) % 7 == 3).sum()
    )
    expected = backproject(cloud.pixels[valid], cloud.distance[valid], CAMERA)
    np.testing.assert_allclose(cloud.points[valid], expected, rtol=1e-12)
    np.testing.assert_allclose(cloud.points[valid, 2], PLANE_Z, rtol=1e-12)
    assert np.isnan(cloud.points[~valid]).all() and np.isnan(cloud.confidence[~valid]).all()
    np.testing.assert_array_equal(cloud.colors, np.asarray(image)[cloud.pixels[:, 1], cloud.pixels[:, 0]])


def test_grid_avoids_pixels_whose_marker_cannot_fit(cloud, tiny):
    rows, cols = cloud.grid_shape
    assert rows * cols == len(cloud.pixels) and abs(rows * cols - 60) <= 12
    processor = tiny[1]
    processor.prepare(Image.new("RGB", (W, H)), CAMERA, cloud.pixels)  # raises if a marker does not fit


def test_ply_reopens_with_the_valid_point_count(cloud, tmp_path):
    count = cloud.save_ply(tmp_path / "cloud.ply")
    ply = PlyData.read(str(tmp_path / "cloud.ply"))
    vertex = ply["vertex"]
    assert count == vertex.count == int(cloud.valid.sum())
    assert {p.name for p in vertex.properties} == {"x", "y", "z", "red", "green", "blue", "confidence"}
    np.testing.assert_allclose(vertex["z"], PLANE_Z, rtol=1e-6)
    np.testing.assert_array_equal(vertex["red"], cloud.colors[cloud.valid, 0])
    assert cloud.save_ply(tmp_path / "confident.ply", min_confidence=0.9) == int((cloud.confidence >= 0.9).sum())


def test_dense_depth_map_of_a_plane(cloud):
    z = cloud.depth_map("z")
    assert z.shape == (H, W)
    np.testing.assert_allclose(z, PLANE_Z, rtol=1e-12)
    dist = cloud.depth_map("euclidean")
    ok = cloud.valid
    np.testing.assert_allclose(dist[cloud.pixels[ok, 1], cloud.pixels[ok, 0]], cloud.distance[ok], rtol=1e-12)
    with pytest.raises(ValueError, match="`kind`"):
        cloud.depth_map("disparity")


def test_interpolation_is_bilinear_and_fills_holes():
    grid = np.array([[1.0, 2.0], [3.0, 4.0]])
    dense = interpolate_grid(grid, np.array([1, 3]), np.array([0, 2]), 5, 3)
    # f(x, y) = 1 + (x - 1) / 2 + y inside the grid; constant beyond the outer grid lines.
    assert dense.tolist() == [[1.0, 1.0, 1.5, 2.0, 2.0], [2.0, 2.0, 2.5, 3.0, 3.0], [3.0, 3.0, 3.5, 4.0, 4.0]]
    assert fill_holes(np.array([[np.nan, 2.0], [4.0, np.nan]])).tolist() == [[3.0, 2.0], [4.0, 3.0]]
    assert np.isnan(fill_holes(np.full((2, 2), np.nan))).all()


def test_query_grid_shape_and_errors():
    pixels, (rows, cols) = query_grid(CAMERA, 1)
    assert pixels.shape == (1, 2) and (rows, cols) == (1, 1)
    pixels, (rows, cols) = query_grid(CAMERA, 10**9)
    assert (rows, cols) == (H, W)
    with pytest.raises(ValueError, match="`num_points`"):
        query_grid(CAMERA, 0)


def test_end_to_end_with_the_tiny_model(tiny, image, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predictor = DepthLMPredictor(*tiny, batch_size=8, show_progress=False)
        cloud = point_cloud(predictor, image, CAMERA, num_points=12)
    finally:
        torch.set_num_threads(threads)
    assert isinstance(cloud, PointCloud) and len(cloud.pixels) == 12
    assert cloud.save_ply(tmp_path / "tiny.ply") == PlyData.read(str(tmp_path / "tiny.ply"))["vertex"].count
