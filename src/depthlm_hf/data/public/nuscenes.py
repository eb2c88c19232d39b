"""nuScenes: the six cameras of every keyframe, labelled by the LIDAR_TOP sweep of the same sample.

Reads the documented on-disk layout (`<root>/<version>/*.json` tables, `<root>/samples/...`) directly, with
the conventions of the `nuscenes-devkit` (`NuScenes`, `LidarPointCloud.from_file`, `map_pointcloud_to_image`):
a sample's sensor data are its key frames (`sample_data.is_key_frame`), a channel is the `sensor.channel` of
the `calibrated_sensor`, quaternions are `[w, x, y, z]`, a `.pcd.bin` sweep is float32 `(x, y, z,
intensity, ring)` per point in the lidar frame, and points go lidar -> ego (lidar time) -> global -> ego
(camera time) -> camera, as the devkit does (the release skips the two ego poses).

Splits, as the release's `curate_nuscenes_train.py` / `curate_nuscenes_eval.py`:

- `train`: `v1.0-trainval`, every sample whose scene is not one of the ten `v1.0-mini` scenes;
- `eval`: `v1.0-mini`, the last 5% of `sample.json` (`range(int(0.95 n), n)`).

Labels: the nearest lidar point per pixel (z > 0, inside the image); `depth` is its Euclidean distance,
`z_depth` its principal-axis depth (the release writes the z-depth as its label).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from depthlm_hf.data.public.frames import Frame, FrameSource, ReaderOptions, apply, quaternion_matrix, rigid
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.imaging import load_image

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")
"""The cameras the release curates, in its order."""

MINI_SCENES = frozenset(
    ("scene-0061", "scene-0103", "scene-0553", "scene-0655", "scene-0757")
    + ("scene-0796", "scene-0916", "scene-1077", "scene-1094", "scene-1100")
)
"""The ten scenes of `v1.0-mini` (the devkit's `splits.mini_train + splits.mini_val`), kept out of training."""

VERSIONS = {"train": "v1.0-trainval", "eval": "v1.0-mini"}
EVAL_START = 0.95
POINT_FIELDS = 5


def _table(root: Path, version: str, name: str) -> list[dict]:
    path = root / version / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"`root` {str(root)!r} has no nuScenes table {version}/{name}.json.")
    with open(path) as f:
        return json.load(f)


def _pose(entry: dict) -> np.ndarray:
    return rigid(quaternion_matrix(*entry["rotation"]), entry["translation"])


def read_pcd_bin(path: Path) -> np.ndarray:
    """(N, 3) lidar-frame points [m] of a nuScenes `.pcd.bin` (float32, 5 values per point)."""
    data = np.fromfile(path, dtype=np.float32)
    if data.size % POINT_FIELDS:
        raise ValueError(f"{str(path)!r} holds {data.size} floats, not a multiple of {POINT_FIELDS}.")
    return data.reshape(-1, POINT_FIELDS)[:, :3].astype(np.float64)


def read_nuscenes(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of nuScenes `split` ("train" or "eval") under `root` (the devkit's `dataroot`)."""
    version = VERSIONS[split]
    tables = {name: _table(root, version, name) for name in ("sample", "sample_data", "calibrated_sensor")}
    tables.update({name: _table(root, version, name) for name in ("sensor", "ego_pose", "scene")})
    by_token = {name: {row["token"]: row for row in rows} for name, rows in tables.items()}
    channel = {
        token: by_token["sensor"][row["sensor_token"]]["channel"]
        for token, row in by_token["calibrated_sensor"].items()
    }
    keyframes: dict[str, dict[str, dict]] = {}
    for row in tables["sample_data"]:
        if row.get("is_key_frame"):
            keyframes.setdefault(row["sample_token"], {})[channel[row["calibrated_sensor_token"]]] = row
    samples = tables["sample"]
    if split == "eval":
        samples = samples[int(len(samples) * EVAL_START) :]
    for sample in samples:
        scene = by_token["scene"][sample["scene_token"]]["name"]
        if split == "train" and scene in MINI_SCENES:
            continue
        data = keyframes.get(sample["token"], {})
        for camera in CAMERAS:
            if camera in data and "LIDAR_TOP" in data:
                key = f"{scene}/{sample['token']}/{camera}"
                yield key, _loader(root, data[camera], data["LIDAR_TOP"], by_token, scene, options)


def _loader(root: Path, cam: dict, lidar: dict, by_token: dict, scene: str, options: ReaderOptions):
    def load() -> Frame:
        image = load_image(root / cam["filename"], options.max_pixels)
        cam_sensor = by_token["calibrated_sensor"][cam["calibrated_sensor_token"]]
        lidar_to_global = _pose(by_token["ego_pose"][lidar["ego_pose_token"]]) @ _pose(
            by_token["calibrated_sensor"][lidar["calibrated_sensor_token"]]
        )
        global_to_camera = np.linalg.inv(_pose(by_token["ego_pose"][cam["ego_pose_token"]]) @ _pose(cam_sensor))
        points = apply(global_to_camera @ lidar_to_global, read_pcd_bin(root / lidar["filename"]))
        k = np.asarray(cam_sensor["camera_intrinsic"], dtype=np.float64)
        intrinsics = CameraIntrinsics(k[0, 0], k[1, 1], k[0, 2], k[1, 2], image.width, image.height)
        return Frame(image, intrinsics, scene, points=points)

    return load
