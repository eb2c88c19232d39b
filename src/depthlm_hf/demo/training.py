"""Demo model, training rows, batched greedy evaluation and the learning-curve callback."""

from __future__ import annotations

import time
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import Qwen2_5_VLForConditionalGeneration, TrainerCallback

from depthlm_hf.data.seeding import rng as seeded_rng
from depthlm_hf.demo.data import Mode, SceneBank, model_image, question
from depthlm_hf.metrics.functional import delta_accuracy, depth_metrics
from depthlm_hf.models.tiny import tiny_processor, tiny_qwen2_5_vl_config
from depthlm_hf.prompting.processing import DepthLMProcessor


def _linear_patch_embed(self, hidden_states: torch.Tensor) -> torch.Tensor:
    weight = self.proj.weight
    return torch.nn.functional.linear(
        hidden_states.to(weight.dtype).reshape(hidden_states.shape[0], -1), weight.flatten(1)
    )


def use_linear_patch_embedding(model: Qwen2_5_VLForConditionalGeneration) -> None:
    """Run the vision patch embedding as one matrix product (same weights, same result).

    Its `Conv3d` has kernel == stride, so it is a matmul; on CPU PyTorch's conv3d path is ~10x slower
    than `linear` for these shapes, which made it the largest single cost of a tiny-model step.
    """
    embed = model.model.visual.patch_embed
    embed.forward = types.MethodType(_linear_patch_embed, embed)


def build_model(
    seed: int,
    processor: DepthLMProcessor,
    hidden_size: int,
    num_layers: int,
    vision_hidden_size: int,
    vision_depth: int,
    rope_theta: float,
    vision_rope_theta: float,
) -> Qwen2_5_VLForConditionalGeneration:
    """A tiny random Qwen2.5-VL for `processor`'s tokenizer, with the demo's rope bases (see the docs page)."""
    config = tiny_qwen2_5_vl_config(processor.tokenizer, hidden_size, num_layers, vision_hidden_size, vision_depth)
    config.text_config.rope_parameters["rope_theta"] = float(rope_theta)
    config.vision_config.rope_parameters = {"rope_type": "axial", "rope_theta": float(vision_rope_theta)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    use_linear_patch_embedding(model)
    return model


def demo_processor(width: int, height: int, unified_focal: float, marker: dict) -> DepthLMProcessor:
    """The tiny offline processor with the demo's focal length, marker and image size (no resize by Qwen)."""
    return tiny_processor(
        min_pixels=width * height, max_pixels=width * height, unified_focal_length=unified_focal, marker=marker
    )


@dataclass
class TrainingRows:
    """SFT rows (TRL prompt/completion format) drawn from a scene bank: row i is a pure function of i."""

    bank: SceneBank
    processor: DepthLMProcessor
    mode: Mode
    seed: int = 0

    def __len__(self) -> int:
        return int(self.bank.points.shape[0] * self.bank.points.shape[1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        scenes, per_scene = self.bank.points.shape[:2]
        rng = seeded_rng(self.seed, int(index))
        scene, point = int(rng.integers(scenes)), int(rng.integers(per_scene))
        image = model_image(self.bank, scene, point, self.mode, self.processor.marker_style)
        text = question(self.processor, self.bank, scene, point, self.mode)
        distance = float(self.bank.distance[scene, point])
        return {
            "images": [image],
            "prompt": self.processor.prompt_messages(text),
            "completion": self.processor.completion_messages(distance),
            "depth": distance,
            "task": "distance",
        }


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    processor: DepthLMProcessor,
    bank: SceneBank,
    mode: Mode,
    queries: list[tuple[int, int]],
    batch_size: int = 64,
    max_new_tokens: int = 12,
    progress: bool = False,
) -> tuple[list[float | None], list[str]]:
    """Greedy answers to `queries` (scene, point) of `bank`: parsed distances [m] (None if unparseable) and texts.

    The prompt ends with the answer's fixed start ("The point is around "), so the model writes the number.
    """
    was_training = model.training
    model.eval()
    values, texts = [], []
    tokenizer = processor.tokenizer
    prefix = processor.forced_prefix("distance")
    batches = range(0, len(queries), batch_size)
    for start in tqdm(batches, desc="evaluating", leave=False, disable=not progress):
        chunk = queries[start : start + batch_size]
        images = [[model_image(bank, s, p, mode, processor.marker_style)] for s, p in chunk]
        # The answer's fixed start is forced, as `DepthLMPredictor` does: the model generates the number.
        prompts = [
            processor.apply_chat_template(
                processor.prompt_messages(question(processor, bank, s, p, mode)),
                add_generation_prompt=True,
                tokenize=False,
            )
            + prefix
            for s, p in chunk
        ]
        inputs = processor(images=images, text=prompts, padding=True, padding_side="left", return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        decoded = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        texts += [prefix + text for text in decoded]
        values += [processor.parse_answer(prefix + text) for text in decoded]
    model.train(was_training)
    return values, texts


def constant_baselines(labels: np.ndarray) -> dict[str, float]:
    """delta1 of the best single constant (searched on a log grid) and of the constant 2 m, on `labels` [m].

    >>> out = constant_baselines(np.array([2.0, 2.0, 8.0]))
    >>> out["constant_2_delta1"], round(out["best_constant_delta1"], 3)
    (0.6666666666666666, 0.667)
    """
    grid = np.exp(np.linspace(np.log(0.1), np.log(200.0), 2000))
    scores = [delta_accuracy([c] * len(labels), labels) for c in grid]
    best = int(np.argmax(scores))
    return {
        "best_constant_delta1": float(scores[best]),
        "best_constant": float(grid[best]),
        "constant_2_delta1": float(delta_accuracy([2.0] * len(labels), labels)),
    }


def evaluate(model, processor, bank: SceneBank, mode: Mode, num: int | None = None, **kwargs) -> dict[str, Any]:
    """Depth metrics of the model on the first point of the first `num` scenes of `bank`."""
    num = bank.points.shape[0] if num is None else min(num, bank.points.shape[0])
    queries = [(s, 0) for s in range(num)]
    values, texts = predict(model, processor, bank, mode, queries, **kwargs)
    metrics = depth_metrics(values, bank.distance[:num, 0])
    return {"metrics": metrics, "predictions": values, "texts": texts}


@dataclass
class LearningCurve(TrainerCallback):
    """Trainer callback: delta1 on a held-out subset every `every` steps, with the training loss and time."""

    processor: DepthLMProcessor
    bank: SceneBank
    mode: Mode
    every: int
    num: int
    points: list[dict[str, float]] = field(default_factory=list)
    start: float = field(default_factory=time.time)
    _loss: float = float("nan")

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The trainer logs after `on_step_end`: the loss of a curve point arrives just after it.
        if logs and "loss" in logs:
            self._loss = float(logs["loss"])
            if self.points and not np.isfinite(self.points[-1]["loss"]):
                self.points[-1]["loss"] = self._loss

    def on_train_end(self, args, state, control, **kwargs):
        for point in self.points:  # a last point on a step that was not logged keeps the latest loss
            if not np.isfinite(point["loss"]):
                point["loss"] = self._loss

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            result = evaluate(model, self.processor, self.bank, self.mode, self.num)
            delta1 = result["metrics"]["delta1"]
            self.points.append(
                {"step": state.global_step, "delta1": delta1, "loss": float("nan"), "seconds": time.time() - self.start}
            )
            tqdm.write(f"step {state.global_step}: held-out delta1 {delta1:.3f} ({self.num} scenes)")
