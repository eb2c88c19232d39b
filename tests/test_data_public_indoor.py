"""The RGB-D readers (SUN RGB-D, NYUv2, Matterport3D, ScanNet++, ETH3D) on tiny fixtures in each dataset's format.

Labels are checked pixel by pixel against `z * sqrt(((x - cx) / fx)^2 + ((y - cy) / fy)^2 + 1)`, with z decoded
as each dataset stores it, and the release's validity rules, pairing and splits are exercised.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.data.public import PUBLIC_DATASETS, ReaderOptions, eth3d, frame_to_record


def records(name: str, root: Path, split: str, options: ReaderOptions | None = None) -> dict[str, dict]:
    out, options = {}, options or ReaderOptions()
    for key, load in PUBLIC_DATASETS[name].read(root, split, options):
        try:
            out[key] = frame_to_record(load(), 1000, np.random.default_rng(0))
        except ValueError as err:
            out[key] = err
    return out


def expected_distance(record: dict, z: np.ndarray) -> np.ndarray:
    fx, fy, cx, cy = record["intrinsics"][:4]
    x, y = record["pixel_coords"][:, 0], record["pixel_coords"][:, 1]
    return z * np.sqrt(((x - cx) / fx) ** 2 + ((y - cy) / fy) ** 2 + 1)


def save16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)


# -- SUN RGB-D and NYUv2 ----------------------------------------------------------------------------------
def write_sun_scene(folder: Path, name: str, depth_mm: np.ndarray, bfx_mm: np.ndarray | None) -> None:
    (folder / "image").mkdir(parents=True)
    Image.new("RGB", (8, 6), (120, 100, 80)).save(folder / "image" / f"{name}.jpg")
    save16(folder / "depth" / f"{name}.png", depth_mm << 3)  # millimetres rotated left by 3 bits
    if bfx_mm is not None:
        save16(folder / "depth_bfx" / f"{name}.png", bfx_mm << 3)
    (folder / "intrinsics.txt").write_text("10 0 3.5\n0 12 2.5\n0 0 1\n")


@pytest.fixture
def sunrgbd_root(tmp_path):
    depth = np.full((6, 8), 2000, np.uint16)
    depth[0, 0] = 0  # no depth: never labelled
    write_sun_scene(tmp_path / "SUNRGBD" / "kv1" / "NYUdata" / "NYU0001", "NYU0001", depth, None)
    raw = np.full((6, 8), 999, np.uint16)
    bfx = np.full((6, 8), 2500, np.uint16)
    write_sun_scene(tmp_path / "SUNRGBD" / "kv2" / "kinect2data" / "000002_rgbf000103", "0000103", raw, bfx)
    return tmp_path


@pytest.mark.parametrize("decoding, metres", [("release", 16000 / 10000), ("toolbox", 2.0)])
def test_nyuv2_reads_the_nyu_folders_raw_depth(sunrgbd_root, decoding, metres):
    ((key, record),) = records("nyuv2", sunrgbd_root, "eval", ReaderOptions(depth_decoding=decoding)).items()
    assert key == "SUNRGBD/kv1/NYUdata/NYU0001" and record["intrinsics"] == [10.0, 12.0, 3.5, 2.5, 8, 6]
    assert len(record["depth"]) == 47 and [0, 0] not in record["pixel_coords"].tolist()
    assert record["z_depth"] == pytest.approx([metres] * 47)
    assert record["depth"] == pytest.approx(expected_distance(record, metres))


def test_sunrgbd_skips_nyu_and_reads_depth_bfx(sunrgbd_root):
    ((key, record),) = records("sunrgbd", sunrgbd_root, "eval").items()
    assert key.endswith("kinect2data/000002_rgbf000103") and len(record["depth"]) == 48
    assert record["z_depth"] == pytest.approx([2500 * 8 / 10000] * 48)  # depth_bfx, not the raw depth/


# -- Matterport3D -----------------------------------------------------------------------------------------
def test_matterport3d_pairs_images_through_the_conf_and_applies_the_release_rules(tmp_path):
    scan = tmp_path / "17DRP5sb8fy" / "17DRP5sb8fy"  # the zips add a level
    conf = scan / "undistorted_camera_parameters" / "17DRP5sb8fy.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        "dataset matterport\nn_images 2\ndepth_directory undistorted_depth_images\n"
        "intrinsics_matrix 10 0 3.5  0 12 2.5  0 0 1\n"
        "scan p1_d0_0.png p1_i0_0.jpg 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n"
        "intrinsics_matrix 20 0 4  0 20 3  0 0 1\n"
        "scan p1_d1_0.png p1_i1_0.jpg 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n"
    )
    (scan / "undistorted_color_images").mkdir()
    for name in ("p1_i0_0.jpg", "p1_i1_0.jpg"):
        Image.new("RGB", (10, 8), (10, 20, 30)).save(scan / "undistorted_color_images" / name)
    depth = np.full((8, 10), 8000, np.uint16)  # 2 m
    depth[1, 1], depth[2, 2] = 0, 100  # no depth; 0.025 m, under the 0.05 m floor
    save16(scan / "undistorted_depth_images" / "p1_d0_0.png", depth)
    sparse = np.zeros((8, 10), np.uint16)
    sparse[0, :3] = 4000  # 3 non-zero pixels: fewer than 50, the image is skipped
    save16(scan / "undistorted_depth_images" / "p1_d1_0.png", sparse)
    out = records("matterport3d", tmp_path, "train")
    assert list(out) == ["17DRP5sb8fy/p1_i0_0.jpg", "17DRP5sb8fy/p1_i1_0.jpg"]
    record = out["17DRP5sb8fy/p1_i0_0.jpg"]
    assert record["intrinsics"] == [10.0, 12.0, 3.5, 2.5, 10, 8] and len(record["depth"]) == 78
    assert not {(1, 1), (2, 2)} & set(map(tuple, record["pixel_coords"].tolist()))
    assert record["depth"] == pytest.approx(expected_distance(record, 2.0))
    assert "fewer than 50" in str(out["17DRP5sb8fy/p1_i1_0.jpg"])


# -- ScanNet++ --------------------------------------------------------------------------------------------
def write_scannetpp_scene(root: Path, scene: str, num_frames: int) -> None:
    iphone = root / "data" / scene / "iphone"
    intrinsics = {}
    for i in range(num_frames):
        name = f"frame_{i:06d}"
        (iphone / "rgb").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 12), (i, i, i)).save(iphone / "rgb" / f"{name}.jpg")
        depth = np.full((192, 256), 1500 + i, np.uint16)
        depth[16:32, 16:32] = 0  # RGB pixel (1, 1) reads depth pixel (16, 16): no depth
        save16(iphone / "depth" / f"{name}.png", depth)
        mask = np.full((12, 16), 255, np.uint8)
        mask[5, 6] = 0  # anonymised
        (iphone / "rgb_masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(iphone / "rgb_masks" / f"{name}.png")
        intrinsics[name] = {"intrinsic": [[1440.0, 0, 959.5], [0, 1440.0, 719.5], [0, 0, 1]]}
    (iphone / "pose_intrinsic_imu.json").write_text(json.dumps(intrinsics))


def test_scannetpp_every_10th_frame_and_the_98_percent_split(tmp_path):
    write_scannetpp_scene(tmp_path, "0a5c013435", 25)  # frames 0, 10, 20
    write_scannetpp_scene(tmp_path, "1ada7a0617", 11)  # frames 0, 10
    train, evaluation = records("scannetpp", tmp_path, "train"), records("scannetpp", tmp_path, "eval")
    assert list(train) == [
        "0a5c013435/frame_000000",
        "0a5c013435/frame_000010",
        "0a5c013435/frame_000020",
        "1ada7a0617/frame_000000",
    ]  # int(0.98 * 5) = 4
    assert list(evaluation) == ["1ada7a0617/frame_000010"]
    record = train["0a5c013435/frame_000020"]
    # 1920x1440 intrinsics scaled by 1/120 (pixel-centre convention): fx 12, (cx, cy) = (7.5, 5.5).
    assert record["intrinsics"] == [12.0, 12.0, 7.5, 5.5, 16, 12]
    assert len(record["depth"]) == 16 * 12 - 2
    assert not {(1, 1), (6, 5)} & set(map(tuple, record["pixel_coords"].tolist()))
    assert record["depth"] == pytest.approx(expected_distance(record, 1.520))


# -- ETH3D ------------------------------------------------------------------------------------------------
def write_eth3d(root: Path, fx: float, depth: np.ndarray) -> None:
    scene = root / "courtyard"
    height, width = depth.shape
    (scene / "images" / "dslr_images").mkdir(parents=True)
    Image.new("RGB", (width, height), (200, 150, 100)).save(scene / "images" / "dslr_images" / "DSC_0286.JPG")
    (scene / "ground_truth_depth" / "dslr_images").mkdir(parents=True)
    depth.astype(np.float32).tofile(scene / "ground_truth_depth" / "dslr_images" / "DSC_0286.JPG")
    (scene / "dslr_calibration_jpg").mkdir()
    cx, cy = width / 2, height / 2  # COLMAP: the image centre
    (scene / "dslr_calibration_jpg" / "cameras.txt").write_text(
        f"# Camera list\n0 THIN_PRISM_FISHEYE {width} {height} {fx} {fx} {cx} {cy} 0 0 0 0 0 0 0 0\n"
    )
    (scene / "dslr_calibration_jpg" / "images.txt").write_text(
        "# Image list\n1 1 0 0 0 0 0 0 0 dslr_images/DSC_0286.JPG\n10.0 20.0 -1\n"
    )


def test_eth3d_remaps_the_fisheye_to_a_pinhole_and_keeps_the_release_border(tmp_path):
    width, height, fx = 40, 30, 20.0
    depth = np.full((height, width), 3.0)
    depth[0, :] = np.inf  # unknown
    # Pinhole pixel (26, 18) sees the ray ((26 - 19.5) / 20, (18 - 14.5) / 20); the equidistant fisheye model
    # (all coefficients 0) bends it to theta = atan(r): write a distinct depth at that source pixel.
    xn, yn = (26 - 19.5) / fx, (18 - 14.5) / fx
    r = math.hypot(xn, yn)
    sx, sy = fx * xn * math.atan(r) / r + 19.5, fx * yn * math.atan(r) / r + 14.5
    depth[math.floor(sy + 0.5), math.floor(sx + 0.5)] = 7.0
    write_eth3d(tmp_path, fx, depth)
    ((key, record),) = records("eth3d", tmp_path, "eval").items()
    assert key == "courtyard/dslr_images/DSC_0286.JPG" and record["intrinsics"] == [fx, fx, 19.5, 14.5, 40, 30]
    coords = record["pixel_coords"]
    assert coords[:, 0].min() == 11 and coords[:, 0].max() == 29 and coords[:, 1].min() == 11
    assert coords[:, 1].max() == 19 and len(coords) == 19 * 9  # more than 10 px inside: x 11-29, y 11-19
    z = np.where((coords == [26, 18]).all(axis=1), 7.0, 3.0)
    assert (z == 7.0).sum() == 1 and record["depth"] == pytest.approx(expected_distance(record, z))


def test_eth3d_downscales_tall_images(tmp_path, monkeypatch):
    monkeypatch.setattr(eth3d, "MAX_HEIGHT", 20)  # as 1280 px does for the real 6048x4032 images
    write_eth3d(tmp_path, 20.0, np.full((30, 40), 3.0))
    ((_, record),) = records("eth3d", tmp_path, "eval").items()
    assert record["image"].size == (26, 20)
    # sx = 26 / 40, sy = 20 / 30 and the pixel-centre convention: cx' = (19.5 + 0.5) sx - 0.5 = 12.5.
    assert record["intrinsics"] == pytest.approx([13.0, 40 / 3, 12.5, 9.5, 26, 20])
    assert record["depth"] == pytest.approx(expected_distance(record, 3.0))
