"""The runner of `depthlm eval`: a model (or a constant baseline) answers the fixed evaluation set of every
dataset and task; predictions are appended as they come (an interrupted run resumes), then metrics, tables
and plots are written. Launched on several ranks (`accelerate launch`, `torchrun`), the ranks share the work
units of each evaluation set and rank 0 merges the answers and writes everything once.

It lives with the metrics because its product is the metric tables and plots of `depthlm_hf.metrics.report`,
and because the metrics room comes last in the method (prompting, data, training, inference, metrics): it
uses the evaluation sets of `depthlm_hf.data.eval_view` and the predictor of `depthlm_hf.inference`, which
import nothing from here.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from depthlm_hf.data import InvalidRecordError
from depthlm_hf.data.eval_view import PROTOCOLS, Protocol, build_samples
from depthlm_hf.data.records import two_view_images
from depthlm_hf.data.skips import (
    DEFAULT_MAX_SKIPPED_FRACTION,
    check_limit,
    check_skipped_fraction,
    describe,
    skip_counts,
    skip_summary,
)
from depthlm_hf.data.sources import DatasetSpec, parse_dataset_specs
from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.inference.ranks import Ranks, launched_ranks
from depthlm_hf.inference.runstate import check_run_info, json_digest, model_fingerprint, write_atomic
from depthlm_hf.metrics.functional import depth_metrics, release_delta1
from depthlm_hf.metrics.predictions import (
    append_rows,
    merge_predictions,
    read_predictions,
    remove_predictions,
    write_rows,
)
from depthlm_hf.metrics.report import (
    csv_rows,
    headline_table,
    metrics_table,
    plot_metric_bars,
    plot_predicted_vs_true,
    write_csv,
)
from depthlm_hf.prompting.markers import MarkerStyle
from depthlm_hf.prompting.presets import PRESETS, PresetName
from depthlm_hf.prompting.query_inputs import focal_transform, markable_points, point_array
from depthlm_hf.resources import check_model_source, check_output_dir, resolve_device
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
    protocol: Protocol = field(
        default="fixed",
        metadata={
            "help": "'fixed': `num_samples` pairs drawn with `seed` (or 'all'); 'official': the official release's "
            "128 distance samples (image k mod N, one pixel per slot from random.seed(42)), and its scoring as "
            "`release_delta1` beside delta1 (math-verify's reading, negatives hit); see docs/official.md."
        },
    )
    tasks: list[str] = field(default_factory=lambda: ["distance"], metadata={"help": "Tasks to evaluate."})
    output_dir: str = field(default="eval_results", metadata={"help": "Folder for predictions, results, plots."})
    seed: int = field(default=0, metadata={"help": "Seed of the evaluation set (fixed across runs)."})
    batch_size: int = field(default=16, metadata={"help": "Queries per generate call."})
    max_new_tokens: int = field(default=8, metadata={"help": "Tokens generated per query after the prefix."})
    preset: PresetName | None = field(
        default=None,
        metadata={
            "help": "Processor preset: for `constant:` the geometry that decides eligible pixels (default paper); "
            "for a checkpoint without saved DepthLM settings, the preset to load it with (needed unless it holds the "
            "official release's files, which select official_pixtral)."
        },
    )
    plots: bool = field(default=True, metadata={"help": "Draw delta1 bars and predicted-vs-true plots."})
    overwrite: bool = field(default=False, metadata={"help": "Discard saved predictions instead of resuming."})
    device: str | None = field(default=None, metadata={"help": "Torch device (default: cuda if available)."})
    max_skipped_fraction: float = field(
        default=DEFAULT_MAX_SKIPPED_FRACTION,
        metadata={
            "help": "Largest share of records left out of an evaluation set, or of its samples skipped for "
            "unreadable images, that a run accepts (0..1); above it the run fails."
        },
    )
    update_card: bool = field(
        default=False, metadata={"help": "Write the figures into the checkpoint's model card (README.md)."}
    )

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("`data` is required: one or more [NAME=]JSONL[:IMAGE_ROOT].")
        self.data_specs()
        if self.num_samples != "all" and not (self.num_samples.isdigit() and int(self.num_samples) > 0):
            raise ValueError(f"`num_samples` must be a positive integer or 'all', got {self.num_samples!r}.")
        for task in self.tasks:
            answers.get_task(task)
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"`protocol` must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}.")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"Unknown `preset` {self.preset!r}. Available: {', '.join(PRESETS)}.")
        for name in ("batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {getattr(self, name)}.")
        if self.seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0 (it seeds numpy's SeedSequence), got {self.seed}.")
        resolve_device(self.device)
        check_limit(self.max_skipped_fraction)
        if self.model.startswith("constant:"):
            constant_value(self.model)
        else:
            check_model_source(self.model, "model")
            if self.protocol == "official":
                answers.release_answer(None)  # its scoring reads answers with math-verify: missing, fail now
        model = None if self.model.startswith("constant:") else self.model
        inputs = {"model": model, **{f"data {spec.name!r}": spec.jsonl for spec in self.data_specs()}}
        check_output_dir(self.output_dir, "output_dir", inputs)

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
        self.processor = _Geometry(PRESETS[preset])


class _Geometry:
    """What the evaluation view needs from a processor to pick eligible pixels (`markable`), without a tokenizer."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.unified_focal_length, self.focal_mode = float(settings["unified_focal_length"]), settings["focal_mode"]
        self.pixel_map = settings["pixel_map"]
        self.marker_style = MarkerStyle.from_dict(settings["marker"])

    def markable(self, intrinsics, points):
        camera, focal = CameraIntrinsics.from_list(intrinsics), self.unified_focal_length
        transform = focal_transform(camera, focal, self.focal_mode, self.pixel_map)
        return markable_points(point_array(points), camera, transform, self.marker_style, self.pixel_map, focal)


def constant_value(model: str) -> float:
    """The answer of the constant baseline `constant:VALUE`: a finite number > 0 [m], else a ValueError.

    >>> constant_value("constant:2.5")
    2.5
    >>> constant_value("constant:nan")
    Traceback (most recent call last):
    ...
    ValueError: `model` constant must be a finite number > 0, e.g. 'constant:2.0', got 'constant:nan'.
    """
    try:
        value = float(model.split(":", 1)[1])
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`model` constant must be a finite number > 0, e.g. 'constant:2.0', got {model!r}.")
    return value


def load_model(args: EvalArguments, device: str | None = None):
    """A `ConstantModel` for `constant:VALUE`, else a `DepthLMPredictor` from the checkpoint folder.

    `device` (e.g. this rank's GPU) overrides `args.device`.
    """
    if args.model.startswith("constant:"):
        return ConstantModel(constant_value(args.model), args.preset or "paper")
    from depthlm_hf.inference.predictor import DepthLMPredictor

    return DepthLMPredictor.from_pretrained(
        args.model,
        device=device or args.device,
        preset=args.preset,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
    )


def work_units(samples: list[dict[str, Any]], task: str, size: int) -> list[list[dict[str, Any]]]:
    """The evaluation set cut into the units that ranks share and resume: fixed by the set, not by the run.

    One unit per record for the one-image point tasks (one resize shared by its queries), else slices of
    `size`. Every run, whatever its number of ranks or what it resumes, asks the model the same batches, so
    the answers are the same as in one uninterrupted process.

    >>> rows = [{"record_index": r} for r in (0, 0, 1, 2, 2)]
    >>> [len(unit) for unit in work_units(rows, "distance", 4)], [len(u) for u in work_units(rows, "speed", 2)]
    ([2, 1, 2], [2, 2, 1])
    """
    if answers.get_task(task).is_per_pixel():
        units: list[list[dict[str, Any]]] = []
        for sample in samples:
            if units and units[-1][0]["record_index"] == sample["record_index"]:
                units[-1].append(sample)
            else:
                units.append([sample])
        return units
    return [samples[start : start + size] for start in range(0, len(samples), size)]


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
    if answers.get_task(task).is_per_pixel():
        record = source[chunk[0]["record_index"]]
        points = np.asarray(record["pixel_coords"])[[s["point_indices"][0] for s in chunk]]
        out = model.predict(record["image"], record["intrinsics"], points, task=task, progress=False)
    else:
        rows = []
        for sample in chunk:
            record = source[sample["record_index"]]
            if answers.get_task(task).num_images == 2:
                images = two_view_images(processor, record)
            else:
                points = np.asarray(record["pixel_coords"])[sample["point_indices"]]
                images = [processor.prepare(record["image"], record["intrinsics"], points).image]
            rows.append({"images": images, "prompt": processor.task_messages(task, **sample["fields"])})
        out = model.predict_rows(rows, task=task, progress=False)
    return [
        {"prediction": v, "confidence": None if math.isnan(c) else float(c), "text": t}
        for v, c, t in zip(out.values, out.confidence, out.texts, strict=True)
    ]


def run_info(
    args: EvalArguments, fingerprint: dict[str, Any], name: str, source, task: str, samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a resumed run must share with the saved one: model identity, settings and the evaluation set."""
    return {
        "model": args.model,
        "fingerprint": fingerprint,
        "max_new_tokens": args.max_new_tokens,
        "dataset": name,
        "jsonl": str(source.jsonl_path),
        "task": task,
        "num_samples": args.num_samples,
        "protocol": args.protocol,
        "seed": args.seed,
        "evaluation_set": {"samples": len(samples), "sha256": json_digest(samples)},
    }


def run_dataset_task(
    model,
    args: EvalArguments,
    name: str,
    source,
    task: str,
    folder: Path,
    ranks: Ranks | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Evaluate one dataset on one task with this rank's share of the work; rank 0 returns the metrics.

    Saved predictions in `folder` (`depthlm_hf.metrics.predictions`) are reused when `run.json` matches this
    run (model fingerprint, settings, evaluation set); a mismatch raises unless `args.overwrite`.
    """
    ranks = ranks or Ranks()
    scan: Counter[str] = Counter()
    samples = build_samples(source, model.processor, task, args.sample_count, args.seed, args.protocol, stats=scan)
    skipped_records = skip_summary(scan["ok"] + sum(skip_counts(scan).values()), skip_counts(scan))
    # On every rank (all raise together); printed once.
    _report_skips(f"{name}/{task} at start", skipped_records, args.max_skipped_fraction, "records", ranks.is_main)
    info = run_info(args, fingerprint or model_fingerprint(args.model), name, source, task, samples)
    info_path = folder / "run.json"
    check_run_info(info_path, info, args.overwrite)  # on every rank, so that all raise together
    if ranks.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        if args.overwrite:
            remove_predictions(folder)
        write_atomic(info_path, json.dumps(info, indent=1))
    ranks.barrier()
    done, ignored = read_predictions(folder)
    ranks.barrier()  # every rank has read the saved rows before any rank appends
    if ignored and ranks.is_main:
        print(f"{name}/{task}: ignored {ignored} incomplete or unreadable prediction line(s); asking again.")
    todo = [u for u in work_units(samples, task, max(args.batch_size * 4, 1)) if any(s["id"] not in done for s in u)]
    mine = ranks.shard(todo)
    start = time.perf_counter()
    desc = f"{name}/{task}" + (f" ({ranks.name()})" if ranks.distributed else "")
    with (
        append_rows(folder, ranks) as f,
        tqdm(total=sum(map(len, mine)), desc=desc, unit="q", disable=not ranks.is_main) as bar,
    ):
        for unit in mine:
            answers_ = predict_chunk(model, source, unit, task)
            write_rows(f, [{**sample, **answer} for sample, answer in zip(unit, answers_, strict=True)])
            bar.update(len(unit))
    ranks.barrier()
    if not ranks.is_main:
        return None
    merged = merge_predictions(folder, [s["id"] for s in samples])
    rows = [r for r in merged if "skipped" not in r]
    reasons = Counter(r["skipped"] for r in merged if "skipped" in r)
    skipped_samples = skip_summary(len(samples), dict(sorted(reasons.items())))
    _report_skips(f"{name}/{task} at end", skipped_samples, args.max_skipped_fraction, "samples")
    if not rows:
        raise ValueError(
            f"`data` {name!r} has no sample to evaluate for task {task!r} ({len(samples)} samples, "
            f"{describe('records', skipped_records)}): check the dataset or drop the task."
        )
    metrics = depth_metrics([r["prediction"] for r in rows], [r["label"] for r in rows], task=task)
    if args.protocol == "official":  # and the release's scoring: math-verify's reading of the text, its hit rule
        values = [r["prediction"] if r.get("text") is None else answers.release_answer(r["text"]) for r in rows]
        metrics["release_delta1"] = release_delta1(values, [r["label"] for r in rows])
    metrics["skipped_samples"] = len(samples) - len(rows)
    metrics["skipped_sample_reasons"] = skipped_samples["reasons"]
    metrics["skipped_records"] = skipped_records
    metrics["seconds"] = time.perf_counter() - start
    metrics["resumed_samples"] = len(samples) - sum(map(len, todo))
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


def _load(spec: DatasetSpec, model) -> Any:
    """The dataset's records, images up to the model processor's `max_image_pixels` (a raised limit holds)."""
    return spec.load(getattr(model.processor, "max_image_pixels", None))


def _report_skips(what: str, summary: dict[str, Any], limit: float, unit: str, show: bool = True) -> None:
    """Print what was skipped (always: an evaluation set never shrinks silently) and hold it to `limit`."""
    if show:
        print(describe(what, summary, unit))
    check_skipped_fraction(what, summary, limit, unit)


def evaluate(args: EvalArguments) -> dict[str, Any]:
    """Run every dataset and task; write results.{json,csv,md} and plots; return the results.

    Under `accelerate launch` or `torchrun` every rank answers its share (`depthlm_hf.inference.ranks`) and
    rank 0 merges, writes and returns the results; the other ranks return `{}`.
    """
    with launched_ranks() as ranks:
        return _evaluate(args, ranks)


def _evaluate(args: EvalArguments, ranks: Ranks) -> dict[str, Any]:
    model = load_model(args, None if args.device or not ranks.distributed else ranks.device())
    fingerprint = model_fingerprint(args.model)
    out = Path(args.output_dir)
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    csv_all, tables = [], []
    for task in args.tasks:
        per_dataset = {}
        for spec in args.data_specs():
            folder = out / spec.name / task
            per_dataset[spec.name] = run_dataset_task(
                model, args, spec.name, _load(spec, model), task, folder, ranks, fingerprint
            )
        if not ranks.is_main:
            continue
        results[task] = per_dataset
        csv_all += csv_rows(args.model, task, per_dataset)
        tables.append(f"### {task}\n\n{headline_table(per_dataset, args.model)}\n\n{metrics_table(per_dataset)}")
        if args.plots:
            plot_metric_bars(out / f"delta1_{task}.png", per_dataset, f"{args.model}: delta1 ({task})")
    if not ranks.is_main:
        return {}
    arguments = {**asdict(args), "world_size": ranks.world_size}
    write_atomic(out / "results.json", json.dumps({"arguments": arguments, "results": results}, indent=2))
    write_csv(out / "results.csv", csv_all)
    report = "\n\n".join(tables)
    write_atomic(out / "results.md", report + "\n")
    print(report)
    return results
