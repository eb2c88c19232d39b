"""What the app does with a checkpoint, without any UI: answer one clicked pixel, build a point cloud.

`AppSession` loads a `DepthLMPredictor` once and answers the app's two requests; `demo_checkpoint` finds or
trains the `depthlm demo` model that the app serves when no `--model` is given. Nothing here imports gradio,
so the logic is tested without a browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from depthlm_hf.inference.outputs import camera_for, colorize_depth
from depthlm_hf.inference.pointcloud import PointCloud, point_cloud
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.prompting.markers import draw_markers, marker_fits

DEMO_DIR_ENV = "DEPTHLM_DEMO_DIR"
"""Environment variable naming a `depthlm demo` output folder for the app to serve."""


def demo_checkpoint(demo_dir: str | os.PathLike | None = None, fast: bool = False) -> Path:
    """The model folder of a `depthlm demo` run: `demo_dir` (or `$DEPTHLM_DEMO_DIR`, else a cache folder).

    When the folder holds no trained model yet, `depthlm demo` is run into it first (about 5 minutes on a
    laptop CPU; `fast`: the ~20 s smoke run, which does not learn).
    """
    default = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "depthlm_demo"
    folder = Path(demo_dir or os.environ.get(DEMO_DIR_ENV) or default)
    model = folder / "model"
    if not (model / "config.json").is_file():
        command = [sys.executable, "-m", "depthlm_hf.cli", "demo", "--output_dir", str(folder)]
        print(f"No demo model in {folder}: training one ({' '.join(command[2:])}{' --fast' if fast else ''}).")
        subprocess.run(command + (["--fast", "true"] if fast else []), check=True)
    return model


@dataclass
class PixelAnswer:
    """The answer about one clicked pixel: value [m] (None with `reason` when there is none)."""

    x: int
    y: int
    value: float | None
    confidence: float | None
    reason: str | None
    model_view: Image.Image | None
    marked: Image.Image

    def message(self) -> str:
        if self.value is None:
            return f"pixel ({self.x}, {self.y}): no answer ({self.reason})"
        return f"pixel ({self.x}, {self.y}): {self.value:.2f} m, confidence {self.confidence:.2f}"


class AppSession:
    """A loaded checkpoint answering the app's requests.

    Args:
        model: a checkpoint folder (model + `DepthLMProcessor`) or Hub id.
        device: torch device (default: cuda when available).
    """

    def __init__(self, model: str | os.PathLike, device: str | None = None) -> None:
        self.model_path = str(model)
        self.predictor = DepthLMPredictor.from_pretrained(model, device=device, show_progress=False)

    def camera(self, image: Image.Image, intrinsics: str = "", fov: float | None = None):
        """The camera from the app's fields: "fx fy cx cy" text, else a field of view [deg], else EXIF."""
        values = [float(v) for v in intrinsics.replace(",", " ").split()] if intrinsics.strip() else None
        return camera_for(image, values, fov or None)

    def answer(self, image: Image.Image, x: int, y: int, intrinsics: str = "", fov: float | None = None) -> PixelAnswer:
        """The distance [m] of input pixel (x, y) and the marked model image the checkpoint saw."""
        camera, _ = self.camera(image, intrinsics, fov)
        out = self.predictor.predict(image, camera, [[x, y]], progress=False)
        reason = out.reasons[0] if out.reasons else None
        view = None if reason else self.predictor.processor.prepare(image, camera, [[x, y]]).image
        value = out.values[0]
        confidence = None if value is None else float(out.confidence[0])
        if value is None and reason is None:
            reason = f"no number in the answer {out.texts[0]!r}"
        return PixelAnswer(int(x), int(y), value, confidence, reason, view, self.mark(image, x, y))

    def mark(self, image: Image.Image, x: int, y: int) -> Image.Image:
        """A copy of the input image with the checkpoint's marker at (x, y), scaled to stay visible
        (1 px per 200 px of the shorter side); the image itself where it does not fit."""
        base = self.predictor.processor.marker_style
        scale = max(1, min(image.size) // 200)
        style = replace(base, size=base.size * scale, thickness=base.thickness * scale)
        if not marker_fits([[x, y]], image.width, image.height, style)[0]:
            return image
        return draw_markers(image.convert("RGB"), [[x, y]], style)

    def cloud(
        self, image: Image.Image, num_points: int, intrinsics: str = "", fov: float | None = None
    ) -> tuple[PointCloud, Path | None, Path, Image.Image]:
        """A grid point cloud: the cloud, a GLB for a 3D viewer (None without a valid point), a PLY, and the
        colour-mapped z-depth map."""
        camera, _ = self.camera(image, intrinsics, fov)
        cloud = point_cloud(self.predictor, image, camera, int(num_points), progress=False)
        folder = Path(tempfile.mkdtemp(prefix="depthlm-app-"))
        ply, glb = folder / "point_cloud.ply", folder / "point_cloud.glb"
        if cloud.save_ply(ply):
            write_glb(cloud, glb)
        return cloud, glb if glb.exists() else None, ply, colorize_depth(cloud.depth_map("z"))


def write_glb(cloud: PointCloud, path: str | os.PathLike) -> None:
    """The valid points as a glTF binary point cloud (trimesh), in glTF axes (y up, camera looking down -z)."""
    import trimesh

    ok = cloud.valid
    points = cloud.points[ok] * np.array([1.0, -1.0, -1.0])
    colors = np.concatenate([cloud.colors[ok], np.full((int(ok.sum()), 1), 255, np.uint8)], axis=1)
    Path(path).write_bytes(trimesh.Scene(trimesh.PointCloud(points, colors=colors)).export(file_type="glb"))
