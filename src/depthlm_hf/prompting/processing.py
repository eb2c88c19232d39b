"""Processors that turn (image, camera intrinsics, query pixels, task) into VLM inputs, and text back into metres.

`VisualPromptProcessor` wraps a VLM's own processor (Qwen2.5-VL, Pixtral/Llava, ...): it unifies the focal
length, optionally crops, draws the markers, builds the chat messages and calls the wrapped processor.
`DepthLMProcessor` adds the DepthLM tasks' question/answer text and the answer parser.

Settings are `__init__` keywords stored under the same name, so they round-trip through
`processor_config.json`. That file names the *wrapped* class as `processor_class`, so
`AutoProcessor.from_pretrained` on a saved folder still returns the stock VLM processor and the
checkpoint stays usable by stock transformers and serving engines.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from transformers import ImageProcessingMixin, PreTrainedTokenizerBase, ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

from depthlm_hf.geometry import CameraIntrinsics, PixelTransform, crop_transform, unify_focal_length
from depthlm_hf.prompting.imaging import DEFAULT_MAX_PIXELS, apply_transform, load_image
from depthlm_hf.prompting.markers import MarkerStyle, draw_markers, marker_fits
from depthlm_hf.tasks import text as answers

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "unified_focal_length": 1000.0,
        "focal_mode": "xy",
        "marker": MarkerStyle().to_dict(),
        "question_template": None,
        "answer_template": None,
        "system_prompt": None,
    },
    "official_pixtral": {
        "base_processor_class": "PixtralProcessor",
        "unified_focal_length": 750.0,
        "focal_mode": "fx",
        "marker": MarkerStyle().to_dict(),
        "question_template": answers.OFFICIAL_QUESTION,
        "answer_template": answers.OFFICIAL_ANSWER,
        "system_prompt": None,
    },
}
"""Named settings. "paper": the paper's inputs (f* = 1000 px, red arrow, its sentences). "official_pixtral": the
official release's Pixtral-12B checkpoint (f* = 750 px scaled by fx only, its think/answer prompt and tags)."""


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the model.

    Attributes:
        image: the resized (and cropped) RGB image with the markers drawn.
        points: (N, 2) int [px] query pixels in `image` (the markers' anchors).
        intrinsics: camera intrinsics of `image`.
        transform: the map from input pixels to `image` pixels.
    """

    image: Image.Image
    points: np.ndarray
    intrinsics: CameraIntrinsics
    transform: PixelTransform


def _resolve_processor_class(name: str) -> type:
    transformers = importlib.import_module("transformers")
    cls = getattr(transformers, name, None)
    if cls is None and "." in name:
        module, _, attr = name.rpartition(".")
        cls = getattr(importlib.import_module(module), attr, None)
    if not (isinstance(cls, type) and issubclass(cls, ProcessorMixin)):
        raise ValueError(
            f"`base_processor_class` {name!r} is not a transformers processor class (e.g. 'Qwen2_5_VLProcessor', "
            f"'PixtralProcessor', 'LlavaProcessor')."
        )
    if "video_processor" not in inspect.signature(cls.__init__).parameters:
        return cls

    # transformers reads a processor's sub-processors from its __init__ signature: a subclass without the video
    # argument needs no video processor (which would need torchvision) and processes images exactly as the base.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        cls.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": __name__})


def _as_list(value: Any, name: str) -> list:
    if isinstance(value, (list, tuple)) and not (
        name == "intrinsics" and len(value) == 6 and all(isinstance(v, (int, float)) for v in value)
    ):
        return list(value)
    return [value]


class VisualPromptProcessor(ProcessorMixin):
    """Visual prompting around a VLM processor: focal unification, crop, markers, chat messages.

    Args:
        image_processor: the wrapped VLM processor's image processor.
        tokenizer: the wrapped VLM processor's tokenizer.
        chat_template: the chat template (Jinja) used to build prompts.
        base_processor_class: name of the wrapped processor class in transformers.
        base_processor_kwargs: extra settings of the wrapped processor (e.g. `{"patch_size": 16}` for Llava).
        unified_focal_length: focal length f* [px] every image is resized to (paper: 1000).
        focal_mode: "xy" scales each axis to f* (exact even when fx != fy); "fx" scales both by f*/fx as
            the official release does.
        marker: marker style as a dict (see `MarkerStyle`).
        question_template: overrides the distance task's question.
        answer_template: overrides the distance task's answer (`{value}` receives the number).
        system_prompt: optional system message.
        max_image_pixels: decompression-bomb guard for input images.
        preset: the name of the `PRESETS` entry these settings came from (informational).
    """

    def __init__(
        self,
        image_processor: ImageProcessingMixin | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        chat_template: str | None = None,
        base_processor_class: str = "Qwen2_5_VLProcessor",
        base_processor_kwargs: dict | None = None,
        unified_focal_length: float = 1000.0,
        focal_mode: str = "xy",
        marker: dict | None = None,
        question_template: str | None = None,
        answer_template: str | None = None,
        system_prompt: str | None = None,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        preset: str | None = "paper",
        **kwargs,
    ):
        if focal_mode not in ("xy", "fx"):
            raise ValueError(f"`focal_mode` must be 'xy' or 'fx', got {focal_mode!r}.")
        unify_focal_length(CameraIntrinsics(1.0, 1.0, 1.0, 1.0, 2, 2), unified_focal_length)  # validates f*
        self.base_processor_class = base_processor_class
        self.base_processor_kwargs = dict(base_processor_kwargs or {})
        self.unified_focal_length = float(unified_focal_length)
        self.focal_mode = focal_mode
        self.marker = MarkerStyle.from_dict(marker).to_dict()
        self.question_template = question_template
        self.answer_template = answer_template
        self.system_prompt = system_prompt
        self.max_image_pixels = int(max_image_pixels)
        self.preset = preset
        self._base_class = _resolve_processor_class(base_processor_class)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def from_preset(cls, preset: str, image_processor, tokenizer, chat_template: str | None = None, **overrides):
        """A processor with the settings of `PRESETS[preset]`, updated by `overrides`."""
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}. Available: {', '.join(PRESETS)}.")
        settings = {**PRESETS[preset], "preset": preset, **overrides}
        return cls(image_processor, tokenizer, chat_template=chat_template, **settings)

    def to_dict(self) -> dict[str, Any]:
        """Settings for `processor_config.json`, under the wrapped class's name (see the module docstring)."""
        output = super().to_dict()
        output.update(self.base_processor_kwargs)  # the stock class reads its own settings at the top level
        output["processor_class"] = self.base_processor_class
        output["depthlm_processor_class"] = self.__class__.__name__
        return output

    @property
    def base_processor(self) -> ProcessorMixin:
        """The wrapped VLM processor, sharing this processor's image processor, tokenizer and chat template."""
        return self._base_class(
            self.image_processor, self.tokenizer, chat_template=self.chat_template, **self.base_processor_kwargs
        )

    @property
    def marker_style(self) -> MarkerStyle:
        return MarkerStyle.from_dict(self.marker)

    # ----------------------------------------------------------------------------------------------- images
    def focal_transform(self, intrinsics: CameraIntrinsics | Sequence[float]) -> PixelTransform:
        """The resize that gives `intrinsics` the unified focal length."""
        return unify_focal_length(CameraIntrinsics.from_list(intrinsics), self.unified_focal_length, self.focal_mode)

    def prepare(
        self,
        image: Image.Image | str | np.ndarray,
        intrinsics: CameraIntrinsics | Sequence[float],
        points: np.ndarray | Sequence[Sequence[float]] | None,
        crop: tuple[int, int, int, int] | None = None,
    ) -> PreparedImage:
        """Unify the focal length, crop to `crop` = (left, top, width, height) in the unified image, draw markers.

        `points` (N, 2) [px] are query pixels of the *input* image (integer pixel centres); `None` or an
        empty list draws no marker. Raises `ValueError` naming the argument when a point is outside the
        input image, leaves the crop, or is too close to the border for its marker.
        """
        image = load_image(image, self.max_image_pixels)
        camera = CameraIntrinsics.from_list(intrinsics)
        if (image.width, image.height) != (camera.width, camera.height):
            raise ValueError(
                f"`intrinsics` describe a {camera.width}x{camera.height} image but `image` is "
                f"{image.width}x{image.height}."
            )
        transform = self.focal_transform(camera)
        if crop is not None:
            transform = transform.then(crop_transform(transform.out_width, transform.out_height, *crop))
        pts = _validate_points(points, camera)
        mapped = np.rint(transform.map_points(pts)).astype(np.int64) if len(pts) else np.zeros((0, 2), np.int64)
        style = self.marker_style
        if len(mapped):
            fits = marker_fits(mapped, transform.out_width, transform.out_height, style)
            if not fits.all():
                raise ValueError(
                    f"`points` {pts[~fits].tolist()} map to {mapped[~fits].tolist()} in the "
                    f"{transform.out_width}x{transform.out_height} model image, outside it or too close to its border "
                    f"for a {style.shape} marker of size {style.size}."
                )
        out = apply_transform(image, transform)
        if len(mapped):
            out = draw_markers(out, mapped, style)
        return PreparedImage(out, mapped, transform.map_intrinsics(camera), transform)

    # ------------------------------------------------------------------------------------------------- text
    def prompt_messages(self, question: str, num_images: int = 1) -> list[dict]:
        """The user turn asking `question` about `num_images` images (after a system turn if `system_prompt` is set)."""
        content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": question}]
        messages = [{"role": "user", "content": content}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        return messages

    # -------------------------------------------------------------------------------------------- model inputs
    def __call__(
        self,
        images=None,
        text=None,
        intrinsics=None,
        points=None,
        question: str | None = None,
        points_per_query: int = 1,
        assistant_prefix: str = "",
        **kwargs,
    ) -> BatchFeature:
        """Generation inputs for visual-prompt queries, or the wrapped processor's output for plain `text`.

        With `intrinsics`: `images` is one image or a list, `intrinsics` one camera per image, `points` one
        (N, 2) [px] array per image. Every group of `points_per_query` consecutive points is one query (one
        marked image, one conversation asking `question`); queries come in image order, then point order,
        left-padded. `assistant_prefix` is appended after the generation prompt (forced answer text).
        Without `intrinsics` the call goes to the wrapped processor unchanged, so this processor can serve
        as a trainer's `processing_class`.
        """
        if intrinsics is None:
            if points is not None:
                raise ValueError("`points` need `intrinsics`: pass one camera per image.")
            return self.base_processor(images=images, text=text, **kwargs)
        if text is not None:
            raise ValueError(
                "Pass either `text` (plain VLM call) or `intrinsics` and `points` (visual prompts), not both."
            )
        if not isinstance(question, str) or not question:
            raise ValueError(f"`question` must be a non-empty string for visual-prompt queries, got {question!r}.")
        base = self.base_processor
        prompt = base.apply_chat_template(self.prompt_messages(question), tokenize=False, add_generation_prompt=True)
        query_images = self.query_images(images, intrinsics, points, points_per_query)
        kwargs.setdefault("padding", True)
        kwargs.setdefault("padding_side", "left")
        kwargs.setdefault("return_tensors", "pt")
        return base(images=query_images, text=[prompt + assistant_prefix] * len(query_images), **kwargs)

    def query_images(self, images, intrinsics, points, points_per_query: int = 1) -> list[list[Image.Image]]:
        """One marked model image per query (see `__call__`), each wrapped in a list (one image per conversation)."""
        image_list, camera_list = _as_list(images, "images"), _as_list(intrinsics, "intrinsics")
        if len(camera_list) != len(image_list):
            raise ValueError(
                f"`intrinsics` has {len(camera_list)} cameras for {len(image_list)} images; pass one per image."
            )
        point_list = [None] * len(image_list) if points is None else _as_list(points, "points")
        if points is not None and len(image_list) == 1 and len(point_list) != 1:
            point_list = [points]
        if len(point_list) != len(image_list):
            raise ValueError(f"`points` has {len(point_list)} arrays for {len(image_list)} images; pass one per image.")
        queries = []
        for image, camera, pts in zip(image_list, camera_list, point_list, strict=True):
            image = load_image(image, self.max_image_pixels)
            queries.extend([self.prepare(image, camera, group).image] for group in _group_points(pts, points_per_query))
        return queries

    def batch_decode(self, *args, **kwargs) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs) -> str:
        return self.tokenizer.decode(*args, **kwargs)


def _point_array(points) -> np.ndarray:
    """`points` as a float (N, 2) array (N may be 0), or a `ValueError` naming the argument."""
    if points is None:
        return np.zeros((0, 2))
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(
            f"`points` must be an (N, 2) array of [x, y] pixels; got a ragged or non-numeric {points!r}."
        ) from None
    if pts.size == 0:
        return np.zeros((0, 2))
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"`points` must have shape (N, 2) ([x, y] per point), got {pts.shape}.")
    return pts


def _validate_points(points, camera: CameraIntrinsics) -> np.ndarray:
    pts = _point_array(points)
    inside = np.isfinite(pts).all(axis=1)
    inside &= (pts[:, 0] >= 0) & (pts[:, 0] <= camera.width - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= camera.height - 1)
    if not inside.all():
        raise ValueError(
            f"`points` {pts[~inside].tolist()} lie outside the {camera.width}x{camera.height} image "
            f"(x in [0, {camera.width - 1}], y in [0, {camera.height - 1}])."
        )
    return pts


def _group_points(points, per_query: int) -> list[np.ndarray]:
    pts = _point_array(points)
    if pts.shape[0] == 0 or pts.shape[0] % per_query:
        raise ValueError(
            f"`points` must be a non-empty (N, 2) array with N a multiple of {per_query} for this task, got shape "
            f"{pts.shape if points is not None else None}."
        )
    return [pts[i : i + per_query] for i in range(0, pts.shape[0], per_query)]


class DepthLMProcessor(VisualPromptProcessor):
    """The DepthLM processor: visual prompts plus the six tasks' question/answer text and the answer parser.

    Tasks are named in `depthlm_hf.tasks.text.TASKS`; `question_template`/`answer_template` override the
    distance task's text (the "official_pixtral" preset uses them).
    """

    def question(self, task: str = "distance", **fields: float) -> str:
        """The question of `task`, its placeholders (e.g. `{time}`) filled from `fields`."""
        template = self.question_template if task == "distance" else None
        return answers.question(task, template=template, **fields)

    def task_messages(self, task: str = "distance", **fields: float) -> list[dict]:
        """The prompt messages of `task` (as many image slots as the task has images)."""
        return self.prompt_messages(self.question(task, **fields), answers.get_task(task).num_images)

    def format_answer(self, value: float, task: str = "distance") -> str:
        """The training answer for `value` [m, s or m/s], two decimals."""
        template = self.answer_template if task == "distance" else None
        return answers.format_answer(value, task, template=template)

    def answer_prefix(self, task: str = "distance") -> str:
        """The fixed text before the number in `task`'s answer (forced at inference so only the number is generated)."""
        template = (self.answer_template if task == "distance" else None) or answers.get_task(task).answer
        return template.split("{value}")[0]

    def forced_prefix(self, task: str = "distance") -> str:
        """The part of `answer_prefix(task)` that tokenizes exactly as it does inside a training answer.

        Tokenizers that glue a space to the digit after it ("Ġ3") would see a different context after
        "around " than after "around" + "Ġ3" in training; then the trailing whitespace is left to the model.
        """
        prefix = self.answer_prefix(task)
        encode = functools.partial(self.tokenizer.encode, add_special_tokens=False)
        prefix_ids, answer_ids = encode(prefix), encode(self.format_answer(1.25, task))
        return prefix if answer_ids[: len(prefix_ids)] == prefix_ids else prefix.rstrip()

    def parse_answer(self, text: object, task: str = "distance") -> float | None:
        """The number in `text` in the task's unit, or `None`; never raises."""
        return answers.parse_answer(text, task)

    def completion_messages(self, value: float, task: str = "distance") -> list[dict]:
        """The assistant turn answering `value`."""
        return [{"role": "assistant", "content": [{"type": "text", "text": self.format_answer(value, task)}]}]

    def training_row(
        self,
        image: Image.Image | str | np.ndarray,
        intrinsics: CameraIntrinsics | Sequence[float],
        points: np.ndarray | Sequence[Sequence[float]] | None,
        value: float,
        task: str = "distance",
        crop: tuple[int, int, int, int] | None = None,
        **fields: float,
    ) -> dict[str, Any]:
        """A TRL prompt/completion row for SFT: `{"images": [marked image], "prompt": [...], "completion": [...]}`."""
        prepared = self.prepare(image, intrinsics, points, crop=crop)
        return {
            "images": [prepared.image],
            "prompt": self.task_messages(task, **fields),
            "completion": self.completion_messages(value, task),
        }

    def __call__(
        self,
        images=None,
        text=None,
        intrinsics=None,
        points=None,
        task: str = "distance",
        force_answer_prefix: bool = False,
        task_fields: dict[str, float] | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Generation inputs for `task` queries (see `VisualPromptProcessor.__call__`), or a plain VLM call.

        `force_answer_prefix=True` ends each prompt with `forced_prefix(task)`, so that the model only
        generates the number. `task_fields` fill the question's placeholders (e.g. `{"time": 2.0}`).
        """
        if intrinsics is None:
            return super().__call__(images=images, text=text, points=points, **kwargs)
        spec = answers.get_task(task)
        if spec.num_images != 1:
            raise ValueError(f"task {task!r} takes {spec.num_images} images per query; build it with `task_messages`.")
        return super().__call__(
            images=images,
            text=text,
            intrinsics=intrinsics,
            points=points,
            question=self.question(task, **(task_fields or {})),
            points_per_query=spec.num_points,
            assistant_prefix=self.forced_prefix(task) if force_answer_prefix else "",
            **kwargs,
        )
