"""DDAD: the six cameras of every `val` sample, labelled by the synchronised lidar sweep.

Reads the DGP scene-dataset layout (JSON serialisations of `dgp/proto`) directly, with the conventions of
TRI's `dgp` (`SynchronizedSceneDataset(..., split="val", generate_depth_from_datum="lidar")`):

    <root>/ddad.json                      SceneDataset: scene_splits {"1" (VAL): {filenames: [scene json]}}
    <root>/<scene>/scene_<sha1>.json      Scene: samples [{datum_keys, calibration_key}], data [Datum]
    <root>/<scene>/calibration/<calibration_key>.json   names, intrinsics [{fx, fy, cx, cy}], extrinsics
    <root>/<scene>/rgb/CAMERA_XX/<t>.png, point_cloud/LIDAR/<t>.npz ("data": (N, >= 3) x, y, z first)

A datum's `pose` places its sensor in the world (translation {x, y, z}, rotation {qw, qx, qy, qz}); lidar
points go sensor -> world -> camera, as `dgp` builds its projected depth. `root` is the folder holding
`ddad.json` (`ddad_train_val/`). Protobuf JSON may spell fields in snake_case or camelCase: both are read.
The release labels each pixel with the projected z-depth; here `depth` is the Euclidean distance of the
nearest point in each pixel and `z_depth` its z.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from depthlm_hf.data.public.frames import Frame, FrameSource, ReaderOptions, apply, quaternion_matrix, rigid
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.imaging import load_image

CAMERAS = tuple(f"CAMERA_{index:02d}" for index in (1, 5, 6, 7, 8, 9))
"""The six cameras the release curates (`DATUMS` in `curate_ddad.py`)."""
LIDAR = "LIDAR"
SPLITS = {"eval": "1"}  # dgp's DatasetSplit: TRAIN = 0, VAL = 1


def _get(message: dict, snake: str) -> Any:
    """A protobuf-JSON field by its snake_case name or its camelCase spelling."""
    if snake in message:
        return message[snake]
    head, *rest = snake.split("_")
    return message.get(head + "".join(part.title() for part in rest))


def _load(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"missing DDAD file {str(path)!r}.")
    with open(path) as f:
        return json.load(f)


def _pose(pose: dict | None) -> np.ndarray:
    pose = pose or {}
    t, q = pose.get("translation", {}), pose.get("rotation", {})
    rotation = quaternion_matrix(q.get("qw", 1.0), q.get("qx", 0.0), q.get("qy", 0.0), q.get("qz", 0.0))
    return rigid(rotation, [t.get(axis, 0.0) for axis in "xyz"])


def read_ddad(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of DDAD `split` ("eval": the dataset's val split) under `root` (the folder with `ddad.json`)."""
    if not (root / "ddad.json").is_file():
        raise ValueError(f"`root` {str(root)!r} has no ddad.json (give the `ddad_train_val` folder).")
    index = _load(root / "ddad.json")
    scene_files = (_get(index, "scene_splits") or {}).get(SPLITS[split], {}).get("filenames", [])
    for scene_file in scene_files:
        scene_path = root / scene_file
        scene = _load(scene_path)
        data = {datum["key"]: datum for datum in scene.get("data", [])}
        for sample in scene.get("samples", []):
            datums = {data[key]["id"]["name"]: data[key] for key in _get(sample, "datum_keys") if key in data}
            if LIDAR not in datums:
                continue
            for camera in CAMERAS:
                if camera in datums:
                    key = f"{scene_path.parent.name}/{datums[camera]['id'].get('timestamp', '')}/{camera}"
                    loader = _loader(scene_path.parent, datums[camera], datums[LIDAR], sample, options)
                    yield key, loader


def _loader(folder: Path, camera: dict, lidar: dict, sample: dict, options: ReaderOptions):
    def load() -> Frame:
        image_datum = camera["datum"]["image"]
        cloud_datum = _get(lidar["datum"], "point_cloud")
        image = load_image(folder / image_datum["filename"], options.max_pixels)
        with np.load(folder / cloud_datum["filename"], allow_pickle=False) as npz:
            cloud = np.asarray(npz["data"], dtype=np.float64)
        camera_from_lidar = np.linalg.inv(_pose(image_datum.get("pose"))) @ _pose(cloud_datum.get("pose"))
        calibration = _load(folder / "calibration" / f"{_get(sample, 'calibration_key')}.json")
        k = calibration["intrinsics"][calibration["names"].index(camera["id"]["name"])]
        intrinsics = CameraIntrinsics(k["fx"], k["fy"], k["cx"], k["cy"], image.width, image.height)
        return Frame(image, intrinsics, folder.name, points=apply(camera_from_lidar, cloud[:, :3]))

    return load
