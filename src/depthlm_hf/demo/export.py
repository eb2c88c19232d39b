"""The demo's held-out scenes as a curated dataset (`depthlm_hf.data.records`): one whole unified canvas per scene,
its true camera and its query, so that `depthlm eval` asks the saved checkpoint exactly what the demo's report
scored (the same images, pixels and labels).

    depthlm eval --model demo_out/model --data demo_out/heldout/heldout.jsonl --num_samples all
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from depthlm_hf.data.records import to_jsonable
from depthlm_hf.demo.data import SceneBank, canvas_camera

HELD_OUT = "heldout"
"""Folder (under the demo's output) and dataset name of the held-out scenes."""


def write_held_out(bank: SceneBank, folder: str | Path, unified_focal: float) -> Path:
    """Write each scene of `bank` (its whole canvas, PNG) and its first query as a curated record; returns the jsonl.

    The camera is the canvas's, with the focal length exactly `unified_focal` [px] (the processor's f*), so the
    unification is an identity, as in the demo's own evaluation. In the "focal" ablation the canvas is the resized
    native frame and that camera is what "no unification" means.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for scene in range(bank.points.shape[0]):
        name = f"images/{scene:05d}.png"
        Image.fromarray(bank.canvas[scene]).save(folder / name)
        camera = canvas_camera(bank, scene, unified_focal)
        record = {
            "image": name,
            "intrinsics": [camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height],
            "pixel_coords": bank.points[scene, :1],
            "depth": bank.distance[scene, :1],
            "dataset": HELD_OUT,
            "scene": str(scene),
        }
        lines.append(json.dumps(to_jsonable(record)))
    path = folder / f"{HELD_OUT}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
