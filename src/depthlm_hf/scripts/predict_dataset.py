"""`depthlm predict_dataset`: a point cloud and a depth map for every image of a jsonl file, on one or many GPUs.

    depthlm predict_dataset --model runs/depthlm --data images.jsonl:photos --output_dir clouds --num_points 10000
    accelerate launch --config_file recipes/accelerate_configs/eval_multigpu.yaml -m depthlm_hf.cli \
        predict_dataset --model runs/depthlm --data images.jsonl:photos --output_dir clouds

`--data JSONL[:IMAGE_ROOT]` is a curated jsonl file; only each line's `image` and `intrinsics` are read (labels are
not needed). Per image `a.png` the output folder gets `a.ply`, `a.depth.npy` (z-depth [m]) and `a.json`; images
are shared across ranks, an interrupted run resumes at the first incomplete image, and rank 0 shows the progress
and writes `summary.json`. The runner is `depthlm_hf.inference.dense_batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trl import TrlParser

from depthlm_hf.data.sources import parse_dataset_spec
from depthlm_hf.inference.dense_batch import run_dense
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.inference.ranks import launched_ranks
from depthlm_hf.prompting.presets import PRESET_HELP, PresetName
from depthlm_hf.resources import check_output_dir


@dataclass
class PredictDatasetArguments:
    """Arguments of `depthlm predict_dataset`."""

    model: str = field(metadata={"help": "Checkpoint folder (model + DepthLMProcessor)."})
    data: str = field(metadata={"help": "Images as JSONL[:IMAGE_ROOT] (curated format; `image` and `intrinsics`)."})
    output_dir: str = field(default="predictions", metadata={"help": "Folder for the point clouds and depth maps."})
    num_points: int = field(default=10_000, metadata={"help": "Grid queries per image (the paper uses 10,000)."})
    batch_size: int = field(default=16, metadata={"help": "Queries per generate call."})
    max_new_tokens: int = field(default=8, metadata={"help": "Tokens generated per query after the prefix."})
    preset: PresetName | None = field(default=None, metadata={"help": PRESET_HELP})
    device: str | None = field(default=None, metadata={"help": "Torch device (default: this rank's GPU, else CPU)."})
    overwrite: bool = field(default=False, metadata={"help": "Predict again images finished by another run."})

    def __post_init__(self) -> None:
        spec = parse_dataset_spec(self.data, "data")
        check_output_dir(self.output_dir, "output_dir", {"model": self.model, "data": spec.jsonl})
        if isinstance(self.num_points, bool) or self.num_points < 1:
            raise ValueError(f"`num_points` must be a positive integer, got {self.num_points!r}.")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {self.batch_size!r}.")


def make_parser() -> TrlParser:
    """`TrlParser` over :class:`PredictDatasetArguments`."""
    return TrlParser((PredictDatasetArguments,))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv`, predict this rank's images, and return rank 0's summary (`{}` on other ranks)."""
    (args,) = make_parser().parse_args_and_config(argv)
    spec = parse_dataset_spec(args.data, "data")
    with launched_ranks() as ranks:
        predictor = DepthLMPredictor.from_pretrained(
            args.model,
            device=args.device or ranks.device(),
            preset=args.preset,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            show_progress=False,
        )
        summary = run_dense(
            predictor, args.model, spec.jsonl, spec.image_root, args.output_dir, args.num_points, ranks, args.overwrite
        )
    if summary:
        print(f"{summary['images']} images: {summary['predicted']} predicted, {summary['resumed']} already done; "
              f"skipped lines: {summary['skipped'] or 'none'}.")  # fmt: skip
    return summary


if __name__ == "__main__":
    main()
