"""`depthlm prepare`: dense RGB-D data (or synthetic scenes) to the curated DepthLM format (jsonl + images).

    depthlm prepare --output_dir data/indoor --source synthetic --preset indoor --num_images 1000
    depthlm prepare --output_dir data/mine --source manifest --manifest rgbd.jsonl --depth_scale 1000
    depthlm prepare --dataset nuscenes --root /data/nuscenes --split eval --output_dir data/depthlm/nuscenes

The manifest format and the conversion are documented in `depthlm_hf.data.prepare`; the public datasets'
readers (`--dataset NAME --root ROOT`) in `depthlm_hf.data.public` and docs/data.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from trl import TrlParser

from depthlm_hf.data.prepare import PrepareArguments, prepare


def make_parser() -> TrlParser:
    """`TrlParser` over :class:`PrepareArguments` (`--config prepare.yaml` sets defaults, flags override)."""
    return TrlParser((PrepareArguments,))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv` (default: `sys.argv[1:]`), write the dataset, print and return the summary."""
    (args,) = make_parser().parse_args_and_config(argv)
    summary = prepare(args)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
