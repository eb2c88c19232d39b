"""`depthlm sft`: supervised fine-tuning of a VLM to answer metric distances in text (DepthLM).

    depthlm sft --config recipes/tiny/sft/config_synthetic.yaml            # CPU, tiny offline model
    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml \\
        -m depthlm_hf.scripts.sft --config recipes/qwen2_5_vl_3b/sft/config_paper.yaml

Plain TRL `SFTTrainer` on prompt/completion rows: the loss covers the answer tokens and the end-of-turn
token only (TRL's VLM collator, ended at the end-of-turn token). The output folder holds the model (or
the LoRA adapter), the `DepthLMProcessor` settings and a model card; `--push_to_hub` uploads it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForImageTextToText, PreTrainedModel, TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import cached_file
from trl import ModelConfig, SFTTrainer, TrlParser, get_peft_config
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from depthlm_hf.prompting.processing import PRESETS, DepthLMProcessor
from depthlm_hf.training.configs import DepthLMScriptArguments, DepthLMSFTConfig
from depthlm_hf.training.modelcard import ModelCardMixin, card_info_from_args, write_model_card

logger = logging.getLogger(__name__)

TINY = "tiny"
"""`--model_name_or_path tiny` trains the tiny random offline Qwen2.5-VL of `depthlm_hf.models.tiny` (CPU)."""


class CheckpointResumeMixin:
    """Trainer mixin: resuming reloads the checkpoint's weights through `from_pretrained`.

    transformers 5 saves some models (Qwen2.5-VL among them) under their legacy parameter names, and
    `Trainer` resumes with `model.load_state_dict(..., strict=False)`, which then matches no key and
    silently continues from the initial weights (huggingface/transformers#43701). `from_pretrained`
    applies the name conversion, for single-file and sharded checkpoints alike. DeepSpeed, FSDP and PEFT
    checkpoints keep their own loading paths.
    """

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = self.model if model is None else model
        folder = Path(resume_from_checkpoint)
        weights = (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
        plain = not (self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(model, "peft_config"))
        if not (plain and weights and isinstance(model, PreTrainedModel)):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)  # type: ignore[misc]
        dtype = next(model.parameters()).dtype
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=dtype)
        model.load_state_dict(saved.state_dict(), strict=True)

    def _load_best_model(self) -> None:
        # `load_best_model_at_end` has the same key-name problem; the weights path above serves it too.
        model = self.model
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or not isinstance(model, PreTrainedModel):
            return super()._load_best_model()  # type: ignore[misc]
        self._load_from_checkpoint(self.state.best_model_checkpoint, model)


class DepthLMSFTTrainer(CheckpointResumeMixin, ModelCardMixin, SFTTrainer):
    """TRL's `SFTTrainer`, resuming with the checkpoint's weights and writing the DepthLM model card."""


@dataclass
class AnswerOnlyCollator(DataCollatorForVisionLanguageModeling):
    """TRL's VLM collator for prompt/completion rows, with labels that stop at the end-of-turn token.

    TRL labels the completion as the chat template renders it, which for Qwen templates ends with a
    newline after `<|im_end|>`; here nothing after the first end-of-turn token carries a label, so the
    loss covers exactly the answer and the end-of-turn token. Image and padding tokens never carry one.
    """

    end_of_turn_token: str | None = None

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        tokenizer = self.processor.tokenizer
        eot = tokenizer.convert_tokens_to_ids(self.end_of_turn_token or tokenizer.eos_token)
        labels = batch["labels"]
        is_eot = labels == eot
        after_eot = (is_eot.long().cumsum(dim=1) - is_eot.long()) > 0
        labels[after_eot] = -100
        return batch


def _saved_processor_config(name_or_path: str, revision: str | None) -> dict[str, Any]:
    path = cached_file(
        name_or_path, "processor_config.json", revision=revision, _raise_exceptions_for_missing_entries=False
    )
    return json.loads(Path(path).read_text()) if path else {}


def load_processor(model_args: ModelConfig, script_args: DepthLMScriptArguments) -> DepthLMProcessor:
    """The `DepthLMProcessor` of the model: its saved DepthLM settings, else `processor_preset` around the
    model's own processor; explicit script arguments (focal length, marker, ...) override both."""
    overrides = script_args.processor_overrides()
    name = model_args.model_name_or_path
    if name == TINY:
        from depthlm_hf.models.tiny import tiny_processor

        return _with_overrides(tiny_processor(), overrides)
    saved = _saved_processor_config(name, model_args.model_revision)
    if "depthlm_processor_class" in saved:
        processor = DepthLMProcessor.from_pretrained(name, revision=model_args.model_revision)
        return _with_overrides(processor, overrides)
    preset = {**PRESETS[script_args.processor_preset], "preset": script_args.processor_preset}
    preset.setdefault("base_processor_class", saved.get("processor_class", "Qwen2_5_VLProcessor"))
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


class RowTransform:
    """Picklable `datasets` transform from sample indices to TRL rows, rendered on access by `view`.

    `kind` "sft" gives prompt/completion rows, "grpo" prompt rows with the `depth` target and `task`;
    both carry the sample `index` (trainers ignore it; it identifies the sample in logs and tests).
    """

    COLUMNS = {
        "sft": ("images", "prompt", "completion", "index"),
        "grpo": ("images", "prompt", "depth", "task", "index"),
    }

    def __init__(self, view: Any, kind: str) -> None:
        self.view, self.kind = view, kind

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = [self.view[int(index)] for index in batch["index"]]
        columns = {key: [row[key] for row in rows] for key in self.COLUMNS[self.kind] if key != "index"}
        columns["index"] = [int(index) for index in batch["index"]]
        return columns


def index_dataset(num_samples: int, view: Any, kind: str) -> Dataset:
    """A map-style `datasets.Dataset` of `num_samples` rows rendered lazily by `view` (sample i is a
    deterministic function of i, so runs resume and shard across processes exactly)."""
    dataset = Dataset.from_dict({"index": np.arange(num_samples, dtype=np.int64)})
    dataset.set_transform(RowTransform(view, kind))
    return dataset


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


def record_sources(script_args: DepthLMScriptArguments, seed: int) -> dict[str, Any]:
    """Record sources by name: the curated datasets (read lazily), or the synthetic preset's scenes."""
    from depthlm_hf.data import load_curated
    from depthlm_hf.data.synthetic.scenes import SyntheticDataset

    if script_args.dataset:
        sources = script_args.dataset_sources()
        return {name: load_curated(*source) for name, source in zip(script_args.dataset_names(), sources, strict=True)}
    overrides = {}
    if script_args.synthetic_image_size is not None:
        width, height = script_args.synthetic_image_size
        overrides = {"width": (width, width), "height": (height, height)}
    scenes = SyntheticDataset(
        script_args.synthetic,
        num_scenes=script_args.synthetic_scenes,
        seed=seed,
        two_view="translation" in script_args.tasks,
        **overrides,
    )
    return {f"synthetic_{script_args.synthetic}": scenes}


def training_view(script_args: DepthLMScriptArguments, processor: DepthLMProcessor, seed: int, kind: str) -> Any:
    """The (mixture of) training view(s) of the data engineer's `depthlm_hf.data.views` for the run."""
    from depthlm_hf.data.views import MixtureView, TrainingView, TrainingViewConfig

    weights = script_args.task_weights or [1.0] * len(script_args.tasks)
    config = TrainingViewConfig(
        crop=script_args.crop_width is not None,
        crop_width=tuple(script_args.crop_width or (1, 1)),
        crop_height=tuple(script_args.crop_height or (1, 1)),
        crop_position=script_args.crop_position,
        aspect_jitter=tuple(script_args.aspect_jitter) if script_args.aspect_jitter else None,
        tasks=dict(zip(script_args.tasks, weights, strict=True)),
    )
    sources = record_sources(script_args, seed)
    views = {
        name: TrainingView(source, processor, config, seed=seed, row_format=kind) for name, source in sources.items()
    }
    if len(views) == 1:
        return next(iter(views.values()))
    return MixtureView(views, weights=script_args.dataset_weights or [1.0] * len(views), seed=seed)


def build_datasets(
    script_args: DepthLMScriptArguments, processor: DepthLMProcessor, training_args: Any, kind: str
) -> tuple[Dataset, Dataset | None]:
    """The training dataset of the run, and an evaluation one (other rows of the same views) when
    `eval_samples` > 0."""
    seed = training_args.seed
    train = index_dataset(num_train_samples(training_args), training_view(script_args, processor, seed, kind), kind)
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
    return AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **kwargs)


def peft_config(model_args: ModelConfig):
    """TRL's LoRA config from the model arguments (`--lora_target_modules all-linear` as PEFT's keyword)."""
    config = get_peft_config(model_args)
    if config is not None and config.target_modules in ({"all-linear"}, ["all-linear"]):
        config.target_modules = "all-linear"
    return config


def resume_checkpoint(training_args: Any) -> str | bool | None:
    """The checkpoint to resume from: `resume_from_checkpoint` as given, with `last` meaning the newest
    checkpoint in `output_dir` when there is one (a preemption-safe recipe setting), else a fresh start."""
    value = training_args.resume_from_checkpoint
    if value not in ("last", "true", "True"):
        return value
    last = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
    if last is None:
        logger.info("No checkpoint in %s: training from the start.", training_args.output_dir)
    return last


def save_outputs(trainer: Any, processor: DepthLMProcessor, card_info: Any, output_dir: str) -> None:
    """Save the model (or adapter), the processor settings and the model card, then push when asked."""
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        processor.save_pretrained(output_dir)
        write_model_card(output_dir, card_info)
    if trainer.args.push_to_hub:
        trainer.push_to_hub()


def make_parser() -> TrlParser:
    """`TrlParser` over the script, SFT and model arguments (`--config recipe.yaml`, flags override it;
    unknown keys and abbreviated flags are errors)."""
    return TrlParser((DepthLMScriptArguments, DepthLMSFTConfig, ModelConfig), allow_abbrev=False)


def main(argv: Sequence[str] | None = None) -> DepthLMSFTTrainer:
    """Parse `argv` (default: `sys.argv[1:]`), train, save, then close the trackers and the process group;
    returns the trainer."""
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    trainer = train(script_args, training_args, model_args)
    trainer.end()
    return trainer


def train(
    script_args: DepthLMScriptArguments,
    training_args: DepthLMSFTConfig,
    model_args: ModelConfig,
    callbacks: list[TrainerCallback] | None = None,
) -> DepthLMSFTTrainer:
    """The SFT run of the parsed arguments (`callbacks` are added to the trainer's)."""
    set_seed(training_args.seed)
    # The rows carry images and target columns the model does not take; the collator picks what it needs.
    training_args.remove_unused_columns = False

    processor = load_processor(model_args, script_args)
    train_dataset, eval_dataset = build_datasets(script_args, processor, training_args, kind="sft")
    model = load_model(model_args, training_args)

    collator = AnswerOnlyCollator(processor=processor, max_length=training_args.max_length, completion_only_loss=True)
    trainer = DepthLMSFTTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config(model_args),
        callbacks=callbacks,
    )
    trainer.card_info = card_info_from_args(
        script_args, training_args, processor, model_args.model_name_or_path, "sft", peft=model_args.use_peft
    )

    trainer.train(resume_from_checkpoint=resume_checkpoint(training_args))
    save_outputs(trainer, processor, trainer.card_info, training_args.output_dir)
    trainer.accelerator.wait_for_everyone()
    return trainer


if __name__ == "__main__":
    main()
