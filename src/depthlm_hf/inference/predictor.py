"""Fast batched DepthLM inference: metres and a confidence per query pixel, in three steps.

`DepthLMPredictor.predict` is `preprocess` -> `generate` -> `postprocess`:

- `preprocess` (shared with the vLLM backend, `QueryPredictor.preprocess`): checks the queries, runs the
  focal-length unification (the costly resize) once per image, maps the query pixels into the unified
  image and builds the prompt, which ends with the answer's fixed start ("The point is around ") so the
  model only generates the number. `DepthLMPredictor.model_inputs` turns these `Queries` into processor
  batches lazily (left padding); for Qwen2-VL-style processors each query of an image only re-processes
  the patches its marker changes (`depthlm_hf.prompting.marker_patches`, bit-identical to the stock
  processor's output);
- `generate`: one greedy `model.generate` per batch that stops a row at the first token after the
  number (`NumberEndCriteria`), so `max_new_tokens` stays small (8 by default), with the greedy tokens'
  log-probabilities from `output_scores` and `compute_transition_scores`; `torch.inference_mode`, and
  bf16 weights with SDPA attention when loaded on a GPU;
- `postprocess` (shared with the vLLM backend): token ids -> values, confidence, texts
  (`depthlm_hf.inference.decoding`).

Each query needs its own marked image (one marker per image, as in training), so the vision tower
still encodes the whole image once per query.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import BatchFeature, StoppingCriteriaList

from depthlm_hf.inference.backend import (
    DEFAULT_MAX_NEW_TOKENS,
    Queries,
    QueryPredictor,
)
from depthlm_hf.inference.decoding import DepthPrediction, Generated, NumberEndCriteria
from depthlm_hf.models import families, vision_attention
from depthlm_hf.prompting import marker_patches, presets
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.resources import check_weights, checkpoint_source, no_remote_code, resolve_device


class DepthLMPredictor(QueryPredictor):
    """A DepthLM model and its processor, answering batches of visual-prompt queries with transformers.
    Vision attention runs batched where the family registry says so (Qwen2.5-VL; exact;
    `vision_attention.disable(predictor.model)` undoes it).

    Args:
        model: a transformers image-text-to-text model (Qwen2.5-VL, Llava/Pixtral, ...).
        processor: the `DepthLMProcessor` saved with the model.
        batch_size: queries per `generate` call.
        max_new_tokens: tokens generated per query after the forced prefix (the number and its end).
        show_progress: tqdm bars on multi-batch work.
        fast_images: for single-marker tasks on Qwen2-VL-style processors, preprocess the image once and
            only the patches each marker changes (`depthlm_hf.prompting.marker_patches`; bit-identical inputs).

    >>> predictor = DepthLMPredictor.from_pretrained("path/to/checkpoint")  # doctest: +SKIP
    >>> cam = [559.6, 558.1, 361.9, 242.0, 640, 480]
    >>> out = predictor.predict("room.png", cam, [[320, 240]])  # doctest: +SKIP
    >>> out.values, out.confidence  # doctest: +SKIP
    ([2.87], array([0.91]))
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: DepthLMProcessor,
        batch_size: int = 16,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        show_progress: bool = True,
        fast_images: bool = True,
    ) -> None:
        super().__init__(processor, batch_size, max_new_tokens, show_progress)
        self.model = model.eval()
        if families.batched_vision_attention(self.model):
            vision_attention.enable(self.model)
        self.fast_images = fast_images
        self.classes = self.classes.to(self.device)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        attn_implementation: str | None = None,
        image_backend: str | None = "pil",
        preset: str | None = None,
        revision: str | None = None,
        **kwargs: Any,
    ) -> DepthLMPredictor:
        """Load a checkpoint: a hub id (the released "facebook/DepthLM") or a folder; nothing is written there.

        The processor has the DepthLM settings saved with it, else those of `presets.checkpoint_preset`
        ("official_pixtral" for facebook/DepthLM or a folder holding its files; any other folder raises a
        ValueError listing the presets); an explicit `preset` wins. The processor is loaded before the model, and
        a Hub id the Hub cannot serve (offline, or not cached) fails within seconds (`checkpoint_source`). Defaults:
        the first GPU if any, bf16 weights and SDPA attention; float32 on CPU. `image_backend`: the image
        processor's backend ("pil", "torchvision", None: transformers' choice); "pil" allows the fast path.
        `kwargs` go to the constructor (`batch_size`, `max_new_tokens`, `show_progress`, `fast_images`)."""
        from transformers import AutoModelForImageTextToText

        source = checkpoint_source(str(path), revision, "path")  # a Hub id without a network fails here, fast
        device = resolve_device(device)
        backend = {} if image_backend is None else {"backend": image_backend}
        settings = presets.checkpoint_settings(source, preset, revision)  # before the (12B) model: fails fast
        processor = DepthLMProcessor.from_pretrained(source, revision=revision, **backend, **settings)
        check_weights(source, "path")  # after the processor, so a folder of the release's files is recognised first
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        loading = {"dtype": dtype, "attn_implementation": attn_implementation or "sdpa", "revision": revision}
        model = AutoModelForImageTextToText.from_pretrained(source, **no_remote_code(loading)).to(device)
        return cls(model, processor, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------------------- preprocess
    def model_inputs(self, queries: Queries, batch_size: int | None = None) -> Iterator[BatchFeature]:
        """Processor inputs for `queries`, `batch_size` queries at a time, built lazily (one batch's pixels at once).

        A batch of several queries on one image takes the marker-patch fast path where it applies (see
        `fast_images`); other batches, which may mix images, go through the processor.
        """
        size = self._size(batch_size)
        flat = list(queries.groups())
        fast = self.fast_images and queries.num_points == 1 and marker_patches.supported(self.processor)
        batcher: tuple[int, Any] = (-1, None)
        for start in range(0, len(flat), size):
            chunk = flat[start : start + size]
            image = chunk[0][0]
            if fast and len(chunk) > 1 and all(i == image for i, _ in chunk):
                if batcher[0] != image:
                    batcher = (image, self._batcher(queries, image))
                if batcher[1] is not None:
                    yield BatchFeature(batcher[1].batch(np.concatenate([group for _, group in chunk])))
                    continue
            yield self._processor_inputs(queries, chunk)

    def _processor_inputs(self, queries: Queries, chunk: Sequence[tuple[int, np.ndarray]]) -> BatchFeature:
        order = list(dict.fromkeys(i for i, _ in chunk))  # a chunk's queries are grouped by image already
        return self.processor(
            images=[queries.images[i] for i in order],
            intrinsics=[queries.cameras[i] for i in order],
            points=[np.concatenate([group for j, group in chunk if j == i]) for i in order],
            task=queries.task,
            task_fields=queries.task_fields,
            force_answer_prefix=True,
        )

    def _batcher(self, queries: Queries, image: int) -> marker_patches.MarkedImageBatcher | None:
        first = [(image, queries.points[image][:1])]
        try:
            return marker_patches.MarkedImageBatcher(
                self.processor, queries.images[image], dict(self._processor_inputs(queries, first)), device=self.device
            )
        except ValueError:  # PIL resized this image in a way the batcher cannot reproduce exactly
            return None

    # --------------------------------------------------------------------------------------------- generate
    def answer(self, queries: Queries, batch_size: int | None = None, progress: bool | None = None) -> Generated:
        """`generate` on each batch of `model_inputs(queries, batch_size)`, in query order."""
        size = self._size(batch_size)
        num_batches = -(-len(queries) // size)
        show = (self.show_progress if progress is None else progress) and num_batches > 1
        out = Generated([], [])
        batches = self.model_inputs(queries, size)
        for inputs in tqdm(batches, total=num_batches, desc="queries", unit="batch", disable=not show):
            out.extend(self.generate(inputs))
        return out

    @torch.inference_mode()
    def generate(self, inputs: Any) -> Generated:
        """Greedy-decode the numbers of one processor batch (prompts ending in the forced prefix).

        Each row stops at the first token after its number (`NumberEndCriteria`). The log-probability of
        each chosen token is `compute_transition_scores` on the scores `generate` chose from (after its
        logits processors, e.g. a checkpoint's repetition penalty), normalised over the vocabulary.
        """
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        prompt_length = inputs["input_ids"].shape[1]
        output = self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=self.max_new_tokens,
            stopping_criteria=StoppingCriteriaList([NumberEndCriteria(self.classes, prompt_length)]),
            output_scores=True,
            return_dict_in_generate=True,
            top_p=None,
            top_k=None,
            temperature=None,
        )
        scores = tuple(step.float() for step in output.scores)
        logprobs = self.model.compute_transition_scores(output.sequences, scores, normalize_logits=True)
        return Generated(output.sequences[:, prompt_length:].tolist(), logprobs.tolist())

    def predict_rows(
        self,
        rows: Sequence[dict[str, Any]],
        task: str = "distance",
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> DepthPrediction:
        """Answer prepared queries: rows `{"images": [PIL, ...], "prompt": [chat messages]}`, one per query.

        This is the general path (any task, several images per query, per-query questions, images marked
        by the caller), e.g. for the rows of `depthlm_hf.data.EvaluationView`; `predict_batch` is faster for
        many points of one image.
        """
        size = self._size(batch_size)
        prefix = self.processor.forced_prefix(task)
        starts = range(0, len(rows), size)
        show = self.show_progress if progress is None else progress
        out = Generated([], [])
        for start in tqdm(starts, desc="queries", unit="batch", disable=not show or len(starts) < 2):
            batch = rows[start : start + size]
            texts = [
                self.processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True) + prefix
                for row in batch
            ]
            inputs = self.processor(  # a plain call: the family's rule keeps the rows' unified scale
                images=[list(row["images"]) for row in batch],
                text=texts,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            )
            out.extend(self.generate(inputs))
        return self.postprocess(out, task)
