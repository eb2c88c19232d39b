"""The runner of `depthlm eval`: a model (or a constant baseline) answers the fixed evaluation set of every
dataset and task; predictions are appended as they come (an interrupted run resumes), then metrics, tables
and plots are written.

It lives with the metrics because its product is the metric tables and plots of `depthlm_hf.metrics.report`,
and because the metrics room comes last in the method (prompting, data, training, inference, metrics): it
uses the evaluation sets of `depthlm_hf.data.evaluation` and the predictor of `depthlm_hf.inference`, which
import nothing from here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from depthlm_hf.data import InvalidRecordError
from depthlm_hf.data.evaluation import build_samples
from depthlm_hf.data.sources import DatasetSpec, parse_dataset_specs
from depthlm_hf.geometry import CameraIntrinsics, unify_focal_length
from depthlm_hf.metrics.functional import depth_metrics
from depthlm_hf.metrics.report import (
    csv_rows,
    headline_table,
    metrics_table,
    plot_metric_bars,
    plot_predicted_vs_true,
    write_csv,
)
from depthlm_hf.prompting.markers import MarkerStyle
from depthlm_hf.prompting.processing import PRESETS
from depthlm_hf.tasks import text as answers


@dataclass
class EvalArguments:
    """Arguments of `depthlm eval`."""

    model: str = field(metadata={"help": "Checkpoint folder (model + DepthLMProcessor) or `constant:VALUE`."})
    data: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Datasets, one or more, as `[NAME=]JSONL[:IMAGE_ROOT]` or, in a config, mappings "
            "`{name, jsonl, image_root}` (`depthlm_hf.data.sources`; names must be unique)."
        },
    )
    num_samples: str = field(default="8192", metadata={"help": "Samples per dataset and task, or 'all'."})
    tasks: list[str] = field(default_factory=lambda: ["distance"], metadata={"help": "Tasks to evaluate."})
    output_dir: str = field(default="eval_results", metadata={"help": "Folder for predictions, results, plots."})
    seed: int = field(default=0, metadata={"help": "Seed of the evaluation set (fixed across runs)."})
    batch_size: int = field(default=16, metadata={"help": "Queries per generate call."})
    max_new_tokens: int = field(default=8, metadata={"help": "Tokens generated per query after the prefix."})
    preset: str = field(default="paper", metadata={"help": "Processor preset whose geometry a constant uses."})
    plots: bool = field(default=True, metadata={"help": "Draw delta1 bars and predicted-vs-true plots."})
    overwrite: bool = field(default=False, metadata={"help": "Discard saved predictions instead of resuming."})
    device: str | None = field(default=None, metadata={"help": "Torch device (default: cuda if available)."})

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("`data` is required: one or more [NAME=]JSONL[:IMAGE_ROOT].")
        self.data_specs()
        if self.num_samples != "all" and not (self.num_samples.isdigit() and int(self.num_samples) > 0):
            raise ValueError(f"`num_samples` must be a positive integer or 'all', got {self.num_samples!r}.")
        for task in self.tasks:
            answers.get_task(task)
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown `preset` {self.preset!r}. Available: {', '.join(PRESETS)}.")

    def data_specs(self) -> list[DatasetSpec]:
        """The `data` entries parsed (unique names)."""
        return parse_dataset_specs(self.data, "data")

    @property
    def sample_count(self) -> int | None:
        return None if self.num_samples == "all" else int(self.num_samples)


class ConstantModel:
    """The constant baseline: answers `value` to every query; `preset` sets which pixels are eligible."""

    def __init__(self, value: float, preset: str = "paper") -> None:
        self.value = float(value)
        settings = PRESETS[preset]
        self.processor = _Geometry(settings["unified_focal_length"], settings["focal_mode"], settings["marker"])


class _Geometry:
    """What the evaluation view needs from a processor to pick eligible pixels, without a tokenizer."""

    def __init__(self, focal: float, mode: str, marker: dict) -> None:
        self.unified_focal_length, self.focal_mode = float(focal), mode
        self.marker_style = MarkerStyle.from_dict(marker)

    def focal_transform(self, intrinsics):
        return unify_focal_length(CameraIntrinsics.from_list(intrinsics), self.unified_focal_length, self.focal_mode)


def load_model(args: EvalArguments):
    """A `ConstantModel` for `constant:VALUE`, else a `DepthLMPredictor` from the checkpoint folder."""
    if args.model.startswith("constant:"):
        try:
            value = float(args.model.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"`model` constant must be a number, e.g. 'constant:2.0', got {args.model!r}.") from None
        return ConstantModel(value, args.preset)
    from depthlm_hf.inference.predictor import DepthLMPredictor

    return DepthLMPredictor.from_pretrained(
        args.model, device=args.device, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
    )


def _chunks(samples: list[dict[str, Any]], task: str, size: int) -> Iterator[list[dict[str, Any]]]:
    """Per record for the one-image point tasks (one resize shared by its queries), else by `size`."""
    if task in ("distance", "z_distance"):
        start = 0
        for end in range(1, len(samples) + 1):
            if end == len(samples) or samples[end]["record_index"] != samples[start]["record_index"]:
                yield samples[start:end]
                start = end
    else:
        for start in range(0, len(samples), size):
            yield samples[start : start + size]


def predict_chunk(model, source, chunk: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Answers for one chunk of samples: `{"prediction", "confidence", "text"}` per sample.

    Samples whose image cannot be read get `{"skipped": reason}` instead: they leave the metrics and are
    counted in `skipped_samples`.
    """
    if isinstance(model, ConstantModel):
        return [{"prediction": model.value, "confidence": None, "text": None} for _ in chunk]
    try:
        return _model_answers(model, source, chunk, task)
    except InvalidRecordError as err:
        if len(chunk) == 1:
            return [{"prediction": None, "confidence": None, "text": None, "skipped": err.reason}]
        return [answer for sample in chunk for answer in predict_chunk(model, source, [sample], task)]


def _model_answers(model, source, chunk: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    processor = model.processor
    if task in ("distance", "z_distance"):
        record = source[chunk[0]["record_index"]]
        points = np.asarray(record["pixel_coords"])[[s["point_indices"][0] for s in chunk]]
        out = model.predict(record["image"], record["intrinsics"], points, task=task, progress=False)
    else:
        rows = []
        for sample in chunk:
            record = source[sample["record_index"]]
            if task == "translation":
                images = [
                    processor.prepare(record[key], record[intr], None).image
                    for key, intr in (("image", "intrinsics"), ("image2", "intrinsics2"))
                ]
            else:
                points = np.asarray(record["pixel_coords"])[sample["point_indices"]]
                images = [processor.prepare(record["image"], record["intrinsics"], points).image]
            rows.append({"images": images, "prompt": processor.task_messages(task, **sample["fields"])})
        out = model.predict_rows(rows, task=task, progress=False)
    return [
        {"prediction": v, "confidence": None if math.isnan(c) else float(c), "text": t}
        for v, c, t in zip(out.values, out.confidence, out.texts, strict=True)
    ]


def run_dataset_task(model, args: EvalArguments, name: str, source, task: str, folder: Path) -> dict[str, Any]:
    """Evaluate one dataset on one task, resuming from `folder/predictions.jsonl`; returns its metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    run_info = {
        "model": args.model,
        "dataset": name,
        "jsonl": str(source.jsonl_path),
        "task": task,
        "num_samples": args.num_samples,
        "seed": args.seed,
    }
    info_path, pred_path = folder / "run.json", folder / "predictions.jsonl"
    if args.overwrite:
        pred_path.unlink(missing_ok=True)
    if pred_path.exists() and info_path.exists() and json.loads(info_path.read_text()) != run_info:
        raise ValueError(
            f"{pred_path} holds predictions of another run ({info_path.read_text().strip()}); "
            f"pass `--overwrite` or another `--output_dir`."
        )
    info_path.write_text(json.dumps(run_info))
    samples = build_samples(source, model.processor, task, args.sample_count, args.seed)
    done = {}
    if pred_path.exists():
        for line in pred_path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["id"]] = row
    todo = [s for s in samples if s["id"] not in done]
    start = time.perf_counter()
    with (
        open(pred_path, "a") as f,
        tqdm(total=len(samples), initial=len(samples) - len(todo), desc=f"{name}/{task}", unit="q") as bar,
    ):
        for chunk in _chunks(todo, task, max(args.batch_size * 4, 1)):
            for sample, answer in zip(chunk, predict_chunk(model, source, chunk, task), strict=True):
                row = {**sample, **answer}
                done[row["id"]] = row
                f.write(json.dumps(row) + "\n")
            f.flush()
            bar.update(len(chunk))
    rows = [done[s["id"]] for s in samples if "skipped" not in done[s["id"]]]
    metrics = depth_metrics([r["prediction"] for r in rows], [r["label"] for r in rows], task=task)
    metrics["skipped_samples"] = len(samples) - len(rows)
    metrics["seconds"] = time.perf_counter() - start
    metrics["resumed_samples"] = len(samples) - len(todo)
    if args.plots and rows:
        unit = answers.get_task(task).unit
        plot_predicted_vs_true(
            folder / "pred_vs_true.png",
            [r["prediction"] for r in rows],
            [r["label"] for r in rows],
            f"{args.model} on {name} ({task})",
            unit,
        )
    return metrics


def evaluate(args: EvalArguments) -> dict[str, Any]:
    """Run every dataset and task; write results.{json,csv,md} and plots; return the results."""
    model = load_model(args)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    csv_all, tables = [], []
    for task in args.tasks:
        per_dataset = {}
        for spec in args.data_specs():
            per_dataset[spec.name] = run_dataset_task(model, args, spec.name, spec.load(), task, out / spec.name / task)
        results[task] = per_dataset
        csv_all += csv_rows(args.model, task, per_dataset)
        tables.append(f"### {task}\n\n{headline_table(per_dataset, args.model)}\n\n{metrics_table(per_dataset)}")
        if args.plots:
            plot_metric_bars(out / f"delta1_{task}.png", per_dataset, f"{args.model}: delta1 ({task})")
    (out / "results.json").write_text(json.dumps({"arguments": asdict(args), "results": results}, indent=2))
    write_csv(out / "results.csv", csv_all)
    report = "\n\n".join(tables)
    (out / "results.md").write_text(report + "\n")
    print(report)
    return results
