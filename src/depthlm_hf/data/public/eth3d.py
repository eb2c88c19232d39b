"""ETH3D (high-res multi-view, training): every DSLR image, remapped from its fisheye model to a pinhole.

Reads the layout of the two archives `multi_view_training_dslr_jpg` and `multi_view_training_dslr_depth`
extracted into one folder (COLMAP text format, as ETH3D documents it):

    <root>/<scene>/images/dslr_images/<name>.JPG
    <root>/<scene>/dslr_calibration_jpg/cameras.txt
        CAMERA_ID THIN_PRISM_FISHEYE W H fx fy cx cy k1 k2 p1 p2 k3 k4 sx1 sy1
    <root>/<scene>/dslr_calibration_jpg/images.txt
        IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME (then a line of 2D points)
    <root>/<scene>/ground_truth_depth/dslr_images/<name>.JPG   raw float32 (H, W) depth [m] of the distorted
                                                                 image, inf where unknown

As the release's `curate_eth3d.py`: the image and its depth are remapped to the pinhole camera with the
same fx, fy, cx, cy (RGB bilinear, depth nearest), images taller than 1280 px are downscaled to 1280 px
(bicubic), and pixels with depth in (1e-4, 1e6) m more than 10 px inside the full-resolution image are
labelled (`z * |ray|` of the final pixel; the depth is taken as principal-axis depth, as by the release).
The remap follows COLMAP's full thin-prism fisheye model (the release passes only k1..k4 to OpenCV's
fisheye model, dropping p1, p2, sx1, sy1) and COLMAP's pixel convention (the top-left pixel's centre is
(0.5, 0.5), so cx - 0.5 in this library's convention). Split `eval`: every image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from depthlm_hf.data.public.frames import Frame, FrameSource, ReaderOptions, scale_image, undistort
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.imaging import load_image

MAX_HEIGHT = 1280
VALID_DEPTH = (1e-4, 1e6)
BORDER = 10


def thin_prism_fisheye(params: list[float]):
    """COLMAP's THIN_PRISM_FISHEYE distortion `(x, y) -> (x_d, y_d)` of normalised coordinates.

    `params` = k1, k2, p1, p2, k3, k4, sx1, sy1 (the model's parameters after fx, fy, cx, cy).

    >>> x, y = thin_prism_fisheye([0.0] * 8)(np.array([1.0]), np.array([0.0]))
    >>> round(float(x[0]), 6), float(y[0])   # the equidistant fisheye: atan(1) = pi / 4
    (0.785398, 0.0)
    """
    k1, k2, p1, p2, k3, k4, sx1, sy1 = params

    def distort(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.sqrt(x * x + y * y)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        factor = np.where(r > 1e-12, theta_d / np.where(r > 1e-12, r, 1.0), 1.0)
        u, v = x * factor, y * factor
        r2 = u * u + v * v
        du = 2 * p1 * u * v + p2 * (r2 + 2 * u * u) + sx1 * r2
        dv = 2 * p2 * u * v + p1 * (r2 + 2 * v * v) + sy1 * r2
        return u + du, v + dv

    return distort


def _colmap(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise ValueError(f"missing ETH3D calibration file {str(path)!r}.")
    return [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def read_eth3d(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of ETH3D (`split` "eval": every DSLR image) under `root` (the folder of scene folders)."""
    scenes = sorted(path for path in root.iterdir() if (path / "dslr_calibration_jpg").is_dir())
    if not scenes:
        raise ValueError(f"`root` {str(root)!r} holds no ETH3D <scene>/dslr_calibration_jpg folder.")
    for scene in scenes:
        calibration = scene / "dslr_calibration_jpg"
        cameras = {fields[0]: fields for fields in _colmap(calibration / "cameras.txt")}
        # images.txt alternates image lines (10 fields and more) and lines of 2D points.
        images = [fields for fields in _colmap(calibration / "images.txt") if len(fields) >= 10 and fields[9:]]
        for fields in sorted(images, key=lambda f: f[9]):
            camera, name = cameras.get(fields[8]), fields[9]
            if camera is not None and camera[1] == "THIN_PRISM_FISHEYE":
                yield f"{scene.name}/{name}", _loader(scene, name, camera, options)


def _loader(scene: Path, name: str, camera: list[str], options: ReaderOptions):
    def load() -> Frame:
        image = load_image(scene / "images" / name, options.max_pixels)
        width, height = image.size
        depth_path = scene / "ground_truth_depth" / name
        raw = np.fromfile(depth_path, dtype=np.float32)
        if raw.size != width * height:
            raise ValueError(f"{str(depth_path)!r} holds {raw.size} floats for a {width}x{height} image.")
        fx, fy, cx, cy = (float(v) for v in camera[4:8])
        pinhole = CameraIntrinsics(fx, fy, cx - 0.5, cy - 0.5, width, height)
        distort = thin_prism_fisheye([float(v) for v in camera[8:16]])
        rgb = undistort(np.asarray(image), pinhole, pinhole, distort, order=1)
        depth = undistort(raw.reshape(height, width).astype(np.float64), pinhole, pinhole, distort, order=0)
        image = Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8))
        lo, hi = VALID_DEPTH
        with np.errstate(invalid="ignore"):
            valid = (depth > lo) & (depth < hi)
        valid[: BORDER + 1], valid[height - BORDER :], valid[:, : BORDER + 1], valid[:, width - BORDER :] = (
            False,
            False,
            False,
            False,
        )
        if height > MAX_HEIGHT:
            image, final = scale_image(image, pinhole, MAX_HEIGHT / height, Image.Resampling.BICUBIC)
            depth, valid = _shrink(depth, valid, pinhole, final)
            pinhole = final
        return Frame(image, pinhole, scene.name, depth=np.where(valid, depth, 0.0), valid=valid)

    return load


def _shrink(
    depth: np.ndarray, valid: np.ndarray, source: CameraIntrinsics, target: CameraIntrinsics
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-pixel depth and validity at the downscaled image's pixels (each reads its source pixel)."""
    cols = np.floor((np.arange(target.width) + 0.5) * source.width / target.width).astype(int)
    rows = np.floor((np.arange(target.height) + 0.5) * source.height / target.height).astype(int)
    cols, rows = np.minimum(cols, source.width - 1), np.minimum(rows, source.height - 1)
    return depth[rows[:, None], cols[None, :]], valid[rows[:, None], cols[None, :]]
