"""Fast batched DepthLM inference: metres and a confidence per query pixel.

`DepthLMPredictor` answers many queries about one image with the least generation work that gives the
same answer as a full generation:

- queries are batched (left padding) and each batch goes through one `generate` call;
- the fixed answer text before the number ("The point is around ") is forced into the prompt, so the
  model only generates the number;
- generation of a row stops at the first token after the number (`NumberEndCriteria`), so
  `max_new_tokens` stays small (8 by default) and no row runs on to the end of its turn;
- the focal-length unification (the costly resize) runs once per image, not once per query, and for
  Qwen2-VL-style processors the image processor too: each query only re-processes the patches its
  marker changes (`depthlm_hf.prompting.marker_patches`, bit-identical to the stock processor's output);
- `torch.inference_mode`, and bf16 weights with SDPA attention when loaded on a GPU.

Each query needs its own marked image (one marker per image, as in training), so the vision tower
still encodes the whole image once per query.

Confidence of a query: the probability the model gives to its answer at 0.1 resolution, i.e. the
product of the probabilities of the number's tokens up to and including the first decimal digit,
along the greedy path (later digits are sub-decimetre noise that would swamp the product).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import (
    BatchFeature,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from depthlm_hf.geometry import CameraIntrinsics, PixelTransform
from depthlm_hf.prompting import marker_patches
from depthlm_hf.prompting.imaging import load_image
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.prompting.queries import point_array
from depthlm_hf.tasks import text as answers

DEFAULT_MAX_NEW_TOKENS = 8


@dataclass
class DepthPrediction:
    """Answers to Q queries.

    Attributes:
        values: (Q,) answers in the task's unit ([m] for distances), `None` where the model's text gave no
            number or the number did not end within `max_new_tokens`.
        confidence: (Q,) float in [0, 1], the probability of the answer at 0.1 resolution; NaN where
            `values` is `None`.
        texts: (Q,) the generated text after the forced prefix (the number and the token that ended it).
    """

    values: list[float | None]
    confidence: np.ndarray
    texts: list[str]

    def as_array(self) -> np.ndarray:
        """`values` as a (Q,) float array, NaN where `None`."""
        return np.array([math.nan if v is None else v for v in self.values], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.values)


class TokenClasses:
    """Which tokens of a vocabulary may belong to a number: digit/point tokens, whitespace tokens.

    Built once per tokenizer by decoding every id (about a second for a 150k vocabulary). Ids past the
    tokenizer (model vocabularies are often padded) belong to no class.
    """

    def __init__(self, tokenizer: Any) -> None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        texts = ["" if i in special else t for i, t in enumerate(texts)]
        self.numeric = torch.tensor([t.strip() != "" and all(c in "0123456789." for c in t.strip()) for t in texts])
        self.space = torch.tensor([t != "" and t.strip() == "" for t in texts])
        self.digit = torch.tensor([any(c.isdigit() for c in t) for t in texts])
        self.decimal_point = torch.tensor(["." in t for t in texts])
        self._lists = {name: getattr(self, name).tolist() for name in ("numeric", "space", "digit", "decimal_point")}

    def to(self, device: torch.device | str) -> TokenClasses:
        for name in ("numeric", "space", "digit", "decimal_point"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def has(self, name: str, token: int) -> bool:
        table = self._lists[name]
        return 0 <= token < len(table) and table[token]

    def number_end(self, tokens: Sequence[int]) -> int | None:
        """Index of the first token ending the number (see `NumberEndCriteria`); `None` if it never ends."""
        digit_seen = False
        for i, token in enumerate(tokens):
            space = self.has("space", token)
            if (not self.has("numeric", token) and not space) or (space and digit_seen):
                return i
            digit_seen = digit_seen or self.has("digit", token)
        return None

    def confidence(self, tokens: Sequence[int], logprobs: Sequence[float]) -> float:
        """exp(sum of log-probs) of a number's tokens up to and including the first decimal digit."""
        total, seen_point = 0.0, False
        for token, logprob in zip(tokens, logprobs, strict=True):
            total += logprob
            if seen_point and self.has("digit", token):
                break
            seen_point = seen_point or self.has("decimal_point", token)
        return math.exp(total)


def _lookup(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return table[ids.clamp(0, table.shape[0] - 1)] & (ids < table.shape[0])


class NumberEndCriteria(StoppingCriteria):
    """Stops a row at the first generated token that cannot continue the number.

    Leading whitespace tokens are allowed before the first digit; after a digit, whitespace ends the
    number too. A row whose first token is not part of a number stops at once (its answer is `None`).
    """

    def __init__(self, classes: TokenClasses, prompt_length: int) -> None:
        self.classes = classes
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] == 0:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        last = generated[:, -1]
        digit_before = _lookup(self.classes.digit, generated[:, :-1]).any(dim=1)
        space = _lookup(self.classes.space, last)
        numeric = _lookup(self.classes.numeric, last)
        return (~numeric & ~space) | (space & digit_before)


class _SelectedLogProb(LogitsProcessor):
    """Records, at each step, the log-probability of the greedy choice (the last processor in the list)."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.steps.append(torch.log_softmax(scores.float(), dim=-1).max(dim=-1).values)
        return scores


def _sized(image: Image.Image, intrinsics: CameraIntrinsics | Sequence[float]) -> CameraIntrinsics:
    camera = CameraIntrinsics.from_list(intrinsics)
    if (image.width, image.height) != (camera.width, camera.height):
        raise ValueError(
            f"`intrinsics` describe a {camera.width}x{camera.height} image but `image` is {image.width}x{image.height}."
        )
    return camera


def unify(
    processor: DepthLMProcessor,
    image: Image.Image | str | np.ndarray,
    intrinsics: CameraIntrinsics | Sequence[float],
) -> tuple[Image.Image, CameraIntrinsics, PixelTransform]:
    """The focal-unified image (no markers), its intrinsics (focal exactly f*), the map from input pixels.

    Passing this image and intrinsics back to the processor makes its own unification an identity,
    so the resize runs once per image instead of once per query.
    """
    image = load_image(image, processor.max_image_pixels)
    prepared = processor.render(image, processor.map_queries(_sized(image, intrinsics)))
    f, intr = processor.unified_focal_length, prepared.intrinsics
    # "fx" mode scales both axes by f*/fx, so fy keeps the ratio fy/fx; only fx must be exactly f*.
    fy = f if processor.focal_mode == "xy" else intr.fy * f / intr.fx
    return (
        prepared.image,
        CameraIntrinsics(f, fy, intr.cx, intr.cy, intr.width, intr.height),
        prepared.transform,
    )


class DepthLMPredictor:
    """A DepthLM model and its processor, answering batches of visual-prompt queries.

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
        if not isinstance(processor, DepthLMProcessor):
            raise TypeError(f"`processor` must be a DepthLMProcessor, got {type(processor).__name__}.")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
        if max_new_tokens < 2:
            raise ValueError(
                f"`max_new_tokens` must be >= 2 (a digit and the token ending it), got {max_new_tokens!r}."
            )
        self.model = model.eval()
        self.processor = processor
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.show_progress = show_progress
        self.fast_images = fast_images
        self.classes = TokenClasses(processor.tokenizer).to(self.device)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        attn_implementation: str | None = None,
        image_backend: str | None = "pil",
        **kwargs: Any,
    ) -> DepthLMPredictor:
        """Load a checkpoint folder saved with `model.save_pretrained` and `processor.save_pretrained`.

        Defaults: the first GPU when there is one, with bf16 weights and SDPA attention; float32 on CPU.
        `image_backend` picks the image processor's backend ("pil", "torchvision", or None for
        transformers' choice); with "pil" the marker-patch fast path applies (see `fast_images`).
        `kwargs` go to the constructor (`batch_size`, `max_new_tokens`, `show_progress`, `fast_images`).
        """
        from transformers import AutoModelForImageTextToText

        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=dtype, attn_implementation=attn_implementation or "sdpa"
        ).to(device)
        backend = {} if image_backend is None else {"backend": image_backend}
        processor = DepthLMProcessor.from_pretrained(path, **backend)
        return cls(model, processor, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------------------------ queries
    def unify(
        self, image: Image.Image | str | np.ndarray, intrinsics: CameraIntrinsics | Sequence[float]
    ) -> tuple[Image.Image, CameraIntrinsics, PixelTransform]:
        """`unify(self.processor, image, intrinsics)`."""
        return unify(self.processor, image, intrinsics)

    def predict(
        self,
        image: Image.Image | str | np.ndarray,
        intrinsics: CameraIntrinsics | Sequence[float],
        points: np.ndarray | Sequence[Sequence[float]],
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
            batch_size: queries per `generate` call (default: the predictor's).
            task_fields: the question's placeholders (e.g. `{"time": 2.0}` for "speed").
            progress: show a progress bar (default: when there is more than one batch).

        Returns:
            `DepthPrediction` with Q = N / points-per-query answers.
        """
        spec = answers.get_task(task)
        if spec.num_images != 1:
            raise ValueError(f"`task` {task!r} takes {spec.num_images} images per query; `predict` takes one image.")
        pts = point_array(points)
        if len(pts) == 0 or len(pts) % spec.num_points:
            raise ValueError(
                f"`points` must hold a non-zero multiple of {spec.num_points} pixels for task {task!r}, got {len(pts)}."
            )
        image = load_image(image, self.processor.max_image_pixels)
        # A clear ValueError, in input-image terms, for points outside the image or too near its border (no pixels).
        mapped = self.processor.map_queries(_sized(image, intrinsics), pts).points
        unified, camera, _ = self.unify(image, intrinsics)
        size = self.batch_size if batch_size is None else int(batch_size)
        if size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
        per_batch = size * spec.num_points

        def inputs_for(chunk: np.ndarray) -> Any:
            return self.processor(
                images=unified,
                intrinsics=camera,
                points=chunk,
                task=task,
                task_fields=task_fields,
                force_answer_prefix=True,
            )

        batcher = None
        if self.fast_images and spec.num_points == 1 and marker_patches.supported(self.processor):
            try:
                batcher = marker_patches.MarkedImageBatcher(
                    self.processor, unified, dict(inputs_for(mapped[:1])), device=self.device
                )
            except ValueError:  # PIL resized this image in a way the batcher cannot reproduce exactly
                batcher = None
        starts = range(0, len(mapped), per_batch)
        show = self.show_progress if progress is None else progress
        parts = []
        for start in tqdm(starts, desc="queries", unit="batch", disable=not show or len(starts) < 2):
            chunk = mapped[start : start + per_batch]
            inputs = BatchFeature(batcher.batch(chunk)) if batcher is not None else inputs_for(chunk)
            parts.append(self.generate(inputs, task))
        return DepthPrediction(
            values=[v for p in parts for v in p.values],
            confidence=np.concatenate([p.confidence for p in parts]),
            texts=[t for p in parts for t in p.texts],
        )

    def predict_rows(
        self,
        rows: Sequence[dict[str, Any]],
        task: str = "distance",
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> DepthPrediction:
        """Answer prepared queries: rows `{"images": [PIL, ...], "prompt": [chat messages]}`, one per query.

        This is the general path (any task, several images per query, per-query question fields), e.g.
        for the rows of `depthlm_hf.data.EvaluationView`; `predict` is faster for many points of one image.
        """
        size = self.batch_size if batch_size is None else int(batch_size)
        if size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}.")
        base = self.processor.base_processor
        prefix = self.processor.forced_prefix(task)
        starts = range(0, len(rows), size)
        show = self.show_progress if progress is None else progress
        parts = [DepthPrediction([], np.zeros(0), [])]
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
            parts.append(self.generate(inputs, task))
        return DepthPrediction(
            values=[v for p in parts for v in p.values],
            confidence=np.concatenate([p.confidence for p in parts]),
            texts=[t for p in parts for t in p.texts],
        )

    @torch.inference_mode()
    def generate(self, inputs: Any, task: str = "distance") -> DepthPrediction:
        """Greedy-decode the numbers of one processor batch (prompts ending in the forced prefix)."""
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        prompt_length = inputs["input_ids"].shape[1]
        recorder = _SelectedLogProb()
        output = self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=self.max_new_tokens,
            stopping_criteria=StoppingCriteriaList([NumberEndCriteria(self.classes, prompt_length)]),
            logits_processor=LogitsProcessorList([recorder]),
            top_p=None,
            top_k=None,
            temperature=None,
        )
        generated = output[:, prompt_length:].tolist()
        logprobs = torch.stack(recorder.steps, dim=1).tolist() if recorder.steps else [[] for _ in generated]
        values, confidence, texts = [], [], []
        for tokens, row_logprobs in zip(generated, logprobs, strict=True):
            end = self.classes.number_end(tokens)
            text = self.processor.tokenizer.decode(
                tokens if end is None else tokens[: end + 1], skip_special_tokens=True
            )
            # A number still running at max_new_tokens may be cut short: better no answer than a wrong one.
            value = None if end is None else self.processor.parse_answer(text, task)
            values.append(value)
            confidence.append(math.nan if value is None else self.classes.confidence(tokens[:end], row_logprobs[:end]))
            texts.append(text)
        return DepthPrediction(values, np.array(confidence, dtype=np.float64), texts)
