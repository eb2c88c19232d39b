"""Demo model, training rows of both stages, evaluation through the public `DepthLMPredictor`, learning curves.

Stage 1 (`LocalisationRows`, task "marker_row"): the `width` x `height` principal window with the marker, answer
= the marker's row in it [px]; no depth label. Stage 2 (`TrainingRows`): the depth question on the crop's training
windows (random sizes for the paper's geometry). `evaluate` asks either on the evaluation windows.
"""

from __future__ import annotations

import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import Qwen2_5_VLForConditionalGeneration, TrainerCallback

from depthlm_hf.data.seeding import rng as seeded_rng
from depthlm_hf.demo.data import (
    Mode,
    SceneBank,
    Size,
    model_image,
    model_window,
    predictor_queries,
    predictor_rows,
    question,
)
from depthlm_hf.inference.decoding import DepthPrediction
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.metrics.functional import delta_accuracy, depth_metrics
from depthlm_hf.models.tiny import tiny_processor, tiny_qwen2_5_vl_config
from depthlm_hf.models.tiny_families import tiny_vlm
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.tasks.labels import marker_row_label


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
    model_type: str = "qwen2_5_vl",
) -> Qwen2_5_VLForConditionalGeneration:
    """A tiny random Qwen2.5-VL for `processor`'s tokenizer, with the demo's rope bases (see the docs page); for
    another registered `model_type`, that family's `tiny_vlm` model at its tiny widths."""
    if model_type != "qwen2_5_vl":
        return tiny_vlm(model_type, seed=seed)[0]
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


def demo_processor(
    width: int,
    height: int,
    unified_focal: float,
    marker: dict,
    model_type: str = "qwen2_5_vl",
    window: dict | None = None,
) -> DepthLMProcessor:
    """The tiny offline processor with the demo's focal length, marker and `window` setting
    (`depthlm_hf.demo.data.processor_window`); Qwen resizes no image of 1 to 4 `width` x `height` windows (up to
    the whole canvas; sides multiples of 28 px). For another registered `model_type`, its `tiny_vlm` processor,
    which keeps the unified scale by its family's rule."""
    if model_type != "qwen2_5_vl":
        return tiny_vlm(model_type, unified_focal_length=unified_focal, marker=marker, window=window)[1]
    return tiny_processor(
        min_pixels=28 * 28,
        max_pixels=4 * width * height,
        unified_focal_length=unified_focal,
        marker=marker,
        window=window,
    )


@dataclass
class TrainingRows:
    """Depth SFT rows (TRL prompt/completion format) drawn from a scene bank: row i is a pure function of i.

    With the "paper" crop each row's window has a random size of `bank.training_sizes()`, centred on the
    principal point."""

    bank: SceneBank
    processor: DepthLMProcessor
    mode: Mode
    seed: int = 0

    def __len__(self) -> int:
        return int(self.bank.points.shape[0] * self.bank.points.shape[1])

    def draw(self, index: int) -> tuple[int, int, Size | None]:
        """(scene, point, window size) of row `index`."""
        scenes, per_scene = self.bank.points.shape[:2]
        rng = seeded_rng(self.seed, int(index))
        scene, point = int(rng.integers(scenes)), int(rng.integers(per_scene))
        sizes = self.bank.training_sizes() if self.bank.crop == "paper" else [None]
        return scene, point, sizes[int(rng.integers(len(sizes)))]

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene, point, size = self.draw(index)
        image = model_image(self.bank, scene, point, self.mode, self.processor.marker_style, size)
        origin = model_window(self.bank, scene, point, self.mode, size)[1]
        text = question(self.processor, self.bank, scene, point, self.mode, origin)
        distance = float(self.bank.distance[scene, point])
        return {
            "images": [image],
            "prompt": self.processor.prompt_messages(text),
            "completion": self.processor.completion_messages(distance),
            "depth": distance,
            "task": "distance",
        }


@dataclass
class LocalisationRows(TrainingRows):
    """Stage-1 rows (task "marker_row"): the marked `bank.size` principal window, answer = the marker's row in it.

    The same draws as `TrainingRows` (scene, point), but always the one window size, where the tiny model learns
    to find the marker (on random sizes it did not, see docs/demo.md). The label is in tens of pixels: one digit
    before the decimal point, as the distances have (the form that learned in the probes)."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene, point, _ = self.draw(index)
        size = self.bank.size
        image = model_image(self.bank, scene, point, self.mode, self.processor.marker_style, size)
        row = float(marker_rows(self.bank, [(scene, point)])[0])
        return {
            "images": [image],
            "prompt": self.processor.task_messages("marker_row"),
            "completion": self.processor.completion_messages(row, "marker_row"),
            "depth": row,
            "task": "marker_row",
        }


def marker_rows(bank: SceneBank, queries: Sequence[tuple[int, int]]) -> np.ndarray:
    """(Q,) the stage-1 labels: each query's row in the `bank.size` principal window (`marker_row_label`, [10 px])."""
    top = bank.window()[1]
    return np.array([marker_row_label([x, y - top]) for x, y in (bank.points[s, p] for s, p in queries)])


def answer(
    predictor: DepthLMPredictor,
    bank: SceneBank,
    queries: Sequence[tuple[int, int]],
    mode: Mode,
    progress: bool = False,
    task: str = "distance",
) -> DepthPrediction:
    """The predictor's answers to `queries` (scene, point) of `bank`, through its public entry points.

    Full method and "focal" ablation: `predict_batch` on the whole canvases (it draws the markers and cuts the
    processor's `window`); "marker" ablation: `predict_rows` on the evaluation windows with the text-coordinate
    questions. Task "marker_row" asks on the `bank.size` principal window (stage 1's).
    """
    if mode == "marker":
        return predictor.predict_rows(predictor_rows(predictor.processor, bank, queries), progress=progress)
    size = bank.size if task == "marker_row" else None
    inputs = predictor_queries(bank, queries, mode, predictor.processor.unified_focal_length, size)
    return predictor.predict_batch(inputs, task=task, progress=progress)


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


def evaluate(
    predictor: DepthLMPredictor,
    bank: SceneBank,
    mode: Mode,
    num: int | None = None,
    progress: bool = False,
    task: str = "distance",
) -> dict[str, Any]:
    """Metrics of `predictor` on the first point of the first `num` scenes of `bank` (default: all).

    `task` "distance": depth [m]; "marker_row": the stage-1 row [10 px] (delta1 = within 25% of the row).
    Returns `{"metrics": depth_metrics(...), "predictions": values (None if unparseable), "texts": ...}`.
    """
    num = bank.points.shape[0] if num is None else min(num, bank.points.shape[0])
    queries = [(s, 0) for s in range(num)]
    labels = marker_rows(bank, queries) if task == "marker_row" else bank.distance[:num, 0]
    out = answer(predictor, bank, queries, mode, progress, task)
    return {"metrics": depth_metrics(out.values, labels), "predictions": out.values, "texts": out.texts}


def stage_labels(bank: SceneBank, task: str) -> np.ndarray:
    """The held-out labels `evaluate` scores `task` against: rows [10 px] or distances [m]."""
    queries = [(s, 0) for s in range(bank.points.shape[0])]
    return marker_rows(bank, queries) if task == "marker_row" else bank.distance[:, 0]


@dataclass
class LearningCurve(TrainerCallback):
    """Trainer callback: held-out delta1 of `task` every `every` steps, with the training loss, wall and CPU time."""

    processor: DepthLMProcessor
    bank: SceneBank
    mode: Mode
    every: int
    num: int
    batch_size: int = 64
    task: str = "distance"
    points: list[dict[str, float]] = field(default_factory=list)
    start: float = field(default_factory=time.time)
    cpu_start: float = field(default_factory=time.process_time)
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
            predictor = DepthLMPredictor(model, self.processor, self.batch_size, show_progress=False)  # sets eval()
            result = evaluate(predictor, self.bank, self.mode, self.num, task=self.task)
            model.train()
            delta1 = result["metrics"]["delta1"]
            self.points.append(
                {
                    "step": state.global_step,
                    "delta1": delta1,
                    "loss": float("nan"),
                    "seconds": time.time() - self.start,
                    "cpu_seconds": time.process_time() - self.cpu_start,
                }
            )
            tqdm.write(f"step {state.global_step}: held-out {self.task} delta1 {delta1:.3f} ({self.num} scenes)")
