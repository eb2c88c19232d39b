"""What a training run is built from: the processor, the model (and its LoRA config), the datasets, the
checkpoint to resume from, and the saved outputs. `depthlm sft` and `depthlm grpo` call these in order.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoModelForImageTextToText, PreTrainedModel
from trl import ModelConfig, get_peft_config

from depthlm_hf.data.grouped import GroupedMixtureView, GroupedTrainingView
from depthlm_hf.data.synthetic.scenes import SyntheticDataset
from depthlm_hf.data.views import MixtureView, TrainingView, TrainingViewConfig, index_dataset
from depthlm_hf.models import families, vision_attention
from depthlm_hf.prompting.presets import checkpoint_preset, preset_settings, saved_processor_config
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.resources import check_model_source, check_weights, no_remote_code
from depthlm_hf.tasks.text import get_task
from depthlm_hf.training.checkpoints import checkpoint_problem, last_complete_checkpoint
from depthlm_hf.training.configs import DepthLMScriptArguments
from depthlm_hf.training.data_report import DataSkipReport
from depthlm_hf.training.modelcard import write_model_card

logger = logging.getLogger(__name__)

TINY = "tiny"
"""`--model_name_or_path tiny` trains the tiny random offline Qwen2.5-VL of `depthlm_hf.models.tiny` (CPU)."""


def load_processor(model_args: ModelConfig, script_args: DepthLMScriptArguments) -> DepthLMProcessor:
    """The `DepthLMProcessor` of the model: its saved DepthLM settings, else `processor_preset` around the
    model's own processor (unset: "official_pixtral" for the official release's files, else the paper's
    inputs for a base VLM); explicit script arguments (focal length, marker, ...) override both."""
    overrides = script_args.processor_overrides()
    name = model_args.model_name_or_path
    if name == TINY:
        from depthlm_hf.models.tiny import tiny_processor

        return _with_overrides(tiny_processor(), overrides)
    check_model_source(name, "model_name_or_path")
    saved = saved_processor_config(name, model_args.model_revision)
    if "depthlm_processor_class" in saved:
        processor = DepthLMProcessor.from_pretrained(name, revision=model_args.model_revision)
        return _with_overrides(processor, overrides)
    chosen = checkpoint_preset(name, saved, script_args.processor_preset, model_args.model_revision, fallback="paper")
    preset = preset_settings(chosen, saved)
    if "marker" in overrides:
        overrides = {**overrides, "marker": {**preset["marker"], **overrides["marker"]}}
    return DepthLMProcessor.from_pretrained(name, revision=model_args.model_revision, **{**preset, **overrides})


def _with_overrides(processor: DepthLMProcessor, overrides: dict[str, Any]) -> DepthLMProcessor:
    if not overrides:
        return processor
    settings = {key: getattr(processor, key) for key in processor.to_dict() if hasattr(processor, key)}
    if "marker" in overrides:
        overrides = {**overrides, "marker": {**processor.marker, **overrides["marker"]}}
    settings = {**settings, **overrides, "chat_template": processor.chat_template}
    settings = {k: v for k, v in settings.items() if k not in ("image_processor", "tokenizer", "processor_class")}
    return type(processor)(processor.image_processor, processor.tokenizer, **settings)


def num_train_samples(training_args: Any) -> int:
    """Samples the run consumes: `max_steps` x the global batch size (`max_steps` must be set)."""
    if training_args.max_steps is None or training_args.max_steps <= 0:
        raise ValueError(
            f"`max_steps` must be set (> 0), got {training_args.max_steps}: the training stream is sized "
            "from it (paper: samples / global batch, e.g. 35M / 1280 = 27344 for Qwen2.5-VL-3B)."
        )
    world = training_args.world_size
    return (
        training_args.max_steps
        * training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * world
    )


def record_sources(script_args: DepthLMScriptArguments, seed: int, max_pixels: int | None = None) -> dict[str, Any]:
    """Record sources by name: the curated datasets (read lazily, images up to `max_pixels`, default the
    loader's), or the synthetic preset's scenes."""
    if script_args.dataset:
        return {spec.name: spec.load(max_pixels) for spec in script_args.dataset_specs()}
    overrides = {}
    if script_args.synthetic_image_size is not None:
        width, height = script_args.synthetic_image_size
        overrides = {"width": (width, width), "height": (height, height)}
    scenes = SyntheticDataset(
        script_args.synthetic,
        num_scenes=script_args.synthetic_scenes,
        seed=seed,
        two_view=any(get_task(task).num_images == 2 for task in script_args.tasks),
        **overrides,
    )
    return {f"synthetic_{script_args.synthetic}": scenes}


def training_view(
    script_args: DepthLMScriptArguments,
    processor: DepthLMProcessor,
    seed: int,
    kind: str,
    report: DataSkipReport | None = None,
) -> Any:
    """The (mixture of) training view(s) of `depthlm_hf.data.views` for the run; `report` scans the sources
    and watches the views (skipped records by reason)."""
    weights = script_args.task_weights or [1.0] * len(script_args.tasks)
    config = TrainingViewConfig(
        crop=script_args.crop_width is not None,
        crop_width=tuple(script_args.crop_width or (1, 1)),
        crop_height=tuple(script_args.crop_height or (1, 1)),
        crop_position=script_args.crop_position,
        aspect_jitter=tuple(script_args.aspect_jitter) if script_args.aspect_jitter else None,
        tasks=dict(zip(script_args.tasks, weights, strict=True)),
    )
    sources = record_sources(script_args, seed, processor.max_image_pixels)
    if script_args.rows_per_image > 1:
        views = {
            name: GroupedTrainingView(
                source, processor, config, seed=seed, row_format=kind, rows_per_image=script_args.rows_per_image
            )
            for name, source in sources.items()
        }
    else:
        views = {
            name: TrainingView(source, processor, config, seed=seed, row_format=kind)
            for name, source in sources.items()
        }
    if report is not None:
        for name, source in sources.items():
            report.scan(name, source)
            report.watch(name, views[name])
    if len(views) == 1:
        return next(iter(views.values()))
    weights = [spec.weight for spec in script_args.dataset_specs()]
    if script_args.rows_per_image > 1:
        return GroupedMixtureView(views, weights=weights, seed=seed, rows_per_image=script_args.rows_per_image)
    return MixtureView(views, weights=weights, seed=seed)


def build_datasets(
    script_args: DepthLMScriptArguments,
    processor: DepthLMProcessor,
    training_args: Any,
    kind: str,
    report: DataSkipReport | None = None,
) -> tuple[Dataset, Dataset | None]:
    """The training dataset of the run, and an evaluation one (other rows of the same views) when
    `eval_samples` > 0; `report` scans the training sources and counts what their views skip."""
    seed = training_args.seed
    view = training_view(script_args, processor, seed, kind, report)
    train = index_dataset(num_train_samples(training_args), view, kind)
    evaluation = None
    if script_args.eval_samples:
        eval_view = training_view(script_args, processor, seed + 1_000_003, kind)
        evaluation = index_dataset(script_args.eval_samples, eval_view, kind)
    return train, evaluation


def _init_deepspeed_comm(training_args: Any) -> None:
    # On CPU (`use_cpu=True`) accelerate starts torch.distributed but not DeepSpeed's communication layer, and
    # ZeRO-3 model construction (`deepspeed.zero.Init`) would then see a world of one process.
    if not training_args.deepspeed or not torch.distributed.is_initialized():
        return
    import deepspeed

    if not deepspeed.comm.is_initialized():
        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())


def load_model(model_args: ModelConfig, training_args: Any) -> PreTrainedModel:
    """The VLM to train, from the Hub or a folder (`tiny`: the tiny random offline Qwen2.5-VL)."""
    _init_deepspeed_comm(training_args)
    if model_args.model_name_or_path == TINY:
        from transformers.integrations import is_deepspeed_zero3_enabled

        from depthlm_hf.models.tiny import tiny_qwen2_5_vl

        if is_deepspeed_zero3_enabled():
            raise ValueError(
                "`model_name_or_path` 'tiny' cannot be built inside DeepSpeed ZeRO-3: save it first "
                "(`tiny_qwen2_5_vl()[0].save_pretrained(dir)` and the processor likewise) and pass the "
                "folder."
            )
        model, _ = tiny_qwen2_5_vl()
        model.train()
        return model
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    kwargs = {
        "revision": model_args.model_revision,
        "dtype": dtype,
        "attn_implementation": model_args.attn_implementation,
        "trust_remote_code": training_args.trust_remote_code,
        **(training_args.model_init_kwargs or {}),
    }
    check_weights(model_args.model_name_or_path, "model_name_or_path")
    return AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **no_remote_code(kwargs))


def set_vision_attention(model: torch.nn.Module, script_args: DepthLMScriptArguments) -> torch.nn.Module:
    """`model` with the vision attention `script_args.vision_attention` asks for (a no-op for families the registry
    gives no batched vision attention)."""
    if not families.batched_vision_attention(model):
        return model
    (vision_attention.enable if script_args.vision_attention == "batched" else vision_attention.disable)(model)
    return model


def peft_config(model_args: ModelConfig):
    """TRL's LoRA config from the model arguments (`--lora_target_modules all-linear` as PEFT's keyword)."""
    config = get_peft_config(model_args)
    if config is not None and config.target_modules in ({"all-linear"}, ["all-linear"]):
        config.target_modules = "all-linear"
    return config


def resume_checkpoint(training_args: Any) -> str | bool | None:
    """The checkpoint to resume from: `resume_from_checkpoint` as given (refused when incomplete), with `last`
    meaning the newest *complete* checkpoint in `output_dir` (a preemption-safe recipe setting: a folder a kill
    left half-written is skipped with a warning), else a fresh start."""
    value = training_args.resume_from_checkpoint
    if value not in ("last", "true", "True"):
        problem = checkpoint_problem(value) if isinstance(value, str) else None
        if problem:
            raise ValueError(
                f"`resume_from_checkpoint` {value!r} is not a complete checkpoint: {problem}. Pass a complete "
                "`checkpoint-N` folder, or `last` for the newest complete one in `output_dir`."
            )
        return value
    last = last_complete_checkpoint(training_args.output_dir)
    if last is None:
        logger.info("No complete checkpoint in %s: training from the start.", training_args.output_dir)
    return last


def skip_report(script_args: DepthLMScriptArguments, training_args: Any) -> DataSkipReport:
    """The run's report of skipped records (a trainer callback), writing `data_skips.json` to `output_dir`."""
    return DataSkipReport(script_args.max_skipped_fraction, training_args.output_dir, scan=script_args.scan_data)


def save_outputs(trainer: Any, processor: DepthLMProcessor, card_info: Any, output_dir: str) -> None:
    """Save the model (or adapter), the processor settings and the model card, then push when asked."""
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        processor.save_pretrained(output_dir)
        write_model_card(output_dir, card_info)
    if trainer.args.push_to_hub:
        trainer.push_to_hub()


def check_vllm(training_args: Any) -> None:
    """Fail early, with the fix, when vLLM generation is asked for but vLLM is not installed."""
    if training_args.use_vllm and importlib.util.find_spec("vllm") is None:
        raise ValueError("`use_vllm` is true but vLLM is not installed: `pip install vllm`, or set `use_vllm: false`.")
