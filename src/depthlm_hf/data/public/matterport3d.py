"""Matterport3D: every undistorted colour image of every scan, labelled by its undistorted depth image.

Layout of the Matterport3D release (per scan, after unzipping), read directly:

    <root>/<scan>/undistorted_color_images/<pano>_i<camera>_<yaw>.jpg
    <root>/<scan>/undistorted_depth_images/<pano>_d<camera>_<yaw>.png   uint16, 0.25 mm units (value / 4000 m)
    <root>/<scan>/undistorted_camera_parameters/<scan>.conf

A `.conf` file lists `intrinsics_matrix fx 0 cx 0 fy cy 0 0 1` lines, each followed by the
`scan <depth> <color> <pose>` lines of the images it applies to; images are paired through those lines
(the release pairs two sorted file lists). Sub-folders may nest (the zips add a `<scan>/` level).

Rules of the release's `curate_matterport3d.py`: images with fewer than 50 non-zero depth pixels are
skipped; a pixel is labelled when its depth is non-zero and its Euclidean distance lies in [0.05, 50] m.
Split `train` is every scan (the release trains on all of them; the paper weighs the dataset 0.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from depthlm_hf.data.prepare import read_depth
from depthlm_hf.data.public.frames import Frame, FrameSource, ReaderOptions
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.imaging import load_image

DEPTH_UNITS_PER_METRE = 4000.0
DISTANCE_RANGE = (0.05, 50.0)
MIN_NONZERO = 50


def parse_conf(path: Path) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    """`(depth name, color name, (fx, fy, cx, cy))` of every `scan` line of a Matterport3D `.conf` file."""
    entries, intrinsics = [], None
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields[:1] == ["intrinsics_matrix"] and len(fields) == 10:
            k = [float(v) for v in fields[1:]]
            intrinsics = (k[0], k[4], k[2], k[5])
        elif fields[:1] == ["scan"] and len(fields) >= 3:
            if intrinsics is None:
                raise ValueError(f"{str(path)!r}: a `scan` line comes before any `intrinsics_matrix`.")
            entries.append((fields[1], fields[2], intrinsics))
    return entries


def read_matterport3d(root: Path, split: str, options: ReaderOptions) -> Iterator[FrameSource]:
    """Frames of Matterport3D (`split` "train": every scan) under `root` (the folder of scan folders)."""
    confs = sorted(root.rglob("undistorted_camera_parameters/*.conf"))
    if not confs:
        raise ValueError(f"`root` {str(root)!r} holds no Matterport3D undistorted_camera_parameters/*.conf.")
    for conf in confs:
        scan = conf.parent.parent
        files = {path.name: path for path in scan.rglob("*") if path.parent.name.startswith("undistorted_")}
        for depth_name, color_name, intrinsics in parse_conf(conf):
            if depth_name in files and color_name in files:
                yield (
                    f"{scan.name}/{color_name}",
                    _loader(scan.name, files[color_name], files[depth_name], intrinsics, options),
                )


def _loader(scan: str, color: Path, depth_path: Path, k: tuple[float, ...], options: ReaderOptions):
    def load() -> Frame:
        image = load_image(color, options.max_pixels)
        stored = read_depth(depth_path, options.max_pixels)
        if int((stored > 0).sum()) < MIN_NONZERO:
            raise ValueError(f"fewer than {MIN_NONZERO} non-zero depth pixels in {depth_path.name!r}.")
        return Frame(
            image,
            CameraIntrinsics(*k, image.width, image.height),
            scan,
            depth=stored.astype(float) / DEPTH_UNITS_PER_METRE,
            valid=stored > 0,
            depth_range=DISTANCE_RANGE,
        )

    return load
