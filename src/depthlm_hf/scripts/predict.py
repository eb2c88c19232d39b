"""`depthlm predict`: ask a checkpoint the distance of pixels of one image; write JSON, a point cloud and images.

    depthlm predict --model runs/depthlm --image room.jpg --intrinsics 559.6 558.1 361.9 242.0 --points 320,240 10,5
    depthlm predict --model runs/depthlm --image photo.jpg --fov 65 --num_points 10000 --output_dir out

The image is read as displayed (its EXIF orientation applied; `--exif_orientation false` keeps the stored
pixels), and points and intrinsics are pixels of that image. The camera comes from `--intrinsics`
(`FX FY CX CY [W H]` [px]), else `--fov` (horizontal, [deg]), else the image's EXIF 35 mm-equivalent focal
length. `--points X,Y ...` are asked one by one (a point too near the border for the marker is answered `null`
with the reason); `--num_points N` asks a grid of ~N markable pixels, as the paper's point clouds. Writes
`predictions.json`, `preview.png`, and with `--num_points` `point_cloud.ply` (x, y, z [m], colour, confidence)
and `depth.png` (colour-mapped z-depth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from trl import TrlParser

from depthlm_hf.inference.outputs import camera_for, prediction_entries, write_outputs
from depthlm_hf.inference.pointcloud import point_cloud
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.prompting.imaging import load_image
from depthlm_hf.prompting.presets import PRESET_HELP, PresetName
from depthlm_hf.resources import check_output_dir
from depthlm_hf.tasks import text as answers


@dataclass
class PredictArguments:
    """Arguments of `depthlm predict`."""

    model: str = field(metadata={"help": "Checkpoint folder (model + DepthLMProcessor) or Hub id."})
    image: str = field(metadata={"help": "The input image."})
    intrinsics: list[float] | None = field(
        default=None, metadata={"help": "Camera FX FY CX CY [W H] in pixels of the input image."}
    )
    fov: float | None = field(default=None, metadata={"help": "Horizontal field of view [deg] if intrinsics unknown."})
    points: list[str] = field(default_factory=list, metadata={"help": "Query pixels as X,Y (one or more)."})
    num_points: int | None = field(default=None, metadata={"help": "Grid queries for a point cloud and depth map."})
    task: answers.TaskName = field(
        default=answers.DEFAULT_TASK, metadata={"help": "Task asked at each point (a task about pixels of one image)."}
    )
    output_dir: str = field(default="predictions", metadata={"help": "Folder for the JSON, PLY and images."})
    batch_size: int = field(default=16, metadata={"help": "Queries per generate call."})
    max_new_tokens: int = field(default=8, metadata={"help": "Tokens generated per query after the prefix."})
    preset: PresetName | None = field(default=None, metadata={"help": PRESET_HELP})
    device: str | None = field(default=None, metadata={"help": "Torch device (default: cuda if available)."})
    exif_orientation: bool = field(
        default=True,
        metadata={
            "help": "Read the image as displayed (its EXIF orientation applied): points and intrinsics are pixels "
            "of the upright picture. False: the stored pixels."
        },
    )

    def __post_init__(self) -> None:
        spec = answers.get_task(self.task)
        if spec.num_images != 1 or spec.num_points < 1:
            raise ValueError(f"`task` must be a task about pixels of one image, got {self.task!r}.")
        if not self.points and not self.num_points:
            raise ValueError("Pass `points` (X,Y ...) or `num_points` (a grid), or both.")
        if self.num_points is not None and (self.num_points < 1 or self.task != answers.DEFAULT_TASK):
            raise ValueError(  # the point cloud asks the default task (distance) at each grid pixel
                f"`num_points` must be a positive count with `task` {answers.DEFAULT_TASK!r}, got "
                f"{self.num_points!r} and {self.task!r}."
            )
        if self.intrinsics is not None and len(self.intrinsics) not in (4, 6):
            raise ValueError(f"`intrinsics` must be FX FY CX CY [W H], got {self.intrinsics!r}.")
        self.point_array()
        check_output_dir(self.output_dir, "output_dir", {"image": self.image, "model": self.model})

    def point_array(self) -> np.ndarray:
        """`points` as an (N, 2) float array [px]; each entry is exactly one `X,Y` pair of finite numbers."""
        try:
            pairs = [[float(v) for v in p.split(",")] for p in self.points]
            if any(len(pair) != 2 or not np.isfinite(pair).all() for pair in pairs):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"`points` must be X,Y pairs of finite numbers such as 320,240, got {self.points!r}."
            ) from None
        return np.array(pairs, dtype=np.float64).reshape(-1, 2)


def make_parser() -> TrlParser:
    """`TrlParser` over :class:`PredictArguments` (`--config predict.yaml` sets defaults, flags override)."""
    return TrlParser((PredictArguments,))


def predict(args: PredictArguments) -> dict[str, Any]:
    """Run the queries of `args`, write the outputs, return `predictions.json`'s content plus the paths."""
    image = load_image(args.image, exif_orientation=args.exif_orientation)
    camera, source = camera_for(image, args.intrinsics, args.fov)
    predictor = DepthLMPredictor.from_pretrained(
        args.model,
        device=args.device,
        preset=args.preset,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
    )
    spec = answers.get_task(args.task)
    points = args.point_array()
    entries = []
    if len(points):
        answer = predictor.predict(image, camera, points, task=args.task, progress=True)
        entries = prediction_entries(points, answer, spec.num_points)
    cloud = None
    if args.num_points:
        cloud = point_cloud(predictor, image, camera, args.num_points, progress=True)
    info = {
        "model": args.model,
        "image": args.image,
        "task": args.task,
        "unit": spec.unit,
        "intrinsics": camera.to_list(),
        "camera_source": source,
    }
    paths = write_outputs(args.output_dir, image, info, entries, cloud, spec.unit)
    answered = sum(e["value"] is not None for e in entries)
    print(f"{answered}/{len(entries)} points answered; " + ", ".join(str(p) for p in paths.values()))
    return {**info, "points": entries, "paths": paths}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv` (default: `sys.argv[1:]`), predict and write the outputs."""
    (args,) = make_parser().parse_args_and_config(argv)
    return predict(args)


if __name__ == "__main__":
    main()
