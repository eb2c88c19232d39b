"""SUN RGB-D and NYUv2 (as shipped inside SUN RGB-D): one image per scene folder, every folder evaluated.

Layout of the SUN RGB-D release (`SUNRGBD.zip`), read directly (the SUN RGB-D toolbox is MATLAB):

    <root>/SUNRGBD/<sensor>/<subset>/.../<scene>/image/<name>.jpg
                                               /depth/<name>.png        raw depth (16-bit PNG)
                                               /depth_bfx/<name>.png    hole-filled depth
                                               /intrinsics.txt          the 3x3 K, row-major

As the release's `curate_sunRGBD.py` and `curate_NYU.py`: NYUv2 is every scene whose image path contains
"NYU" (`kv1/NYUdata`, 1,449 images) with its `depth/` map; SUN RGB-D is every other scene with its
`depth_bfx/` map. A pixel is labelled when its depth lies in the open range (0.005, 25) m.

Depth decoding (`ReaderOptions.depth_decoding`): the PNGs store millimetres rotated left by 3 bits
(`read3dPoints.m` undoes it: `bitor(bitshift(d, -3), bitshift(d, 13)) / 1000`, capped at 8 m). The
release divides the stored value by 10,000 instead ("release", the default, to rebuild the release's
labels): for a stored `8 * mm` that is 0.8 of the toolbox's metres. "toolbox" gives the toolbox's metres.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from depthlm_hf.data.prepare import read_depth
from depthlm_hf.data.public.frames import DepthDecoding, Frame, FrameSource, ReaderOptions
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.imaging import load_image

VALID_DEPTH = (0.005, 25.0)
"""Open range [m] of the depths the release labels."""
TOOLBOX_MAX_DEPTH = 8.0


def decode_sunrgbd_depth(stored: np.ndarray, decoding: DepthDecoding = "release") -> np.ndarray:
    """Depth [m] (H, W) of a SUN RGB-D depth PNG's values (H, W) uint16.

    >>> stored = np.array([[8 * 1500, 8 * 8190]], dtype=np.uint16)  # 1.5 m and 8.19 m, past the 8 m cap
    >>> decode_sunrgbd_depth(stored).tolist(), decode_sunrgbd_depth(stored, "toolbox").tolist()
    ([[1.2, 6.552]], [[1.5, 8.0]])
    """
    stored = np.asarray(stored)
    if decoding == "release":
        return stored.astype(np.float64) / 10000.0
    if decoding == "toolbox":
        value = stored.astype(np.uint16)
        millimetres = (value >> 3) | ((value << 13) & 0xFFFF)
        return np.minimum(millimetres.astype(np.float64) / 1000.0, TOOLBOX_MAX_DEPTH)
    raise ValueError(f"`depth_decoding` must be 'release' or 'toolbox', got {decoding!r}.")


def read_intrinsics_txt(path: Path) -> tuple[float, float, float, float]:
    """`(fx, fy, cx, cy)` [px] of a SUN RGB-D `intrinsics.txt` (the 3x3 K, row-major)."""
    values = np.array(path.read_text().split(), dtype=np.float64)
    if values.size != 9:
        raise ValueError(f"{str(path)!r} must hold the 9 values of a 3x3 K, got {values.size}.")
    k = values.reshape(3, 3)
    return k[0, 0], k[1, 1], k[0, 2], k[1, 2]


def _scenes(root: Path) -> list[Path]:
    base = root / "SUNRGBD" if (root / "SUNRGBD").is_dir() else root
    return sorted(path.parent for path in base.rglob("intrinsics.txt") if (path.parent / "image").is_dir())


def _read(root: Path, nyu: bool, options: ReaderOptions) -> Iterator[FrameSource]:
    scenes = _scenes(root)
    if not scenes:
        raise ValueError(f"`root` {str(root)!r} holds no SUN RGB-D scene folder (image/ and intrinsics.txt).")
    for scene in scenes:
        images = sorted((scene / "image").iterdir())
        if not images or ("NYU" in str(images[0])) != nyu:
            continue
        depth_folder = scene / ("depth" if nyu else "depth_bfx")
        yield str(scene.relative_to(root)), _loader(scene, images[0], depth_folder, options)


def read_sunrgbd(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of SUN RGB-D without NYUv2 (`split` "eval": all of them) under `root`."""
    return _read(root, nyu=False, options=options)


def read_nyuv2(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of NYUv2 as found in SUN RGB-D (`split` "eval": all 1,449) under `root`."""
    return _read(root, nyu=True, options=options)


def _loader(scene: Path, image_path: Path, depth_folder: Path, options: ReaderOptions):
    def load() -> Frame:
        depths = sorted(depth_folder.glob("*.png"))
        if not depths:
            raise ValueError(f"no depth PNG in {str(depth_folder)!r}.")
        image = load_image(image_path, options.max_pixels)
        depth = decode_sunrgbd_depth(read_depth(depths[0], options.max_pixels), options.depth_decoding)
        fx, fy, cx, cy = read_intrinsics_txt(scene / "intrinsics.txt")
        lo, hi = VALID_DEPTH
        return Frame(
            image,
            CameraIntrinsics(fx, fy, cx, cy, image.width, image.height),
            scene.name,
            depth=depth,
            valid=(depth > lo) & (depth < hi),
        )

    return load
