"""Optional vLLM backend with the interface of `DepthLMPredictor` (needs `pip install vllm`, a GPU).

Only generation differs from the transformers predictor: `preprocess` (focal unification once per image,
one marker per query, the forced answer prefix) and `postprocess` (number end, value, confidence) are
`QueryPredictor`'s. vLLM has no "end of number" stopping rule, so each query generates up to
`max_new_tokens` (8) tokens and `postprocess` cuts the number where `TokenClasses.number_end` says it ends.
"""

from __future__ import annotations

import os
from typing import Any

from depthlm_hf.inference.backend import DEFAULT_MAX_NEW_TOKENS, Queries, QueryPredictor
from depthlm_hf.inference.decoding import Generated
from depthlm_hf.prompting import presets
from depthlm_hf.prompting.image_scale import keep_scale
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.resources import no_remote_code


def _require_vllm():
    try:
        import vllm
    except ImportError as err:
        raise ImportError("The vLLM backend needs vLLM (GPU only): `pip install vllm`.") from err
    return vllm


class VLLMPredictor(QueryPredictor):
    """`predict(image, intrinsics, points)` and `predict_batch(queries)` on a vLLM engine.

    Args:
        llm: a `vllm.LLM` serving the checkpoint.
        processor: the checkpoint's `DepthLMProcessor`.
        batch_size: requests handed to `llm.generate` at once (vLLM schedules its own batches within them;
            the bound keeps the marked images of a large point cloud out of memory).
        max_new_tokens: tokens generated per query after the forced prefix.
    """

    def __init__(
        self,
        llm: Any,
        processor: DepthLMProcessor,
        batch_size: int = 1024,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> None:
        super().__init__(processor, batch_size, max_new_tokens, show_progress=False)
        self.llm = llm

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **llm_kwargs: Any) -> VLLMPredictor:
        """A vLLM engine on the checkpoint folder (`llm_kwargs` go to `vllm.LLM`, never with `trust_remote_code`)
        and its processor."""
        llm_kwargs = no_remote_code(llm_kwargs)
        vllm = _require_vllm()
        llm_kwargs.setdefault("limit_mm_per_prompt", {"image": 1})
        processor = DepthLMProcessor.from_pretrained(path, **presets.checkpoint_settings(path))  # fails before vLLM
        return cls(vllm.LLM(model=str(path), **llm_kwargs), processor)

    def answer(self, queries: Queries, batch_size: int | None = None, progress: bool | None = None) -> Generated:
        """Greedy tokens and their log-probabilities from `llm.generate`, `batch_size` requests at a time."""
        vllm = _require_vllm()
        size = self._size(batch_size)
        params = vllm.SamplingParams(temperature=0.0, max_tokens=self.max_new_tokens, logprobs=0)
        out, requests = Generated([], []), []
        for image in queries.marked_images():
            # vLLM runs the checkpoint's own image processor: it too must keep the unified scale.
            image, kwargs = keep_scale(self.processor, image)
            requests.append(
                {"prompt": queries.prompt, "multi_modal_data": {"image": image}, "mm_processor_kwargs": kwargs}
            )
            if len(requests) == size:
                out.extend(self._generate(requests, params, progress))
                requests = []
        if requests:
            out.extend(self._generate(requests, params, progress))
        return out

    def _generate(self, requests: list[dict], params: Any, progress: bool | None) -> Generated:
        out = Generated([], [])
        for output in self.llm.generate(requests, params, use_tqdm=bool(progress)):
            completion = output.outputs[0]
            tokens = list(completion.token_ids)
            out.tokens.append(tokens)
            # With `logprobs=0` each step holds the chosen token's entry (vLLM always includes the sampled one).
            out.logprobs.append([step[t].logprob for step, t in zip(completion.logprobs, tokens, strict=True)])
        return out
