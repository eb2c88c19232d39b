"""`depthlm eval`: a model (or a constant baseline) on DepthLM benchmarks, paper-style tables, resumable.

    depthlm eval --model runs/qwen2.5-vl-3b-depthlm --data ibims1=data/ibims1/ibims1_val.jsonl:data/ibims1
    depthlm eval --model constant:2.0 --data ibims1=/path/ibims1_val.jsonl --num_samples all

`--data [NAME=]JSONL[:IMAGE_ROOT]` (repeatable; the syntax of `depthlm sft --dataset`, see
`depthlm_hf.data.sources`) names a curated jsonl file. Each dataset is evaluated on its fixed evaluation
set (`depthlm_hf.data.eval_view`: `num_samples` (record, pixel) pairs drawn once from `seed`, no crop,
pixels whose marker fits), for every task in `--tasks`. The output folder gets, per dataset and task,
`predictions.jsonl` (one line per sample, appended as the run goes, so an interrupted run resumes where it
stopped), and overall `results.json`, `results.csv`, `results.md` and plots (delta1 per dataset, predicted
vs true). The runner is `depthlm_hf.metrics.runner.evaluate`. `--update_card true` writes the figures
into the checkpoint's model card (its `model-index`, `depthlm_hf.training.modelcard`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trl import TrlParser

from depthlm_hf.metrics.runner import EvalArguments, evaluate
from depthlm_hf.training.modelcard import card_eval_results, update_model_card


def make_parser() -> TrlParser:
    """`TrlParser` over :class:`EvalArguments` (`--config eval.yaml` sets defaults, flags override)."""
    return TrlParser((EvalArguments,))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv` (default: `sys.argv[1:]`), evaluate, print the tables and return the results."""
    (args,) = make_parser().parse_args_and_config(argv)
    results = evaluate(args)
    if args.update_card and results and not args.model.startswith("constant:"):  # rank 0 holds the results
        print(f"model card updated: {update_model_card(args.model, card_eval_results(results))}")
    return results


if __name__ == "__main__":
    main()
