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
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import BatchFeature, StoppingCriteriaList

from depthlm_hf.geometry import CameraIntrinsics, PixelTransform
from depthlm_hf.inference import vision_attention
from depthlm_hf.inference.decoding import DepthPrediction, Generated, NumberEndCriteria, TokenClasses, decode_numbers
from depthlm_hf.prompting import marker_patches, presets
from depthlm_hf.prompting import queries as query_inputs
from depthlm_hf.prompting.imaging import load_image
from depthlm_hf.prompting.markers import MarkerStyle, draw_markers
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.prompting.queries import Points, camera_list, check_size, group_points, image_list, points_per_image
from depthlm_hf.resources import check_model_source, resolve_device
from depthlm_hf.tasks import text as answers

DEFAULT_MAX_NEW_TOKENS = 8

ImageInput = Image.Image | str | np.ndarray
"""An RGB image: PIL, a path, or an (H, W, 3) uint8 array."""
Query = tuple[ImageInput, CameraIntrinsics | Sequence[float], Points]
"""One image's queries: `(image, intrinsics [fx, fy, cx, cy, width, height] [px], (N, 2) points [px])`."""


def unify(
    processor: DepthLMProcessor, image: ImageInput, intrinsics: CameraIntrinsics | Sequence[float]
) -> tuple[Image.Image, CameraIntrinsics, PixelTransform]:
    """The focal-unified image (no markers), its intrinsics (focal exactly f*), the map from input pixels.

    Passing this image and intrinsics back to the processor makes its own unification an identity,
    so the resize runs once per image instead of once per query.
    """
    image = load_image(image, processor.max_image_pixels)
    camera = CameraIntrinsics.from_list(intrinsics)
    check_size(image, camera)
    prepared = processor.render(image, processor.map_queries(camera))
    f, intr = processor.unified_focal_length, prepared.intrinsics
    # "fx" mode scales both axes by f*/fx, so fy keeps the ratio fy/fx; only fx must be exactly f*.
    fy = f if processor.focal_mode == "xy" else intr.fy * f / intr.fx
    return (
        prepared.image,
        CameraIntrinsics(f, fy, intr.cx, intr.cy, intr.width, intr.height),
        prepared.transform,
    )


@dataclass
class Queries:
    """Preprocessed queries (`QueryPredictor.preprocess`): the bookkeeping both backends generate from.

    Queries come in image order, then point order; query q asks about `images[image_index()[q]]`.

    Attributes:
        task: the task's name.
        prompt: the chat prompt of every query, ending with the forced answer prefix.
        images: the focal-unified images without markers, one per input image.
        cameras: their intrinsics (focal exactly f*) [px].
        points: per image, (N_i, 2) int [px] query pixels in the unified image (the markers' anchors).
        style: the marker drawn at each anchor.
        num_points: markers per query (2 for "two_point_distance").
        task_fields: the question's placeholders (e.g. `{"time": 2.0}`).
    """

    task: str
    prompt: str
    images: list[Image.Image]
    cameras: list[CameraIntrinsics]
    points: list[np.ndarray]
    style: MarkerStyle
    num_points: int = 1
    task_fields: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(p) for p in self.points) // self.num_points

    def image_index(self) -> np.ndarray:
        """(Q,) int: the input image each query asks about."""
        return np.repeat(np.arange(len(self.points)), [len(p) // self.num_points for p in self.points])

    def groups(self) -> Iterator[tuple[int, np.ndarray]]:
        """Per query, in order: (image index, (num_points, 2) int [px] marker anchors in the unified image)."""
        for i, pts in enumerate(self.points):
            for group in group_points(pts, self.num_points):
                yield i, group

    def marked_images(self) -> Iterator[Image.Image]:
        """Per query, in order: the marked image the model sees."""
        for i, group in self.groups():
            yield draw_markers(self.images[i], group, self.style)


class QueryPredictor(ABC):
    """The steps every backend shares: `preprocess` (queries -> `Queries`) and `postprocess` (ids -> values).

    A backend implements `answer(queries, batch_size, progress) -> Generated`: greedy generation after
    the forced prefix, with the log-probability of each generated token.

    Args:
        processor: the `DepthLMProcessor` saved with the model.
        batch_size: queries per generation call.
        max_new_tokens: tokens generated per query after the forced prefix (the number and its end).
        show_progress: tqdm bars on multi-batch work.
    """

    def __init__(
        self,
        processor: DepthLMProcessor,
        batch_size: int = 16,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        show_progress: bool = True,
    ) -> None:
        if not isinstance(processor, DepthLMProcessor):
            raise TypeError(f"`processor` must be a DepthLMProcessor, got {type(processor).__name__}.")
        if max_new_tokens < 2:
            raise ValueError(
                f"`max_new_tokens` must be >= 2 (a digit and the token ending it), got {max_new_tokens!r}."
            )
        self.processor = processor
        self.batch_size = self._size(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.show_progress = show_progress
        self.classes = TokenClasses(processor.tokenizer)

    def _size(self, batch_size: int | None) -> int:
        size = self.batch_size if batch_size is None else int(batch_size)
        if size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
        return size

    def unify(
        self, image: ImageInput, intrinsics: CameraIntrinsics | Sequence[float]
    ) -> tuple[Image.Image, CameraIntrinsics, PixelTransform]:
        """`unify(self.processor, image, intrinsics)`."""
        return unify(self.processor, image, intrinsics)

    def preprocess(
        self,
        images: ImageInput | Sequence[ImageInput],
        intrinsics: CameraIntrinsics | Sequence[float] | Sequence[CameraIntrinsics | Sequence[float]],
        points: Points | Sequence[Points],
        task: str = "distance",
        task_fields: dict[str, float] | None = None,
    ) -> Queries:
        """Check the queries, unify each image once, map the points into it, build the prompt.

        Args:
            images: one image or a list (nesting as `depthlm_hf.prompting.queries` documents).
            intrinsics: one camera `[fx, fy, cx, cy, width, height]` [px] per image.
            points: per image an (N, 2) [px] array of input pixels `[x, y]`; N a non-zero multiple of the
                task's points per query.
            task: a single-image task of `depthlm_hf.tasks.text.TASKS`.
            task_fields: the question's placeholders (e.g. `{"time": 2.0}` for "speed").

        Raises `ValueError` naming the argument for a multi-image task, a wrong number of points, or a
        point outside its image or too close to its border for a marker.
        """
        spec = answers.get_task(task)
        if spec.num_images != 1:
            raise ValueError(f"`task` {task!r} takes {spec.num_images} images per query; `predict` takes one image.")
        items = image_list(images)
        queries = Queries(task, "", [], [], [], self.processor.marker_style, spec.num_points, dict(task_fields or {}))
        cameras, per_image = camera_list(intrinsics, len(items)), points_per_image(points, len(items))
        for image, camera, pts in zip(items, cameras, per_image, strict=True):
            if len(pts) == 0 or len(pts) % spec.num_points:
                raise ValueError(
                    f"`points` must hold a non-zero multiple of {spec.num_points} pixels for task {task!r}, "
                    f"got {len(pts)}."
                )
            image = load_image(image, self.processor.max_image_pixels)
            camera = CameraIntrinsics.from_list(camera)
            check_size(image, camera)
            # A clear ValueError, in input-image terms, for points outside the image or too near its border.
            queries.points.append(self.processor.map_queries(camera, pts).points)
            unified, exact, _ = self.unify(image, camera)
            queries.images.append(unified)
            queries.cameras.append(exact)
        messages = self.processor.task_messages(task, **queries.task_fields)
        prompt = self.processor.base_processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        queries.prompt = prompt + self.processor.forced_prefix(task)
        return queries

    @abstractmethod
    def answer(self, queries: Queries, batch_size: int | None = None, progress: bool | None = None) -> Generated:
        """Greedy tokens and their log-probabilities after the forced prefix, one row per query of `queries`."""

    def postprocess(self, generated: Generated, task: str = "distance") -> DepthPrediction:
        """Token ids -> values in `task`'s unit ([m] for distances), confidence and texts."""
        return decode_numbers(self.processor, self.classes, generated, task)

    def predict(
        self,
        image: ImageInput,
        intrinsics: CameraIntrinsics | Sequence[float],
        points: Points,
        task: str = "distance",
        batch_size: int | None = None,
        task_fields: dict[str, float] | None = None,
        progress: bool | None = None,
    ) -> DepthPrediction:
        """Answer one query per point (per pair of points for "two_point_distance") of one image.

        Args:
            image: RGB image (PIL, path or (H, W, 3) uint8 array).
            intrinsics: its camera, `[fx, fy, cx, cy, width, height]` [px].
            points: (N, 2) [px] query pixels `[x, y]` of the input image.
            task: a single-image task of `depthlm_hf.tasks.text.TASKS`.
            batch_size: queries per generation call (default: the predictor's).
            task_fields: the question's placeholders (e.g. `{"time": 2.0}` for "speed").
            progress: show a progress bar (default: when there is more than one batch).

        Returns:
            `DepthPrediction` with Q = N / points-per-query answers.
        """
        return self.predict_batch([(image, intrinsics, points)], task, batch_size, task_fields, progress)

    def predict_batch(
        self,
        queries: Sequence[Query],
        task: str = "distance",
        batch_size: int | None = None,
        task_fields: dict[str, float] | None = None,
        progress: bool | None = None,
    ) -> DepthPrediction:
        """Answer a list of `(image, intrinsics, points)`: one answer per point (per pair for two-point tasks).

        Answers come in list order, then point order; batches may mix images. Each image is unified once.
        Unfit queries (`DepthLMProcessor.markable`) get `None` and a `reasons` entry; other arguments as in `predict`.
        """
        kept, reasons = query_inputs.split_unfit(self.processor, queries, task)
        if not kept:
            return DepthPrediction([], np.zeros(0), []).with_unasked(reasons)
        images, cameras, points = (list(part) for part in zip(*kept, strict=True))
        prepared = self.preprocess(images, cameras, points, task, task_fields)
        return self.postprocess(self.answer(prepared, batch_size, progress), task).with_unasked(reasons)


class DepthLMPredictor(QueryPredictor):
    """A DepthLM model and its processor, answering batches of visual-prompt queries with transformers.
    Qwen2.5-VL vision attention runs batched (exact; `vision_attention.disable(predictor.model)` undoes it).

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
        ("official_pixtral" for facebook/DepthLM, else "paper", logged); an explicit `preset` wins. Defaults:
        the first GPU if any, bf16 weights and SDPA attention; float32 on CPU. `image_backend`: the image
        processor's backend ("pil", "torchvision", None: transformers' choice); "pil" allows the fast path.
        `kwargs` go to the constructor (`batch_size`, `max_new_tokens`, `show_progress`, `fast_images`)."""
        from transformers import AutoModelForImageTextToText

        check_model_source(str(path), "path")
        device = resolve_device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=dtype, attn_implementation=attn_implementation or "sdpa", revision=revision
        ).to(device)
        backend = {} if image_backend is None else {"backend": image_backend}
        settings = presets.checkpoint_settings(path, preset, revision)
        processor = DepthLMProcessor.from_pretrained(path, revision=revision, **backend, **settings)
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
        base = self.processor.base_processor
        prefix = self.processor.forced_prefix(task)
        starts = range(0, len(rows), size)
        show = self.show_progress if progress is None else progress
        out = Generated([], [])
        for start in tqdm(starts, desc="queries", unit="batch", disable=not show or len(starts) < 2):
            batch = rows[start : start + size]
            texts = [
                base.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True) + prefix
                for row in batch
            ]
            inputs = base(
                images=[list(row["images"]) for row in batch],
                text=texts,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            )
            out.extend(self.generate(inputs))
        return self.postprocess(out, task)
