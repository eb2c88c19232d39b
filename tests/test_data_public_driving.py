"""The lidar readers (nuScenes, Argoverse 2, Waymo, DDAD) on tiny fixtures written in each dataset's own format.

Each fixture places known 3D points in front of a known camera, writes them where the dataset keeps its
lidar (through its own sensor and ego transforms, built here with scipy's rotations, `[x, y, z, w]`), and
checks that each point comes back at its pixel `floor(f X / Z + c + 0.5)` with its distance |P| and z,
that hidden (farther on the same pixel), behind-camera and off-image points are dropped, and the splits.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from depthlm_hf.data.public import PUBLIC_DATASETS, ReaderOptions, frame_to_record

OPTIONS = ReaderOptions()
# Camera-frame points: two seen, one hidden behind the first, one behind the camera, one off the image.
SEEN = np.array([[0.0, 0.0, 5.0], [2.0, 1.0, 10.0]])
EXTRA = np.array([[0.0, 0.0, 8.0], [0.0, 0.0, -3.0], [10.0, 0.0, 1.0]])
CAM = (20.0, 20.0, 20.0, 15.0)  # fx, fy, cx, cy of a 40x30 image: SEEN lands on (20, 15) and (24, 17)
EXPECTED_PIXELS = [[20, 15], [24, 17]]


def pose(quat_xyzw, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat(quat_xyzw).as_matrix()
    matrix[:3, 3] = translation
    return matrix


def to_frame(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def wxyz(matrix: np.ndarray) -> list[float]:
    x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    return [w, x, y, z]


def frames(name: str, root: Path, split: str) -> list[tuple[str, dict]]:
    out = []
    for key, load in PUBLIC_DATASETS[name].read(root, split, OPTIONS):
        out.append((key, frame_to_record(load(), 100, np.random.default_rng(0))))
    return out


def check_labels(record: dict, pixels=EXPECTED_PIXELS, points=SEEN, rel=1e-6) -> None:
    assert record["pixel_coords"].tolist() == pixels
    assert record["depth"] == pytest.approx(np.linalg.norm(points, axis=1), rel=rel)
    assert record["z_depth"] == pytest.approx(points[:, 2], rel=rel)


# -- nuScenes ---------------------------------------------------------------------------------------------
def write_nuscenes(root: Path, version: str, scenes: list[str], num_samples: int, labelled: list[int]) -> None:
    tables = {name: [] for name in ("sample", "sample_data", "calibrated_sensor", "sensor", "ego_pose", "scene")}
    tables["sensor"] = [{"token": "s_cam", "channel": "CAM_FRONT"}, {"token": "s_lidar", "channel": "LIDAR_TOP"}]
    cam_sensor = pose(Rotation.from_euler("xyz", [-90, 0, -90], degrees=True).as_quat(), [1.7, 0.0, 1.5])
    lidar_sensor = pose(Rotation.from_euler("z", 90, degrees=True).as_quat(), [0.9, 0.0, 1.8])
    ego_cam = pose(Rotation.from_euler("z", 30, degrees=True).as_quat(), [100.0, 50.0, 0.0])
    ego_lidar = pose(Rotation.from_euler("z", 31, degrees=True).as_quat(), [99.6, 49.8, 0.0])  # the car moved
    tables["calibrated_sensor"] = [
        {
            "token": "c_cam",
            "sensor_token": "s_cam",
            "translation": list(cam_sensor[:3, 3]),
            "rotation": wxyz(cam_sensor),
            "camera_intrinsic": [[CAM[0], 0, CAM[2]], [0, CAM[1], CAM[3]], [0, 0, 1]],
        },
        {
            "token": "c_lidar",
            "sensor_token": "s_lidar",
            "translation": list(lidar_sensor[:3, 3]),
            "rotation": wxyz(lidar_sensor),
            "camera_intrinsic": [],
        },
    ]
    tables["ego_pose"] = [
        {"token": "e_cam", "translation": list(ego_cam[:3, 3]), "rotation": wxyz(ego_cam)},
        {"token": "e_lidar", "translation": list(ego_lidar[:3, 3]), "rotation": wxyz(ego_lidar)},
    ]
    tables["scene"] = [{"token": f"scene{i}", "name": name} for i, name in enumerate(scenes)]
    camera_to_lidar = np.linalg.inv(ego_lidar @ lidar_sensor) @ ego_cam @ cam_sensor
    lidar_points = to_frame(camera_to_lidar, np.concatenate([SEEN, EXTRA]))
    (root / "samples" / "LIDAR_TOP").mkdir(parents=True, exist_ok=True)
    (root / "samples" / "CAM_FRONT").mkdir(parents=True, exist_ok=True)
    for i in range(num_samples):
        token = f"{version}_sample{i}"
        tables["sample"].append({"token": token, "scene_token": f"scene{i % len(scenes)}", "timestamp": i})
        if i not in labelled:
            continue
        cloud = np.concatenate([lidar_points, np.ones((len(lidar_points), 2))], axis=1).astype(np.float32)
        cloud.tofile(root / "samples" / "LIDAR_TOP" / f"{token}.pcd.bin")
        Image.new("RGB", (40, 30), (90, 90, 90)).save(root / "samples" / "CAM_FRONT" / f"{token}.jpg")
        for sensor, ego, ext in (
            ("c_cam", "e_cam", "CAM_FRONT/{}.jpg"),
            ("c_lidar", "e_lidar", "LIDAR_TOP/{}.pcd.bin"),
        ):
            tables["sample_data"].append(
                {
                    "token": f"{token}_{sensor}",
                    "sample_token": token,
                    "calibrated_sensor_token": sensor,
                    "ego_pose_token": ego,
                    "filename": "samples/" + ext.format(token),
                    "is_key_frame": True,
                }
            )
    (root / version).mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (root / version / f"{name}.json").write_text(json.dumps(rows))


def test_nuscenes_eval_is_the_last_5_percent_of_mini_with_motion_compensated_lidar(tmp_path):
    write_nuscenes(tmp_path, "v1.0-mini", ["scene-0061"], num_samples=20, labelled=[18, 19])
    records = frames("nuscenes", tmp_path, "eval")
    assert [key for key, _ in records] == ["scene-0061/v1.0-mini_sample19/CAM_FRONT"]  # int(0.95 * 20) = 19
    check_labels(records[0][1], rel=1e-5)  # float32 sweep


def test_nuscenes_train_skips_the_mini_scenes(tmp_path):
    write_nuscenes(tmp_path, "v1.0-trainval", ["scene-0061", "scene-0001"], num_samples=2, labelled=[0, 1])
    records = frames("nuscenes", tmp_path, "train")
    assert [key for key, _ in records] == ["scene-0001/v1.0-trainval_sample1/CAM_FRONT"]
    check_labels(records[0][1], rel=1e-5)


# -- Argoverse 2 ------------------------------------------------------------------------------------------
def write_feather(path: Path, columns: dict) -> None:
    import pyarrow as pa
    from pyarrow import feather

    path.parent.mkdir(parents=True, exist_ok=True)
    feather.write_feather(pa.table(columns), path)


def se3_columns(matrices: list[np.ndarray]) -> dict:
    quats = [Rotation.from_matrix(m[:3, :3]).as_quat() for m in matrices]  # x, y, z, w
    columns = {f"q{axis}": [q[i] for q in quats] for i, axis in enumerate("xyzw")}
    columns.update({f"t{axis}_m": [m[i, 3] for m in matrices] for i, axis in enumerate("xyz")})
    return columns


def test_argoverse2_projects_motion_compensated_sweeps_and_caps_the_focal_length(tmp_path):
    log = tmp_path / "val" / "log-1"
    cam_stamp, lidar_stamp = 1_000_010_000, 1_000_000_000  # 10 ms apart
    city_cam = pose(Rotation.from_euler("z", 10, degrees=True).as_quat(), [5.0, 2.0, 0.0])
    city_lidar = pose(Rotation.from_euler("z", 9.5, degrees=True).as_quat(), [4.8, 1.9, 0.0])
    ego_cams = {
        "ring_front_center": pose(Rotation.from_euler("xyz", [-90, 0, -90], degrees=True).as_quat(), [1.6, 0, 1.4]),
        "ring_front_left": pose(Rotation.from_euler("xyz", [-90, 0, -45], degrees=True).as_quat(), [1.5, 0.3, 1.4]),
    }
    # ring_front_left: fx = 2000 px on 80x60, downscaled to fx = 1000 on 40x30 with (cx, cy) -> (20, 15).
    cams = {"ring_front_center": (*CAM, 40, 30), "ring_front_left": (2000.0, 2000.0, 40.5, 30.5, 80, 60)}
    points = {"ring_front_center": SEEN, "ring_front_left": np.array([[0.02, 0.01, 5.0], [0.0, 0.0, 12.0]])}
    ego_points = [to_frame(city_lidar, SEEN)[:0]]
    for name, ego_cam in ego_cams.items():
        camera_to_ego_lidar = np.linalg.inv(city_lidar) @ city_cam @ ego_cam
        ego_points.append(to_frame(camera_to_ego_lidar, points[name]))
        Image.new("RGB", cams[name][4:], (60, 60, 60)).save(
            _mkdir(log / "sensors" / "cameras" / name) / f"{cam_stamp}.jpg"
        )
    cloud = np.concatenate(ego_points).astype(np.float32)
    write_feather(
        log / "sensors" / "lidar" / f"{lidar_stamp}.feather", {axis: cloud[:, i] for i, axis in enumerate("xyz")}
    )
    write_feather(
        log / "city_SE3_egovehicle.feather",
        {"timestamp_ns": [lidar_stamp, cam_stamp], **se3_columns([city_lidar, city_cam])},
    )
    write_feather(
        log / "calibration" / "egovehicle_SE3_sensor.feather",
        {"sensor_name": list(ego_cams), **se3_columns(list(ego_cams.values()))},
    )
    write_feather(
        log / "calibration" / "intrinsics.feather",
        {
            "sensor_name": list(cams),
            **{c: [cams[n][i] for n in cams] for i, c in enumerate(("fx_px", "fy_px", "cx_px", "cy_px"))},
            "width_px": [cams[n][4] for n in cams],
            "height_px": [cams[n][5] for n in cams],
        },
    )
    records = dict(frames("argoverse2", tmp_path, "val"))
    assert list(records) == [f"log-1/ring_front_center/{cam_stamp}", f"log-1/ring_front_left/{cam_stamp}"]
    check_labels(records[f"log-1/ring_front_center/{cam_stamp}"], rel=1e-5)
    left = records[f"log-1/ring_front_left/{cam_stamp}"]
    assert left["image"].size == (40, 30) and left["intrinsics"] == [1000.0, 1000.0, 20.0, 15.0, 40, 30]
    check_labels(left, pixels=[[20, 15], [24, 17]], points=points["ring_front_left"][::-1], rel=1e-5)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- Waymo ------------------------------------------------------------------------------------------------
def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    from pyarrow import parquet

    path.parent.mkdir(parents=True, exist_ok=True)
    parquet.write_table(pa.Table.from_pylist(rows), path)


def test_waymo_v2_range_images_to_undistorted_pinhole_pixels(tmp_path):
    folder, context, stamp = tmp_path / "validation", "seg-1", 1234
    mount = [1.5, 0.0, 2.0]  # lidar and camera share a position, so |P| is the lidar range
    # An 8-column range image: column j looks at azimuth pi (1 - (2j + 1) / 8); columns 3 and 4 at +-pi/8.
    ranges = np.zeros((2, 8, 4))
    ranges[1, 3, 0], ranges[1, 4, 0] = 6.0, 9.0  # row 1 (the bottom) has inclination 0
    ranges[0, 3, 0] = 7.0  # row 0 (the top) looks up at 0.8 rad: above the 40x30 image
    lidar_to_vehicle = np.eye(4)
    lidar_to_vehicle[:3, 3] = mount
    camera_to_vehicle = lidar_to_vehicle.copy()
    k1 = 0.1
    source = np.zeros((30, 40, 3), np.uint8)
    source[19:22, 29:32] = 255  # around (30.3, 20.2): where pinhole pixel (30, 20) is seen through k1 = 0.1
    buffer = io.BytesIO()
    Image.fromarray(source).save(buffer, format="PNG")
    cam = "[CameraCalibrationComponent]."
    write_parquet(
        folder / "camera_image" / f"{context}.parquet",
        [
            {
                "key.segment_context_name": context,
                "key.frame_timestamp_micros": stamp,
                "key.camera_name": 1,
                "[CameraImageComponent].image": buffer.getvalue(),
            }
        ],
    )
    write_parquet(
        folder / "camera_calibration" / f"{context}.parquet",
        [
            {
                "key.segment_context_name": context,
                "key.camera_name": 1,
                **{
                    cam + f"intrinsic.{k}": v
                    for k, v in zip(
                        ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3"),
                        (*CAM, k1, 0.0, 0.0, 0.0, 0.0),
                        strict=True,
                    )
                },
                cam + "extrinsic.transform": camera_to_vehicle.ravel().tolist(),
                cam + "width": 40,
                cam + "height": 30,
            }
        ],
    )
    write_parquet(
        folder / "lidar" / f"{context}.parquet",
        [
            {
                "key.segment_context_name": context,
                "key.frame_timestamp_micros": stamp,
                "key.laser_name": 1,
                "[LiDARComponent].range_image_return1.values": ranges.ravel().tolist(),
                "[LiDARComponent].range_image_return1.shape": [2, 8, 4],
            }
        ],
    )
    write_parquet(
        folder / "lidar_calibration" / f"{context}.parquet",
        [
            {
                "key.segment_context_name": context,
                "key.laser_name": 1,
                "[LiDARCalibrationComponent].extrinsic.transform": lidar_to_vehicle.ravel().tolist(),
                "[LiDARCalibrationComponent].beam_inclination.values": [0.0, 0.8],
                "[LiDARCalibrationComponent].beam_inclination.min": 0.0,
                "[LiDARCalibrationComponent].beam_inclination.max": 0.8,
            }
        ],
    )
    ((key, record),) = frames("waymo", tmp_path, "val")
    assert key == f"{context}/{stamp}_1"
    offset = 20 * math.tan(math.pi / 8)  # 8.28 px left and right of cx = W / 2 = 20
    assert record["pixel_coords"].tolist() == [[round(20 - offset), 15], [round(20 + offset), 15]]
    assert record["depth"] == pytest.approx([6.0, 9.0]) and record["intrinsics"] == [*CAM, 40, 30]
    assert record["z_depth"] == pytest.approx([6.0 * math.cos(math.pi / 8), 9.0 * math.cos(math.pi / 8)])
    pixels = np.asarray(record["image"])
    assert pixels[20, 30].min() == 255 and pixels[5, 5].max() == 0  # the undistorted image


# -- DDAD -------------------------------------------------------------------------------------------------
def test_ddad_val_split_cameras_and_lidar_through_world_poses(tmp_path):
    scene = tmp_path / "000150"
    camera_pose = pose(Rotation.from_euler("xyz", [-90, 0, -80], degrees=True).as_quat(), [10.0, 3.0, 1.6])
    lidar_pose = pose(Rotation.from_euler("z", 5, degrees=True).as_quat(), [10.4, 3.1, 1.9])
    cloud = to_frame(np.linalg.inv(lidar_pose) @ camera_pose, np.concatenate([SEEN, EXTRA]))

    def pose_json(matrix):
        w, x, y, z = wxyz(matrix)
        t = matrix[:3, 3]
        return {"translation": {"x": t[0], "y": t[1], "z": t[2]}, "rotation": {"qw": w, "qx": x, "qy": y, "qz": z}}

    _mkdir(scene / "rgb" / "CAMERA_01")
    Image.new("RGB", (40, 30), (30, 30, 30)).save(scene / "rgb" / "CAMERA_01" / "15616458.png")
    _mkdir(scene / "point_cloud" / "LIDAR")
    np.savez(scene / "point_cloud" / "LIDAR" / "15616458.npz", data=np.concatenate([cloud, np.ones((5, 1))], axis=1))
    _mkdir(scene / "calibration")
    (scene / "calibration" / "cal1.json").write_text(
        json.dumps(
            {
                "names": ["LIDAR", "CAMERA_01"],
                "intrinsics": [{}, {"fx": CAM[0], "fy": CAM[1], "cx": CAM[2], "cy": CAM[3], "skew": 0.0}],
                "extrinsics": [{}, {}],
            }
        )
    )
    data = [
        {
            "id": {"name": "CAMERA_01", "timestamp": "15616458"},
            "key": "k_cam",
            "datum": {"image": {"filename": "rgb/CAMERA_01/15616458.png", "pose": pose_json(camera_pose)}},
        },
        {
            "id": {"name": "LIDAR", "timestamp": "15616458"},
            "key": "k_lidar",
            "datum": {"pointCloud": {"filename": "point_cloud/LIDAR/15616458.npz", "pose": pose_json(lidar_pose)}},
        },
    ]
    sample = {"id": {"timestamp": "15616458"}, "datum_keys": ["k_cam", "k_lidar"], "calibration_key": "cal1"}
    (scene / "scene_abc.json").write_text(json.dumps({"name": "000150", "samples": [sample], "data": data}))
    (tmp_path / "ddad.json").write_text(
        json.dumps({"scene_splits": {"0": {"filenames": []}, "1": {"filenames": ["000150/scene_abc.json"]}}})
    )
    ((key, record),) = frames("ddad", tmp_path, "eval")
    assert key == "000150/15616458/CAMERA_01"
    check_labels(record)
