"""Optional vLLM backend with the interface of `DepthLMPredictor.predict` (needs `pip install vllm`, a GPU).

The same visual prompts (focal unification once per image, one marker per query) and the same forced
answer prefix, served by vLLM's continuous batching. vLLM has no "end of number" stopping rule, so each
query generates up to `max_new_tokens` (8) tokens and the number is cut where `TokenClasses.number_end`
says it ends, exactly as in the transformers predictor. vLLM is not installed in this project's test
environment: only the import guard is tested here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.inference.predictor import DEFAULT_MAX_NEW_TOKENS, DepthPrediction, TokenClasses, unify
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.tasks import text as answers


def _require_vllm():
    try:
        import vllm
    except ImportError as err:
        raise ImportError("The vLLM backend needs vLLM (GPU only): `pip install vllm`.") from err
    return vllm


class VLLMPredictor:
    """`predict(image, intrinsics, points)` on a vLLM engine.

    Args:
        llm: a `vllm.LLM` serving the checkpoint.
        processor: the checkpoint's `DepthLMProcessor`.
        max_new_tokens: tokens generated per query after the forced prefix.
    """

    def __init__(self, llm: Any, processor: DepthLMProcessor, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> None:
        self.llm, self.processor, self.max_new_tokens = llm, processor, int(max_new_tokens)
        self.classes = TokenClasses(processor.tokenizer)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **llm_kwargs: Any) -> VLLMPredictor:
        """A vLLM engine on the checkpoint folder (`llm_kwargs` go to `vllm.LLM`) and its processor."""
        vllm = _require_vllm()
        llm_kwargs.setdefault("limit_mm_per_prompt", {"image": 1})
        llm = vllm.LLM(model=str(path), **llm_kwargs)
        return cls(llm, DepthLMProcessor.from_pretrained(path))

    def predict(
        self,
        image: Image.Image | str | np.ndarray,
        intrinsics: CameraIntrinsics | Sequence[float],
        points: np.ndarray | Sequence[Sequence[float]],
        task: str = "distance",
        task_fields: dict[str, float] | None = None,
    ) -> DepthPrediction:
        """As `DepthLMPredictor.predict`: one answer per point (per pair for "two_point_distance")."""
        vllm = _require_vllm()
        spec = answers.get_task(task)
        if spec.num_images != 1:
            raise ValueError(f"`task` {task!r} takes {spec.num_images} images per query; `predict` takes one.")
        processor = self.processor
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        processor.prepare(image, intrinsics, pts)  # clear errors for points that cannot be marked
        unified, camera, transform = unify(processor, image, intrinsics)
        mapped = np.rint(transform.map_points(pts))
        prompt = processor.base_processor.apply_chat_template(
            processor.task_messages(task, **(task_fields or {})), tokenize=False, add_generation_prompt=True
        )
        prompt += processor.forced_prefix(task)
        requests = [
            {
                "prompt": prompt,
                "multi_modal_data": {"image": processor.prepare(unified, camera, group).image},
            }
            for group in np.split(mapped, len(mapped) // spec.num_points)
        ]
        params = vllm.SamplingParams(temperature=0.0, max_tokens=self.max_new_tokens, logprobs=0)
        values, confidence, texts = [], [], []
        for output in self.llm.generate(requests, params):
            completion = output.outputs[0]
            tokens = list(completion.token_ids)
            logprobs = [step[token].logprob for step, token in zip(completion.logprobs, tokens, strict=True)]
            end = self.classes.number_end(tokens)
            text = processor.tokenizer.decode(tokens if end is None else tokens[: end + 1], skip_special_tokens=True)
            value = None if end is None else processor.parse_answer(text, task)
            values.append(value)
            confidence.append(math.nan if value is None else self.classes.confidence(tokens[:end], logprobs[:end]))
            texts.append(text)
        return DepthPrediction(values, np.array(confidence, dtype=np.float64), texts)
