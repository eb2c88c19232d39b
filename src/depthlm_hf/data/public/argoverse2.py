"""Argoverse 2 (Sensor Dataset): the seven ring cameras of every frame, labelled by the nearest lidar sweep.

Reads the documented layout with `pyarrow` (feather files), following the conventions of the `av2` devkit
(`AV2SensorDataLoader.project_ego_to_img_motion_compensated`):

    <root>/<split>/<log_id>/sensors/cameras/<camera>/<timestamp_ns>.jpg
    <root>/<split>/<log_id>/sensors/lidar/<timestamp_ns>.feather          x, y, z [m] in the ego frame
    <root>/<split>/<log_id>/calibration/intrinsics.feather                 sensor_name, fx_px, fy_px, cx_px, cy_px
    <root>/<split>/<log_id>/calibration/egovehicle_SE3_sensor.feather      sensor_name, qw, qx, qy, qz, tx_m, ty_m, tz_m
    <root>/<split>/<log_id>/city_SE3_egovehicle.feather                    timestamp_ns, qw, ..., tz_m

Each camera image takes the lidar sweep closest in time (none farther than 51 ms, av2's synchronisation rule);
its points are motion-compensated through the city frame (ego at lidar time -> city -> ego at camera
time) and projected with the pinhole model. Images whose fx exceeds 1000 px are downscaled to fx = 1000
(LANCZOS), as the release does. Splits: the dataset's `train` and `val` folders, every frame
(`frame_sample_interval = 1`). `depth` is each point's Euclidean distance, `z_depth` its z.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from depthlm_hf.data.public.frames import (
    Frame,
    FrameSource,
    ReaderOptions,
    apply,
    quaternion_matrix,
    rigid,
    scale_image,
)
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.imaging import load_image

RING_CAMERAS = (
    "ring_front_center",
    "ring_front_left",
    "ring_front_right",
    "ring_rear_left",
    "ring_rear_right",
    "ring_side_left",
    "ring_side_right",
)
"""The cameras the release's loop visits (`av2`'s `RingCameras`; its stereo names are never reached)."""

MAX_FOCAL = 1000.0
MAX_LIDAR_OFFSET_NS = 51_000_000
"""av2's `MAX_LIDAR_ANYCAM_TIMESTAMP_DIFF`: (the 100 ms sweep interval + a 2 ms buffer) / 2."""


@lru_cache(maxsize=8)  # a log's calibration and poses are read once per image otherwise
def _feather(path: Path) -> dict[str, np.ndarray]:
    from pyarrow import feather

    if not path.is_file():
        raise ValueError(f"missing Argoverse 2 file {str(path)!r}.")
    table = feather.read_table(path)
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _se3(table: dict[str, np.ndarray], row: int) -> np.ndarray:
    q = [table[name][row] for name in ("qw", "qx", "qy", "qz")]
    return rigid(quaternion_matrix(*q), [table[name][row] for name in ("tx_m", "ty_m", "tz_m")])


def _row(table: dict[str, np.ndarray], column: str, value) -> int:
    rows = np.flatnonzero(table[column] == value)
    if rows.size == 0:
        raise ValueError(f"no row with {column} = {value!r}.")
    return int(rows[0])


def read_argoverse2(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of Argoverse 2 `split` ("train" or "val") under `root` (the folder holding `train/`, `val/`)."""
    folder = root / split
    if not folder.is_dir():
        raise ValueError(f"`root` {str(root)!r} has no Argoverse 2 split folder {split!r}.")
    for log in sorted(path for path in folder.iterdir() if path.is_dir()):
        sweeps = np.array(sorted(int(p.stem) for p in (log / "sensors" / "lidar").glob("*.feather")), dtype=np.int64)
        for camera in RING_CAMERAS:
            for image in sorted((log / "sensors" / "cameras" / camera).glob("*.jpg"), key=lambda p: int(p.stem)):
                yield f"{log.name}/{camera}/{image.stem}", _loader(log, camera, image, sweeps, options)


def _loader(log: Path, camera: str, image_path: Path, sweeps: np.ndarray, options: ReaderOptions):
    def load() -> Frame:
        stamp = int(image_path.stem)
        if sweeps.size == 0:
            raise ValueError(f"log {log.name!r} has no lidar sweep.")
        lidar_stamp = int(sweeps[np.argmin(np.abs(sweeps - stamp))])
        if abs(lidar_stamp - stamp) > MAX_LIDAR_OFFSET_NS:
            raise ValueError(f"no lidar sweep within {MAX_LIDAR_OFFSET_NS} ns of {stamp}.")
        poses = _feather(log / "city_SE3_egovehicle.feather")
        city_from_ego_lidar = _se3(poses, _row(poses, "timestamp_ns", lidar_stamp))
        city_from_ego_camera = _se3(poses, _row(poses, "timestamp_ns", stamp))
        extrinsics = _feather(log / "calibration" / "egovehicle_SE3_sensor.feather")
        ego_from_camera = _se3(extrinsics, _row(extrinsics, "sensor_name", camera))
        camera_from_lidar_ego = np.linalg.inv(city_from_ego_camera @ ego_from_camera) @ city_from_ego_lidar
        sweep = _feather(log / "sensors" / "lidar" / f"{lidar_stamp}.feather")
        points = np.stack([sweep[axis].astype(np.float64) for axis in "xyz"], axis=-1)
        intr = _feather(log / "calibration" / "intrinsics.feather")
        row = _row(intr, "sensor_name", camera)
        image = load_image(image_path, options.max_pixels)
        fx, fy, cx, cy = (float(intr[name][row]) for name in ("fx_px", "fy_px", "cx_px", "cy_px"))
        intrinsics = CameraIntrinsics(fx, fy, cx, cy, image.width, image.height)
        if fx > MAX_FOCAL:
            image, intrinsics = scale_image(image, intrinsics, MAX_FOCAL / fx)
        return Frame(image, intrinsics, log.name, points=apply(camera_from_lidar_ego, points))

    return load
