"""Model cards for DepthLM checkpoints: what the model was trained from, on what, and how.

The card (`README.md` with Hub metadata, rendered through `huggingface_hub.ModelCard`) states the base model,
the data mixture, the visual-prompt settings (unified focal length, marker, crops), the training recipe and
evaluation figures when known. Its facts are also kept in `depthlm_card.json` beside it, so that an
evaluation run can add figures later with `update_model_card`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from depthlm_hf.prompting.model_window import describe as describe_window
from depthlm_hf.tasks.text import DEFAULT_TASK

CARD_INFO_FILE = "depthlm_card.json"

_CITATION = """@article{cai2025depthlm,
  title   = {DepthLM: Metric Depth from Vision Language Models},
  author  = {Cai, Zhipeng and Yeh, Ching-Feng and Hu, Xu and Liu, Zhuang and Meyer, Gregory and Lei, Xinjie
             and Zhao, Changsheng and Li, Shang-Wen and Chandra, Vikas and Shi, Yangyang},
  journal = {arXiv preprint arXiv:2509.25413},
  year    = {2025}
}"""

_RECIPE_KEYS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "max_grad_norm",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "world_size",
    "max_steps",
    "num_train_epochs",
    "seed",
    "bf16",
    "num_generations",
    "beta",
    "max_completion_length",
    "reward_funcs",
)


@dataclass
class ModelCardInfo:
    """Facts a DepthLM model card states.

    Args:
        base_model: the Hub model the weights descend from (for a run started from a local DepthLM folder,
            that folder's own base model).
        started_from: the local folder training started from, when it was not `base_model` itself.
        method: "sft" or "grpo".
        datasets: training sources with their sampling weights, e.g. `{"ibims1.jsonl": 1.0}`.
        tasks: trained tasks with their sampling weights, e.g. `{"distance": 1.0}`.
        unified_focal_length: focal length f* [px] images are resized to.
        focal_mode: "xy" or "fx" focal unification.
        marker: marker style (shape, size, color, ...).
        crop: crop settings (width/height ranges [px], position), empty when images are not cropped.
        window: the processor's `window` setting, what the model is asked on (`depthlm_hf.prompting.model_window`;
            None: the whole unified image).
        recipe: training hyperparameters (learning rate, schedule, batch sizes, steps, ...).
        eval_results: figures per evaluation dataset, e.g. `{"ibims1": {"delta1": 0.91, "absrel": 0.08}}`.
        hub_model_id: the Hub repository the model is pushed to, if any.
        peft: whether the folder holds a LoRA adapter rather than full weights.
        license: the weights' license as a Hub license id (e.g. "apache-2.0"); the base model's terms apply.
    """

    base_model: str
    started_from: str | None = None
    method: Literal["sft", "grpo"] = "sft"
    datasets: dict[str, float] = field(default_factory=dict)
    tasks: dict[str, float] = field(default_factory=lambda: {"distance": 1.0})
    unified_focal_length: float = 1000.0
    focal_mode: str = "xy"
    marker: dict[str, Any] = field(default_factory=dict)
    crop: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    eval_results: dict[str, dict[str, float]] = field(default_factory=dict)
    hub_model_id: str | None = None
    peft: bool = False
    license: str | None = None


CARD_METRICS = ("delta1", "delta2", "delta3", "abs_rel", "rmse")
"""Figures a card shows and lists in its `model-index`, from `depthlm eval` results."""


def is_hub_id(name: str | None) -> bool:
    """Whether `name` names a Hub repository (`owner/name`) rather than a local folder or a random init.

    >>> is_hub_id("Qwen/Qwen2.5-VL-3B-Instruct"), is_hub_id("tiny"), is_hub_id(None)
    (True, False, False)
    """
    if not name or name.count("/") != 1 or Path(name).exists():
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def card_eval_results(results: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """`depthlm eval` results (task -> dataset -> metrics) as card figures (dataset -> metric -> value).

    The distance task is the dataset's own entry; other tasks are `dataset/task`. Only finite `CARD_METRICS`.

    >>> card_eval_results({"distance": {"ibims1": {"delta1": 0.9, "num_samples": 8}}, "speed": {"x": {"delta1": 0.5}}})
    {'ibims1': {'delta1': 0.9}, 'x/speed': {'delta1': 0.5}}
    """
    figures = {}
    for task, per_dataset in results.items():
        for dataset, metrics in per_dataset.items():
            name = dataset if task == DEFAULT_TASK else f"{dataset}/{task}"
            kept = {m: float(metrics[m]) for m in CARD_METRICS if m in metrics and math.isfinite(metrics[m])}
            if kept:
                figures[name] = kept
    return figures


def recipe_from_args(training_args: Any) -> dict[str, Any]:
    """The card's recipe entries read from a trainer config (those it has), plus the global batch size."""
    recipe = {}
    for key in _RECIPE_KEYS:
        value = getattr(training_args, key, None)
        if value is not None:
            recipe[key] = getattr(value, "value", value)  # enums (scheduler type) as their string
    if {"per_device_train_batch_size", "gradient_accumulation_steps", "world_size"} <= recipe.keys():
        recipe["global_batch_size"] = (
            recipe["per_device_train_batch_size"] * recipe["gradient_accumulation_steps"] * recipe["world_size"]
        )
    return recipe


def _weights(names: list[str], weights: list[float] | None) -> dict[str, float]:
    weights = weights or [1.0] * len(names)
    total = sum(weights)
    return {name: round(w / total, 6) for name, w in zip(names, weights, strict=True)}


def card_info_from_args(
    script_args: Any, training_args: Any, processor: Any, base_model: str, method: str, peft: bool = False
) -> ModelCardInfo:
    """A `ModelCardInfo` from the scripts' arguments (`DepthLMScriptArguments`, a trainer config) and the
    `DepthLMProcessor` the model was trained with."""
    if script_args.dataset:
        specs = script_args.dataset_specs()
        datasets = _weights([spec.name for spec in specs], [spec.weight for spec in specs])
    else:
        datasets = {f"synthetic:{script_args.synthetic} ({script_args.synthetic_scenes} scenes)": 1.0}
    crop = {}
    if script_args.crop_width is not None:
        crop = {
            "width": list(script_args.crop_width),
            "height": list(script_args.crop_height),
            "position": script_args.crop_position,
        }
        if script_args.aspect_jitter:
            crop["aspect_jitter"] = script_args.aspect_jitter
    started_from = None
    if Path(base_model).is_dir():  # e.g. GRPO from an SFT output: name the Hub model it came from
        started_from = base_model
        if (Path(base_model) / CARD_INFO_FILE).is_file():
            base_model = read_card_info(base_model).base_model
    return ModelCardInfo(
        base_model=base_model,
        started_from=started_from,
        method=method,  # type: ignore[arg-type]
        datasets=datasets,
        tasks=_weights(list(script_args.tasks), script_args.task_weights),
        unified_focal_length=processor.unified_focal_length,
        focal_mode=processor.focal_mode,
        marker=dict(processor.marker),
        crop=crop,
        window=getattr(processor, "window", None),
        recipe=recipe_from_args(training_args),
        hub_model_id=getattr(training_args, "hub_model_id", None),
        peft=peft,
    )


def _table(rows: dict[str, Any], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows.items()]
    return "\n".join(lines)


def _eval_table(results: dict[str, dict[str, float]]) -> str:
    metrics = sorted({name for figures in results.values() for name in figures})
    lines = ["| dataset | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for dataset, figures in results.items():
        cells = [f"{figures[m]:.4g}" if m in figures else "" for m in metrics]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_model_card(info: ModelCardInfo, name: str | None = None) -> str:
    """The card text: Hub metadata (YAML front matter) and a Markdown body.

    The title is the Hub repository's name, else `name` (the folder's), else "DepthLM model". Metadata:
    `base_model` when it is a Hub id (not a local folder or a random init), `datasets` that are Hub ids,
    `license` when known, and a `model-index` of the evaluation figures.

    >>> text = render_model_card(ModelCardInfo("Qwen/Qwen2.5-VL-3B-Instruct", datasets={"ibims1": 1.0}))
    >>> text.splitlines()[1], "unified focal length: 1000 px" in text
    ('base_model: Qwen/Qwen2.5-VL-3B-Instruct', True)
    """
    title = info.hub_model_id.split("/")[-1] if info.hub_model_id else name or "DepthLM model"
    data = ModelCardData(
        base_model=info.base_model if is_hub_id(info.base_model) else None,
        datasets=[d for d in info.datasets if is_hub_id(d)] or None,
        license=info.license,
        library_name="peft" if info.peft else "transformers",
        pipeline_tag="image-text-to-text",
        tags=["depthlm", "metric-depth", "visual-prompting", "trl", info.method],
        model_name=title,
        eval_results=[
            EvalResult(
                task_type="depth-estimation",
                task_name="Metric depth of marked pixels",
                dataset_type=dataset,
                dataset_name=dataset,
                metric_type=metric,
                metric_name=metric,
                metric_value=value,
            )
            for dataset, figures in info.eval_results.items()
            for metric, value in figures.items()
        ]
        or None,
    )
    method = {"sft": "supervised fine-tuning (TRL `SFTTrainer`)", "grpo": "GRPO (TRL `GRPOTrainer`)"}[info.method]
    repo = info.hub_model_id or "path/to/this/folder"
    parts = [
        f"# {title}",
        f"A DepthLM model: `{info.base_model}` trained by {method} to answer metric distances of "
        "marked pixels in text, with no new head or loss (DepthLM, arXiv 2509.25413)."
        + (f" Training started from `{info.started_from}`." if info.started_from else ""),
        "## Visual prompt",
        f"- unified focal length: {info.unified_focal_length:g} px (focal mode `{info.focal_mode}`)",
        "- marker: " + (", ".join(f"{k} {v}" for k, v in info.marker.items()) or "processor default"),
        "- training crops: " + (", ".join(f"{k} {v}" for k, v in info.crop.items()) or "none"),
        f"- asked on: {describe_window(info.window)} (the processor's `window` setting; `DepthLMPredictor` applies it)",
        "## Training data",
        _table(info.datasets, ("source", "weight")),
        "",
        _table(info.tasks, ("task", "weight")),
        "## Recipe",
        _table(info.recipe, ("hyperparameter", "value")) if info.recipe else "Not recorded.",
        "## Evaluation",
        _eval_table(info.eval_results) if info.eval_results else "No evaluation figures recorded yet.",
        "## Usage",
        "```python\n"
        "from transformers import AutoModelForImageTextToText\n"
        "from depthlm_hf.prompting.processing import DepthLMProcessor\n\n"
        f'model = AutoModelForImageTextToText.from_pretrained("{repo}")\n'
        f'processor = DepthLMProcessor.from_pretrained("{repo}")\n'
        "inputs = processor(images=image, intrinsics=[fx, fy, cx, cy, width, height], points=[[x, y]])\n"
        "output = model.generate(**inputs, max_new_tokens=32)\n"
        'answer = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :])[0]\n'
        "metres = processor.parse_answer(answer)\n"
        "```",
        "## Citation",
        f"```bibtex\n{_CITATION}\n```",
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(parts) + "\n"


def write_model_card(folder: str | Path, info: ModelCardInfo) -> Path:
    """Write `README.md` and `depthlm_card.json` into `folder`; returns the card's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CARD_INFO_FILE).write_text(json.dumps(asdict(info), indent=2, sort_keys=True) + "\n")
    path = folder / "README.md"
    ModelCard(render_model_card(info, folder.resolve().name)).save(path)
    return path


def read_card_info(folder: str | Path) -> ModelCardInfo:
    """The `ModelCardInfo` saved in `folder` by `write_model_card`."""
    path = Path(folder) / CARD_INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {CARD_INFO_FILE} in {str(folder)!r}: the folder was not written by depthlm_hf.")
    return ModelCardInfo(**json.loads(path.read_text()))


def update_model_card(folder: str | Path, eval_results: dict[str, dict[str, float]]) -> Path:
    """Add or replace evaluation figures (per dataset) in the card of `folder`."""
    info = read_card_info(folder)
    info.eval_results = {**info.eval_results, **eval_results}
    return write_model_card(folder, info)


class ModelCardMixin:
    """Trainer mixin: every card the trainer writes (checkpoints, `push_to_hub`) is the DepthLM card.

    TRL's trainers call `create_model_card` when saving a checkpoint and when pushing to the Hub; set
    `card_info` on the trainer and the DepthLM card is written to `args.output_dir` instead of TRL's.
    """

    card_info: ModelCardInfo | None = None

    def create_model_card(self, model_name: str | None = None, dataset_name: str | None = None, tags=None) -> None:
        if self.card_info is None:
            return super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)  # type: ignore[misc]
        if self.is_world_process_zero():  # type: ignore[attr-defined]
            write_model_card(self.args.output_dir, self.card_info)  # type: ignore[attr-defined]
