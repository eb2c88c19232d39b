"""`depthlm demo`: a tiny VLM learns metric depth from scratch on CPU, evaluated against constant baselines.

    depthlm demo --output-dir demo_out                     # full method: markers + unified focal length
    depthlm demo --output-dir demo_out --fast              # ~20 s smoke run (CI)
    depthlm demo --output-dir demo_focal --ablation focal  # no focal unification (whole frame resized)
    depthlm demo --output-dir demo_marker --ablation marker  # pixel as text coordinates, no marker

The run itself (scenes, training, evaluation, pictures, point cloud, report) is `depthlm_hf.demo.run.run`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from typing import Any

from trl import TrlParser

from depthlm_hf.demo.run import DemoArguments, run


def make_parser() -> TrlParser:
    """`TrlParser` over :class:`~depthlm_hf.demo.run.DemoArguments`."""
    return TrlParser((DemoArguments,))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv` (default: `sys.argv[1:]`), run the demo, print its headline and return the report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Accept the dashed spelling of the documented flags as well as TRL's underscores.
    argv = [
        "--output_dir" + a[len("--output-dir") :] if a == "--output-dir" or a.startswith("--output-dir=") else a
        for a in argv
    ]
    (args,) = make_parser().parse_args_and_config(argv)
    report = run(args, "depthlm demo " + shlex.join(argv))
    print(
        f"delta1 {report['model_delta1']:.3f} (best constant {report['best_constant_delta1']:.3f}, "
        f"2 m {report['constant_2_delta1']:.3f}), AbsRel {report['model_abs_rel']:.3f}, "
        f"parse rate {report['parse_rate']:.3f}, {report['wall_seconds']:.0f} s -> {args.output_dir}/report.md"
    )
    return report


if __name__ == "__main__":
    main()
