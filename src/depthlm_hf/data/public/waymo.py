"""Waymo Open Dataset (perception, v2 parquet): the five cameras of every frame, labelled by all five lidars.

Reads the v2 component tables with `pyarrow` (no TensorFlow), following the conventions of
`waymo-open-dataset` (`v2.perception`, `range_image_utils`):

    <root>/<training|validation>/<component>/<segment_context_name>.parquet
    camera_image        key.*, key.camera_name, [CameraImageComponent].image (JPEG bytes)
    camera_calibration  [CameraCalibrationComponent].intrinsic.{f_u,f_v,c_u,c_v,k1,k2,p1,p2,k3},
                        .extrinsic.transform (camera -> vehicle, row-major 4x4), .width, .height
    lidar               key.laser_name, [LiDARComponent].range_image_return1.{values,shape} (H, W, 4: range first)
    lidar_calibration   [LiDARCalibrationComponent].extrinsic.transform, .beam_inclination.{min,max,values}

Range images become vehicle-frame points as the devkit does (column azimuth from +pi on the left to -pi,
corrected by the extrinsic's yaw; row inclinations from the calibration's values, else evenly spaced from
max at the top row to min), then camera-frame points (Waymo's camera looks down +x with +y left, +z up).
Images are undistorted (Brown-Conrady k1, k2, p1, p2, k3) to the pinhole camera of the same focal lengths
with the principal point at `(W / 2, H / 2)`, then downscaled to fx = 1000 px, as the release does; the
points are projected with that pinhole camera. Splits: `train` (`training/`) and `val` (`validation/`).
Not used: the per-pixel vehicle poses of the top lidar (`lidar_pose`, rolling-shutter compensation, a few
centimetres) and the `lidar_camera_projection` table (the points are projected with the camera model instead).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from depthlm_hf.data.public.frames import Frame, FrameSource, ReaderOptions, apply, scale_image, undistort
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.imaging import to_rgb

FOLDERS = {"train": "training", "val": "validation"}
MAX_FOCAL = 1000.0
CAM = "[CameraCalibrationComponent]."
LIDAR_CAL = "[LiDARCalibrationComponent]."
RANGE = "[LiDARComponent].range_image_return1."
WAYMO_TO_OPENCV = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
"""Waymo camera axes (x forward, y left, z up) to OpenCV's (x right, y down, z forward)."""


TIMESTAMP, CAMERA_NAME, LASER_NAME = "key.frame_timestamp_micros", "key.camera_name", "key.laser_name"
IMAGE = "[CameraImageComponent].image"


def _table(folder: Path, component: str, context: str, columns=None, filters=None):
    """The `pyarrow.Table` of one component file: only `columns` and the rows that match `filters`
    (a segment's lidar file holds ~200 frames of range images: never converted whole to Python objects)."""
    from pyarrow import parquet

    path = folder / component / f"{context}.parquet"
    if not path.is_file():
        raise ValueError(f"missing Waymo component file {str(path)!r}.")
    return parquet.read_table(path, columns=columns, filters=filters)


def _read(folder: Path, component: str, context: str, columns=None, filters=None) -> list[dict]:
    return _table(folder, component, context, columns, filters).to_pylist()


def brown_conrady(k: tuple[float, ...]):
    """The distortion `(x, y) -> (x_d, y_d)` of normalised coordinates with `k = (k1, k2, p1, p2, k3)`.

    >>> brown_conrady((0.1, 0, 0, 0, 0))(np.array([0.5]), np.array([0.0]))
    (array([0.5125]), array([0.]))
    """
    k1, k2, p1, p2, k3 = k

    def distort(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        return x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y

    return distort


def range_image_points(range_image: np.ndarray, extrinsic: np.ndarray, inclinations: np.ndarray) -> np.ndarray:
    """(N, 3) vehicle-frame points [m] of the pixels with range > 0 of an (H, W) range image [m].

    `inclinations` (H,) [rad] are listed from the bottom row up (the calibration's order); `extrinsic` (4, 4)
    maps lidar to vehicle coordinates.

    >>> pts = range_image_points(np.array([[0.0, 2.0, 0.0, 0.0]]), np.eye(4), np.array([0.0]))
    >>> pts.round(6).tolist()   # the second of 4 columns looks at azimuth +pi/4 (to the left)
    [[1.414214, 1.414214, 0.0]]
    """
    height, width = range_image.shape
    yaw = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    azimuth = ((np.arange(width - 1, -1, -1) + 0.5) / width * 2 - 1) * np.pi - yaw
    inclination = np.asarray(inclinations, dtype=np.float64)[::-1]
    rows, cols = np.nonzero(range_image > 0)
    r, inc, az = range_image[rows, cols], inclination[rows], azimuth[cols]
    local = np.stack([np.cos(inc) * np.cos(az) * r, np.cos(inc) * np.sin(az) * r, np.sin(inc) * r], axis=-1)
    return apply(extrinsic, local)


def _inclinations(calibration: dict, height: int) -> np.ndarray:
    values = calibration.get(LIDAR_CAL + "beam_inclination.values")
    if values:
        return np.asarray(values, dtype=np.float64)
    lo, hi = calibration[LIDAR_CAL + "beam_inclination.min"], calibration[LIDAR_CAL + "beam_inclination.max"]
    return lo + (np.arange(height) + 0.5) / height * (hi - lo)


def read_waymo(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of Waymo `split` ("train" or "val") under `root` (the folder holding `training/`, `validation/`)."""
    folder = root / FOLDERS[split]
    if not (folder / "camera_image").is_dir():
        raise ValueError(f"`root` {str(root)!r} has no Waymo v2 folder {FOLDERS[split]}/camera_image.")
    for path in sorted((folder / "camera_image").glob("*.parquet")):
        context = path.stem
        rows = _read(folder, "camera_image", context, columns=[TIMESTAMP, CAMERA_NAME])
        for stamp, camera in sorted((row[TIMESTAMP], row[CAMERA_NAME]) for row in rows):
            yield f"{context}/{stamp}_{camera}", _loader(folder, context, stamp, camera, options)


@lru_cache(maxsize=2)  # the five cameras of a frame share its sweep
def _frame_points(folder: Path, context: str, stamp: int) -> np.ndarray:
    calibrations = {row[LASER_NAME]: row for row in _read(folder, "lidar_calibration", context)}
    table = _table(folder, "lidar", context, [LASER_NAME, RANGE + "shape", RANGE + "values"], [(TIMESTAMP, "=", stamp)])
    points = []
    for i in range(table.num_rows):
        shape = table.column(RANGE + "shape")[i].as_py()
        values = table.column(RANGE + "values").slice(i, 1).combine_chunks().flatten().to_numpy()
        ranges = values.astype(np.float64).reshape(shape)[..., 0]
        calibration = calibrations[table.column(LASER_NAME)[i].as_py()]
        extrinsic = np.asarray(calibration[LIDAR_CAL + "extrinsic.transform"], dtype=np.float64).reshape(4, 4)
        points.append(range_image_points(ranges, extrinsic, _inclinations(calibration, shape[0])))
    return np.concatenate(points) if points else np.zeros((0, 3))


@lru_cache(maxsize=2)
def _camera_calibrations(folder: Path, context: str) -> dict[int, dict]:
    return {row[CAMERA_NAME]: row for row in _read(folder, "camera_calibration", context)}


def _loader(folder: Path, context: str, stamp: int, camera: int, options: ReaderOptions):
    def load() -> Frame:
        calibration = _camera_calibrations(folder, context)[camera]
        (row,) = _read(folder, "camera_image", context, [IMAGE], [(TIMESTAMP, "=", stamp), (CAMERA_NAME, "=", camera)])
        image = to_rgb(Image.open(io.BytesIO(row[IMAGE])))
        if image.width * image.height > options.max_pixels:
            raise ValueError(f"image of {image.width}x{image.height} px exceeds `max_pixels`.")
        fu, fv, cu, cv = (calibration[CAM + f"intrinsic.{name}"] for name in ("f_u", "f_v", "c_u", "c_v"))
        k = tuple(calibration[CAM + f"intrinsic.{name}"] for name in ("k1", "k2", "p1", "p2", "k3"))
        source = CameraIntrinsics(fu, fv, cu, cv, image.width, image.height)
        pinhole = CameraIntrinsics(fu, fv, image.width / 2, image.height / 2, image.width, image.height)
        pixels = undistort(np.asarray(image), source, pinhole, brown_conrady(k), order=1)
        image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
        if pinhole.fx > MAX_FOCAL:
            image, pinhole = scale_image(image, pinhole, MAX_FOCAL / pinhole.fx)
        vehicle_from_camera = np.asarray(calibration[CAM + "extrinsic.transform"], dtype=np.float64).reshape(4, 4)
        points = apply(np.linalg.inv(vehicle_from_camera), _frame_points(folder, context, stamp))
        return Frame(image, pinhole, context, points=points @ WAYMO_TO_OPENCV.T)

    return load
