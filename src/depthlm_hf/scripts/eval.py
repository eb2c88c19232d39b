"""`depthlm eval`: a model (or a constant baseline) on DepthLM benchmarks, paper-style tables, resumable.

    depthlm eval --model runs/qwen2.5-vl-3b-depthlm --data ibims1=data/ibims1/ibims1_val.jsonl:data/ibims1
    depthlm eval --model constant:2.0 --data ibims1=/path/ibims1_val.jsonl --num_samples all

`--data NAME=JSONL[:IMAGE_ROOT]` (repeatable; IMAGE_ROOT defaults to the jsonl's folder) names a curated
jsonl file. Each dataset is evaluated on its fixed evaluation set (`depthlm_hf.data.EvaluationView`:
`num_samples` (record, pixel) pairs drawn once from `seed`, no crop, pixels whose marker fits), for every
task in `--tasks`. The output folder gets, per dataset and task, `predictions.jsonl` (one line per sample,
appended as the run goes, so an interrupted run resumes where it stopped), and overall `results.json`,
`results.csv`, `results.md` and plots (delta1 per dataset, predicted vs true).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm
from trl import TrlParser

from depthlm_hf.data import EvaluationView, InvalidRecordError, load_curated
from depthlm_hf.geometry import CameraIntrinsics, unify_focal_length
from depthlm_hf.metrics import depth_metrics
from depthlm_hf.metrics.report import (
    csv_rows,
    headline_table,
    metrics_table,
    plot_metric_bars,
    plot_predicted_vs_true,
    write_csv,
)
from depthlm_hf.prompting.markers import MarkerStyle, marker_fits
from depthlm_hf.prompting.processing import PRESETS
from depthlm_hf.tasks import text as answers
from depthlm_hf.tasks.samples import build_sample


@dataclass
class EvalArguments:
    """Arguments of `depthlm eval`."""

    model: str = field(metadata={"help": "Checkpoint folder (model + DepthLMProcessor) or `constant:VALUE`."})
    data: list[str] = field(
        default_factory=list, metadata={"help": "Datasets as NAME=JSONL[:IMAGE_ROOT], one or more."}
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
            raise ValueError("`data` is required: one or more NAME=JSONL[:IMAGE_ROOT].")
        if self.num_samples != "all" and not (self.num_samples.isdigit() and int(self.num_samples) > 0):
            raise ValueError(f"`num_samples` must be a positive integer or 'all', got {self.num_samples!r}.")
        for task in self.tasks:
            answers.get_task(task)
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown `preset` {self.preset!r}. Available: {', '.join(PRESETS)}.")

    @property
    def sample_count(self) -> int | None:
        return None if self.num_samples == "all" else int(self.num_samples)


def make_parser() -> TrlParser:
    """`TrlParser` over :class:`EvalArguments` (`--config eval.yaml` sets defaults, flags override)."""
    return TrlParser((EvalArguments,))


def parse_data_spec(spec: str) -> tuple[str, Path, Path]:
    """`NAME=JSONL[:IMAGE_ROOT]` -> (name, jsonl path, image root); the root defaults to the jsonl's folder.

    >>> parse_data_spec("ibims1=data/ibims1/val.jsonl:data/ibims1")
    ('ibims1', PosixPath('data/ibims1/val.jsonl'), PosixPath('data/ibims1'))
    >>> parse_data_spec("nyu=nyu.jsonl")[2]
    PosixPath('.')
    """
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"`data` entries must look like NAME=JSONL[:IMAGE_ROOT], got {spec!r}.")
    jsonl, sep, root = rest.partition(".jsonl:")
    jsonl = jsonl + ".jsonl" if sep else jsonl
    return name, Path(jsonl), Path(root) if sep else Path(jsonl).parent


# ------------------------------------------------------------------------------------------------ models
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


# ----------------------------------------------------------------------------------------------- samples
def _rng(seed: int, index: int, task: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, sum(map(ord, task))]))


def build_samples(source, processor, task: str, num_samples: int | None, seed: int) -> list[dict[str, Any]]:
    """The fixed evaluation samples of `task`: `{"id", "record_index", "point_indices", "label", "fields"}`.

    Single-point tasks use the (record, pixel) pairs of `EvaluationView`; "two_point_distance" pairs each
    of them with another eligible pixel of the same record; "translation" takes records with a second
    view. Question fields (speed, time) come from a generator seeded by `(seed, id, task)`.
    """
    paths = source.with_paths()
    if task == "translation":
        return _translation_samples(paths, num_samples, seed)
    view_task = task if task in ("distance", "z_distance") else "distance"
    view = EvaluationView(paths, processor, num_samples=num_samples, seed=seed, task=view_task)
    samples, record = [], None
    for k, (record_index, point_index) in enumerate(view.pairs.tolist()):
        if record is None or record["index"] != record_index:
            record = paths[record_index]
            markable = _markable(processor, record)
        candidates = markable if task == "two_point_distance" else [point_index]
        if task == "two_point_distance":  # the view's pixel is always one of the two points
            others = [i for i in markable if i != point_index]
            if not others:
                continue
            candidates = [point_index, int(_rng(seed, k, task).choice(others))]
        sample = build_sample(task, record, _rng(seed, k, task), candidates=candidates)
        samples.append(
            {
                "id": k,
                "record_index": record_index,
                "point_indices": list(sample.point_indices),
                "label": float(sample.value),
                "fields": sample.fields,
            }
        )
    return samples


def _translation_samples(paths, num_samples: int | None, seed: int) -> list[dict[str, Any]]:
    ids = []
    for index in range(len(paths)):
        try:
            if paths[index].get("translation") is not None:
                ids.append(index)
        except ValueError:  # an invalid record: the curated loader says why
            continue
    if num_samples is not None and num_samples < len(ids):
        ids = sorted(np.random.default_rng(seed).choice(ids, size=num_samples, replace=False).tolist())
    samples = []
    for k, index in enumerate(ids):
        value = build_sample("translation", paths[index], _rng(seed, k, "translation")).value
        samples.append({"id": k, "record_index": index, "point_indices": [], "label": float(value), "fields": {}})
    return samples


def _markable(processor, record) -> list[int]:
    """Indices of the record's pixels whose marker fits in the focal-unified image."""
    transform = processor.focal_transform(record["intrinsics"])
    mapped = np.rint(transform.map_points(record["pixel_coords"]))
    fits = marker_fits(mapped, transform.out_width, transform.out_height, processor.marker_style)
    return np.flatnonzero(fits).tolist()


# -------------------------------------------------------------------------------------------- predicting
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
        for spec in args.data:
            name, jsonl, root = parse_data_spec(spec)
            source = load_curated(jsonl, root, dataset=name)
            per_dataset[name] = run_dataset_task(model, args, name, source, task, out / name / task)
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


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse `argv` (default: `sys.argv[1:]`), evaluate, print the tables and return the results."""
    (args,) = make_parser().parse_args_and_config(argv)
    return evaluate(args)


if __name__ == "__main__":
    main()
