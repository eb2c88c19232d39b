"""The DepthLM trainers and the SFT collator: TRL's `SFTTrainer` and `GRPOTrainer` with a weights-exact
checkpoint resume and the DepthLM model card, and TRL's VLM collator with labels that stop at the end of turn."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedModel
from trl import GRPOTrainer, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.metrics.functional import depth_metrics
from depthlm_hf.models import families
from depthlm_hf.prompting.image_scale import keep_scale
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.training.configs import LOSS_ON, TRAINING_PIXELS, LossOn, TrainingPixels
from depthlm_hf.training.modelcard import ModelCardMixin


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


class GeneratedMetricsMixin:
    """Trainer mixin: each evaluation also generates the answers of the eval split and logs their depth metrics.

    After the loss evaluation, the eval rows (`images`, `prompt`, `depth` target, `task`) are answered greedily
    through `DepthLMPredictor.predict_rows` (forced answer prefix, stop at the number's end) and
    `depth_metrics` adds `eval_delta1`, `eval_abs_rel` and `eval_parse_rate` (share of answers with a number)
    to the logged metrics. Every process answers the whole split (ZeRO-3 generation needs all of them).
    """

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"):
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)  # type: ignore[misc]
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset  # type: ignore[attr-defined]
        if dataset is None or isinstance(dataset, dict) or not isinstance(self.processing_class, DepthLMProcessor):  # type: ignore[attr-defined]
            return metrics
        training = self.model.training  # type: ignore[attr-defined]
        figures = generated_metrics(self._metrics_predictor(), [dataset[i] for i in range(len(dataset))])
        self.model.train(training)  # type: ignore[attr-defined]
        figures = {f"{metric_key_prefix}_{name}": value for name, value in figures.items()}
        self.log(figures)  # type: ignore[attr-defined]
        return {**metrics, **figures}

    def _metrics_predictor(self) -> DepthLMPredictor:
        model = self.accelerator.unwrap_model(self.model)  # type: ignore[attr-defined]
        predictor = getattr(self, "_depthlm_predictor", None)
        if predictor is None or predictor.model is not model:  # the token tables are built once per run
            predictor = DepthLMPredictor(
                model,
                self.processing_class,
                batch_size=self.args.per_device_eval_batch_size,
                show_progress=False,  # type: ignore[attr-defined]
            )
            self._depthlm_predictor = predictor
        return predictor


def generated_metrics(predictor: DepthLMPredictor, rows: list[dict[str, Any]]) -> dict[str, float]:
    """delta1, AbsRel and parse rate of `predictor`'s greedy answers to `rows` against their `depth` targets."""
    values, targets = [], []
    for task in dict.fromkeys(row["task"] for row in rows):
        group = [row for row in rows if row["task"] == task]
        values += predictor.predict_rows(group, task=task, progress=False).values
        targets += [float(row["depth"]) for row in group]
    metrics = depth_metrics(values, targets)
    return {"delta1": metrics["delta1"], "abs_rel": metrics["abs_rel"], "parse_rate": 1 - metrics["parse_failure_rate"]}


class DepthLMSFTTrainer(CheckpointResumeMixin, ModelCardMixin, GeneratedMetricsMixin, SFTTrainer):
    """TRL's `SFTTrainer`, resuming with the checkpoint's weights, writing the DepthLM model card and logging
    the delta1 of generated answers at each evaluation.

    With `read_in_order` set, training rows are read in index order instead of a random permutation:
    the rows are random draws already (a pure function of (seed, index)), and index order lets a
    grouped view decode each image once for its consecutive rows.
    """

    read_in_order: bool = False

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.read_in_order:
            return torch.utils.data.SequentialSampler(self.train_dataset if train_dataset is None else train_dataset)
        return super()._get_train_sampler(train_dataset)


RELEASE_PIXEL_FACTOR = 28
RELEASE_PIXEL_LIMITS = (4 * 28 * 28, 16384 * 28 * 28)
"""The release's Pixtral training resize (`qwen_vl_utils.smart_resize` defaults): sides rounded to multiples of
28 px, area kept within [min, max] pixels."""


def release_training_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) [px] the official release's training resized a `width` x `height` image to: each side
    rounded to the nearest multiple of 28 px (Python's `round`), scaled down (floored) above 16,384 x 28^2 pixels
    or up (ceiled) below 4 x 28^2, as `qwen_vl_utils.fetch_image` does with its defaults.

    >>> release_training_size(857, 643)  # iBims-1 at f* = 750 px: fx becomes 759.6, fy 749.2
    (868, 644)
    """
    factor, (low, high) = RELEASE_PIXEL_FACTOR, RELEASE_PIXEL_LIMITS
    w, h = max(factor, round(width / factor) * factor), max(factor, round(height / factor) * factor)
    if w * h > high:
        beta = math.sqrt(width * height / high)
        w, h = math.floor(width / beta / factor) * factor, math.floor(height / beta / factor) * factor
    elif w * h < low:
        beta = math.sqrt(low / (width * height))
        w, h = math.ceil(width * beta / factor) * factor, math.ceil(height * beta / factor) * factor
    return w, h


def release_training_image(image: Image.Image) -> Image.Image:
    """`image` as the official release's training fed it: resized to `release_training_size` with PIL's default
    (bicubic) filter, so the 1 px marker is resampled and the focal length scales by the new size / the old."""
    size = release_training_size(*image.size)
    return image if size == image.size else image.convert("RGB").resize(size)


def _common_prefix(a: str, b: str) -> str:
    return a[: next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))]


def prompt_and_completion(processor: Any, prompt: list[dict], completion: list[dict]) -> tuple[str, str]:
    """The prompt text (as generation renders it) and the completion text of a conversational training row.

    As TRL does: the completion is what the whole conversation renders after its common prefix with the prompt.
    Templates that keep a system turn only when the user's message is last (both Pixtral templates) render the
    whole conversation without it; the completion is then cut from the conversation without the system turn,
    and the prompt keeps it, as generation sees it.
    """
    render = functools.partial(processor.apply_chat_template, tokenize=False)
    head, whole = render(prompt, add_generation_prompt=True), render(prompt + completion)
    bare = [message for message in prompt if message["role"] != "system"]
    if whole.startswith(head) or len(bare) == len(prompt):
        common = _common_prefix(head, whole)
        return common, whole[len(common) :]
    bare_head, bare_whole = render(bare, add_generation_prompt=True), render(bare + completion)
    return head, bare_whole[len(_common_prefix(bare_head, bare_whole)) :]


@dataclass
class AnswerOnlyCollator(DataCollatorForVisionLanguageModeling):
    """TRL's VLM collator for prompt/completion rows, with labels that stop at the end-of-turn token.

    TRL labels the completion as the chat template renders it, which for Qwen templates ends with a
    newline after `<|im_end|>`; here nothing after the first end-of-turn token carries a label, so the
    loss covers exactly the answer and the end-of-turn token. Image and padding tokens never carry one.
    The end-of-turn token is `end_of_turn_token`, else the family registry's (`families.end_of_turn_token`).

    `loss_on="all_but_image"` is the official release's objective instead: every token of the conversation up
    to the end of turn (special tokens, question and answer) except padding and the image token.
    `training_pixels="release"` resizes each image as the release's Pixtral training did (`release_training_image`).
    """

    end_of_turn_token: str | None = None
    loss_on: LossOn = "answer"
    training_pixels: TrainingPixels = "unified"

    def __post_init__(self) -> None:
        for name, allowed in (("loss_on", LOSS_ON), ("training_pixels", TRAINING_PIXELS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {', '.join(allowed)}, got {getattr(self, name)!r}.")
        self.completion_only_loss = self.loss_on == "answer"

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if self.training_pixels == "release":
            examples = [{**row, "images": [release_training_image(i) for i in row["images"]]} for row in examples]
        if any(isinstance(row.get("prompt"), list) for row in examples):
            texts = [prompt_and_completion(self.processor, row["prompt"], row["completion"]) for row in examples]
            examples = [{**row, "prompt": p, "completion": c} for row, (p, c) in zip(examples, texts, strict=True)]
        batch = super().torch_call(examples)
        tokenizer = self.processor.tokenizer
        eot = tokenizer.convert_tokens_to_ids(self.end_of_turn_token or families.end_of_turn_token(self.processor))
        labels = batch["labels"]
        is_eot = labels == eot
        after_eot = (is_eot.long().cumsum(dim=1) - is_eot.long()) > 0
        labels[after_eot] = -100
        if self.loss_on == "all_but_image":
            base = getattr(self.processor, "base_processor", self.processor)
            labels[batch["input_ids"] == tokenizer.convert_tokens_to_ids(base.image_token)] = -100
        return batch


class DepthLMGRPOTrainer(CheckpointResumeMixin, ModelCardMixin, GRPOTrainer):
    """TRL's `GRPOTrainer`, resuming with the checkpoint's weights and writing the DepthLM model card.

    The rows' images are padded as the family registry says (`prompting.image_scale.keep_scale`) before TRL
    sees them: TRL also calls the bare image processor on them (InternVL's tile count), which must see what
    the processor passes on.
    """

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        processor = self.processing_class
        if isinstance(processor, DepthLMProcessor):
            inputs = [
                {**row, key: keep_scale(processor, row[key])[0]} if key in row else row
                for row in inputs
                for key in ("images" if "images" in row else "image",)
            ]
        return super()._generate_and_score_completions(inputs)
