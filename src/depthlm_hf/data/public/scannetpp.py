"""ScanNet++ (iPhone): every 10th frame of every scene; train is the first 98% of the frames, eval the rest.

Reads the layout that the ScanNet++ toolkit's `iphone/prepare_iphone_data.py` writes from the release's
`rgb.mp4`, `rgb_mask.mkv` and `depth.bin` (the release's curation runs that same extraction first):

    <root>/data/<scene>/iphone/rgb/frame_XXXXXX.jpg         RGB (1920x1440 native; the release extracts 1280x960)
    <root>/data/<scene>/iphone/rgb_masks/frame_XXXXXX.png   anonymisation mask, 0 = masked (optional)
    <root>/data/<scene>/iphone/depth/frame_XXXXXX.png       uint16 millimetres, 256x192
    <root>/data/<scene>/iphone/pose_intrinsic_imu.json      {"frame_XXXXXX": {"intrinsic": 3x3 K, ...}}

Rules of the release's `curate_scannet.py` and `utils/datasets.py`: every 10th frame of each scene, scenes
and frames in sorted order (the release lists them in file-system order); labelled pixels are unmasked;
each reads the depth pixel `floor(y * 192 / H), floor(x * 256 / W)` (the release's nearest lookup); the
release writes one jsonl and trains on its first 98% of lines and evaluates on the last 2%: `train` and
`eval` here are those two parts of the frame list (the release's evaluation then shuffles its 2% with
`random.seed(42)` before drawing samples, a step of its evaluation code that `depthlm eval` does not copy).
Intrinsics come from `pose_intrinsic_imu.json` (given for 1920x1440, scaled to the image), where the release
hard-codes 1427.4375 px and (959.5, 719.5). Labels are `z * |ray|`: the release's formula drops the factor z
from the ray's x and y (a bug) and keeps depth 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from depthlm_hf.data.prepare import read_depth
from depthlm_hf.data.public.frames import Frame, FrameSource, ReaderOptions
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.imaging import load_image

FRAME_INTERVAL = 10
TRAIN_FRACTION = 0.98
NATIVE_SIZE = (1920, 1440)
"""The iPhone RGB size that `pose_intrinsic_imu.json`'s intrinsics describe."""


def _frames(root: Path) -> list[tuple[Path, str]]:
    data = root / "data" if (root / "data").is_dir() else root
    frames = []
    for scene in sorted(path for path in data.iterdir() if (path / "iphone" / "rgb").is_dir()):
        names = sorted(path.stem for path in (scene / "iphone" / "rgb").glob("*.jpg"))
        frames += [(scene, name) for name in names[::FRAME_INTERVAL]]
    return frames


def split_frames(frames: list, split: str) -> list:
    """The release's split of a list by position: `train` the first `int(0.98 n)`, `eval` the rest.

    >>> len(split_frames(list(range(100)), "train")), split_frames(list(range(100)), "eval")
    (98, [98, 99])
    """
    cut = int(len(frames) * TRAIN_FRACTION)
    return frames[:cut] if split == "train" else frames[cut:]


def read_scannetpp(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of ScanNet++ `split` ("train" or "eval") under `root` (the folder holding `data/`)."""
    frames = _frames(root)
    if not frames:
        raise ValueError(f"`root` {str(root)!r} holds no ScanNet++ data/<scene>/iphone/rgb/*.jpg.")
    for scene, name in split_frames(frames, split):
        yield f"{scene.name}/{name}", _loader(scene, name, options)


def _loader(scene: Path, name: str, options: ReaderOptions):
    def load() -> Frame:
        iphone = scene / "iphone"
        image = load_image(iphone / "rgb" / f"{name}.jpg", options.max_pixels)
        stored = read_depth(iphone / "depth" / f"{name}.png", options.max_pixels)
        rows = np.arange(image.height) * stored.shape[0] // image.height
        cols = np.arange(image.width) * stored.shape[1] // image.width
        depth = stored[rows[:, None], cols[None, :]].astype(np.float64) / 1000.0
        valid = depth > 0
        mask_path = iphone / "rgb_masks" / f"{name}.png"
        if mask_path.is_file():
            mask = read_depth(mask_path, options.max_pixels)
            if mask.shape != depth.shape:
                raise ValueError(f"mask {mask_path.name!r} is {mask.shape}, the image {depth.shape}.")
            valid &= mask != 0
        with open(iphone / "pose_intrinsic_imu.json") as f:
            k = np.asarray(json.load(f)[name]["intrinsic"], dtype=np.float64)
        sx, sy = image.width / NATIVE_SIZE[0], image.height / NATIVE_SIZE[1]
        intrinsics = CameraIntrinsics(
            k[0, 0] * sx,
            k[1, 1] * sy,
            (k[0, 2] + 0.5) * sx - 0.5,
            (k[1, 2] + 0.5) * sy - 0.5,
            image.width,
            image.height,
        )
        return Frame(image, intrinsics, scene.name, depth=depth, valid=valid)

    return load
