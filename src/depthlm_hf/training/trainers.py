"""The DepthLM trainers and the SFT collator: TRL's `SFTTrainer` and `GRPOTrainer` with a weights-exact
checkpoint resume and the DepthLM model card, and TRL's VLM collator with labels that stop at the end of turn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel
from trl import GRPOTrainer, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

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


class DepthLMGRPOTrainer(CheckpointResumeMixin, ModelCardMixin, GRPOTrainer):
    """TRL's `GRPOTrainer`, resuming with the checkpoint's weights and writing the DepthLM model card."""
