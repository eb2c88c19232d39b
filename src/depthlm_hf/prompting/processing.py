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
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from transformers import ImageProcessingMixin, PreTrainedTokenizerBase, ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

from depthlm_hf.geometry import CameraIntrinsics, PixelTransform, check_finite_positive, crop_transform
from depthlm_hf.prompting import wrapped
from depthlm_hf.prompting.image_scale import keep_scale
from depthlm_hf.prompting.imaging import DEFAULT_MAX_PIXELS, apply_transform, check_max_pixels, load_image
from depthlm_hf.prompting.markers import MarkerStyle, draw_markers
from depthlm_hf.prompting.model_window import camera_and_crop, window_setting
from depthlm_hf.prompting.presets import PRESET_NAMES, PRESETS, ImageScale, PixelMap, check_settings
from depthlm_hf.prompting.query_inputs import (
    Points,
    PreparedImage,
    QueryMapping,
    camera_list,
    check_size,
    focal_transform,
    group_points,
    image_list,
    inside,
    markable_points,
    point_array,
    points_per_image,
    query_pixels,
    values_per_image,
)
from depthlm_hf.prompting.wrapped import (
    DepthLMProcessorKwargs,
    TemplateCompatibleMixin,
    resolve_processor_class,
    video_processor_entry,
)
from depthlm_hf.tasks import text as answers

Crop = tuple[int, int, int, int]
"""A crop window `(left, top, width, height)` [px] in the focal-unified image."""


class VisualPromptProcessor(TemplateCompatibleMixin, ProcessorMixin):
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
        pixel_map: "exact" (scale f*/f, pixels rounded) or "release" (the official arithmetic, `queries.query_pixels`).
        image_scale: "keep" (the wrapped image processor keeps the unified scale) or "processor" (its own limits).
        marker: marker style as a dict (see `MarkerStyle`).
        question_template: overrides the distance task's question.
        answer_template: overrides the distance task's answer (`{value}` receives the number).
        system_prompt: optional system message.
        max_image_pixels: decompression-bomb guard for input images.
        preset: the name of the `PRESETS` entry these settings came from (informational).
        window: the window the model was trained on (`depthlm_hf.prompting.model_window`; None: the whole image).
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
        pixel_map: PixelMap = "exact",
        image_scale: ImageScale = "keep",
        window: dict | None = None,
        **kwargs,
    ):
        check_settings(focal_mode, pixel_map, image_scale)
        self.base_processor_class = base_processor_class
        self.base_processor_kwargs = dict(base_processor_kwargs or {})
        self.unified_focal_length = check_finite_positive("unified_focal_length", unified_focal_length)
        self.focal_mode, self.pixel_map, self.image_scale = focal_mode, pixel_map, image_scale
        self.marker = MarkerStyle.from_dict(marker).to_dict()
        self.question_template, self.answer_template = question_template, answer_template
        self.system_prompt, self.preset, self.window = system_prompt, preset, window_setting(window)
        self.max_image_pixels = check_max_pixels(max_image_pixels, "max_image_pixels")
        self._base_class = resolve_processor_class(base_processor_class)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """`ProcessorMixin.from_pretrained` without remote code; a bad saved setting names itself and the file."""
        return wrapped.load_checked(cls, super().from_pretrained, pretrained_model_name_or_path, kwargs)

    @classmethod
    def from_preset(cls, preset: str, image_processor, tokenizer, chat_template: str | None = None, **overrides):
        """A processor with the settings of `PRESETS[preset]`, updated by `overrides`."""
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}. Available: {', '.join(PRESET_NAMES)}.")
        settings = {**PRESETS[preset], "preset": preset, **overrides}
        return cls(image_processor, tokenizer, chat_template=chat_template, **settings)

    def to_dict(self) -> dict[str, Any]:
        """Settings for `processor_config.json`, under the wrapped class's name (see the module docstring)."""
        output = super().to_dict()
        output.update(self.base_processor_kwargs)  # the stock class reads its own settings at the top level
        output["processor_class"] = self.base_processor_class
        output["depthlm_processor_class"] = self.__class__.__name__
        output.update(video_processor_entry(self.base_processor_class, output.get("image_processor")))
        return output

    @property
    def base_processor(self) -> ProcessorMixin:
        """The wrapped VLM processor, sharing this processor's image processor, tokenizer and chat template.

        Built once and kept; rebuilt only when one of those three is reassigned.
        """
        parts = (self.image_processor, self.tokenizer, self.chat_template)
        cached = self.__dict__.get("_base_cache")
        if cached is None or any(a is not b for a, b in zip(cached[0], parts, strict=True)):
            base = self._base_class(*parts[:2], chat_template=parts[2], **self.base_processor_kwargs)
            cached = self.__dict__["_base_cache"] = (parts, base)
        return cached[1]

    @property
    def model_input_names(self) -> list[str]:
        """The wrapped processor's model inputs (e.g. `mm_token_type_ids` where its output holds them)."""
        return list(self.base_processor.model_input_names)

    @property
    def marker_style(self) -> MarkerStyle:
        return MarkerStyle.from_dict(self.marker)

    # ----------------------------------------------------------------------------------------------- images
    def focal_transform(self, intrinsics: CameraIntrinsics | Sequence[float]) -> PixelTransform:
        """The resize that gives `intrinsics` the unified focal length (as `pixel_map` computes it); a ValueError
        (`UnifiedImageTooLargeError`) when the unified image would exceed `max_image_pixels` (a tiny focal length)."""
        return focal_transform(
            intrinsics, self.unified_focal_length, self.focal_mode, self.pixel_map, self.max_image_pixels
        )

    def query_transform(
        self, intrinsics: CameraIntrinsics | Sequence[float], crop: Crop | None = None
    ) -> PixelTransform:
        """Input pixels to model-image pixels: focal unification, then `crop` = (left, top, width, height)."""
        transform = self.focal_transform(intrinsics)
        if crop is not None:
            transform = transform.then(crop_transform(transform.out_width, transform.out_height, *crop))
        return transform

    def map_queries(
        self,
        intrinsics: CameraIntrinsics | Sequence[float],
        points: Points | None = None,
        crop: Crop | None = None,
        require_fit: bool = True,
    ) -> QueryMapping:
        """Where the (N, 2) [px] input `points` land in the model image, without touching pixels (pure).

        Raises `ValueError` naming `points` when one lies outside the input image, or (with
        `require_fit`) when its marker does not fit in the model image.
        """
        camera, crop = camera_and_crop(self, intrinsics, crop)
        pts = point_array(points)
        outside = ~inside(pts, camera)
        if outside.any():
            raise ValueError(
                f"`points` {pts[outside].tolist()} lie outside the {camera.width}x{camera.height} image "
                f"(x in [0, {camera.width - 1}], y in [0, {camera.height - 1}])."
            )
        transform, focal = self.query_transform(camera, crop), self.unified_focal_length
        mapped = query_pixels(pts, camera, transform, self.pixel_map, focal, crop)
        fits = markable_points(pts, camera, transform, self.marker_style, self.pixel_map, focal, crop)
        if require_fit and not fits.all():
            style = self.marker_style
            raise ValueError(
                f"`points` {pts[~fits].tolist()} map to {mapped[~fits].tolist()} in the "
                f"{transform.out_width}x{transform.out_height} model image, outside it or too close to its border "
                f"for a {style.shape} marker of size {style.size}."
            )
        return QueryMapping(transform, transform.map_intrinsics(camera), pts, mapped, fits)

    def markable(
        self, intrinsics: CameraIntrinsics | Sequence[float], points: Points | None = None, crop: Crop | None = None
    ) -> np.ndarray:
        """Whether a marker can sit on input pixels once the image is focal-unified (and cropped to `crop`).

        The one rule behind every query: the pixel lies in the input image and its marker, anchored at
        the model-image pixel (`query_pixels`), lies wholly inside the model image (`marker_fits`).

        Args:
            intrinsics: the input image's camera `[fx, fy, cx, cy, width, height]` [px].
            points: (N, 2) [px] input pixels; `None` asks about every pixel of the input image.
            crop: `(left, top, width, height)` [px] in the focal-unified image, or None.

        Returns:
            (N,) bool for `points`, or an (H, W) bool mask of the input image when `points` is None.
        """
        camera, crop = camera_and_crop(self, intrinsics, crop)
        if points is None:
            xs, ys = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
            return self.markable(camera, np.stack([xs.ravel(), ys.ravel()], -1), crop).reshape(
                camera.height, camera.width
            )
        transform, focal = self.query_transform(camera, crop), self.unified_focal_length
        pts = point_array(points, finite=False)  # a predicate: a NaN pixel is simply not markable
        return markable_points(pts, camera, transform, self.marker_style, self.pixel_map, focal, crop)

    def render(self, image: Image.Image | str | np.ndarray, mapping: QueryMapping) -> PreparedImage:
        """Resize (and crop) `image` through `mapping.transform` once and draw a marker on each mapped point."""
        out = apply_transform(load_image(image, self.max_image_pixels), mapping.transform)
        if len(mapping.points):
            out = draw_markers(out, mapping.points, self.marker_style)
        return PreparedImage(out, mapping.points, mapping.intrinsics, mapping.transform)

    def prepare(
        self,
        image: Image.Image | str | np.ndarray,
        intrinsics: CameraIntrinsics | Sequence[float],
        points: Points | None,
        crop: Crop | None = None,
    ) -> PreparedImage:
        """Unify the focal length, crop to `crop` = (left, top, width, height) in the unified image, draw markers.

        `points` (N, 2) [px] are query pixels of the *input* image (integer pixel centres); `None` or an
        empty list draws no marker. Raises `ValueError` naming the argument when a point is outside the
        input image, leaves the crop, or is too close to the border for its marker.
        """
        image = load_image(image, self.max_image_pixels)
        camera = CameraIntrinsics.from_list(intrinsics)
        check_size(image, camera)
        return self.render(image, self.map_queries(camera, points, crop))

    # ------------------------------------------------------------------------------------------------- text
    def prompt_messages(self, question: str, num_images: int = 1) -> list[dict]:
        """The user turn asking `question` about `num_images` images (after a system turn if `system_prompt` is set);
        the question sits under `text` and `content` (the original Pixtral template reads only `content`)."""
        text = {"type": "text", "text": question, "content": question}
        content = [{"type": "image"} for _ in range(num_images)] + [text]
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
            images, scale_kwargs = keep_scale(self, images)  # unified training rows keep their scale
            return self.base_processor(images=images, text=text, **{**scale_kwargs, **kwargs})
        if text is not None:
            raise ValueError("Pass either `text` (a plain VLM call) or `intrinsics` and `points`, not both.")
        if not isinstance(question, str) or not question:
            raise ValueError(f"`question` must be a non-empty string for visual-prompt queries, got {question!r}.")
        base = self.base_processor
        prompt = self.apply_chat_template(self.prompt_messages(question), tokenize=False, add_generation_prompt=True)
        query_images, scale_kwargs = keep_scale(self, self.query_images(images, intrinsics, points, points_per_query))
        kwargs = {**scale_kwargs, **kwargs}
        merged = self._merge_kwargs(DepthLMProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        return base(
            images=query_images,
            text=[prompt + assistant_prefix] * len(query_images),
            text_kwargs=merged["text_kwargs"],
            images_kwargs=merged["images_kwargs"],
        )

    def query_images(self, images, intrinsics, points, points_per_query: int = 1) -> list[list[Image.Image]]:
        """One marked model image per query (see `__call__`), each wrapped in a list (one image per conversation).

        Each input image is resized once; its queries' markers are drawn on copies of that one resize.
        """
        image_items = image_list(images)
        cameras = camera_list(intrinsics, len(image_items))
        queries = []
        for image, camera, pts in zip(image_items, cameras, points_per_image(points, len(image_items)), strict=True):
            groups = group_points(pts, points_per_query)
            image = load_image(image, self.max_image_pixels)
            check_size(image, CameraIntrinsics.from_list(camera))
            mapping = self.map_queries(camera, pts)
            unified = apply_transform(image, mapping.transform)
            style, start = self.marker_style, 0
            for group in groups:
                queries.append([draw_markers(unified, mapping.points[start : start + len(group)], style)])
                start += len(group)
        return queries


class DepthLMProcessor(VisualPromptProcessor):
    """The DepthLM processor: visual prompts plus the six tasks' question/answer text and the answer parser.

    Tasks are named in `depthlm_hf.tasks.text.TASKS`; `question_template`/`answer_template` override the text
    of the tasks whose `Task.preset_prompt` is set (the distance task; the "official_pixtral" preset uses them).
    """

    def question(self, task: str = "distance", **fields: float) -> str:
        """The question of `task`, its placeholders (e.g. `{time}`) filled from `fields`."""
        template = self.question_template if answers.get_task(task).preset_prompt else None
        return answers.question(task, template=template, **fields)

    def task_messages(self, task: str = "distance", **fields: float) -> list[dict]:
        """The prompt messages of `task` (as many image slots as the task has images)."""
        return self.prompt_messages(self.question(task, **fields), answers.get_task(task).num_images)

    def format_answer(self, value: float, task: str = "distance") -> str:
        """The training answer for `value` [m, s or m/s], two decimals."""
        template = self.answer_template if answers.get_task(task).preset_prompt else None
        return answers.format_answer(value, task, template=template)

    def answer_prefix(self, task: str = "distance") -> str:
        """The fixed text before the number in `task`'s answer (forced at inference so only the number is generated)."""
        template = (answers.get_task(task).preset_prompt and self.answer_template) or answers.get_task(task).answer
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

    def post_process_depth(
        self,
        generated: Sequence[str] | Sequence[Sequence[int]] | Any,
        points: Points | Sequence[Points],
        task: str = "distance",
    ) -> list[dict[str, Any]]:
        """Generated answers -> one dict per image (cf. transformers' `post_process_depth_estimation`).

        Args:
            generated: per query, the generated text or token ids (without the prompt), in the order of the
                call that built the queries: image order, then point order.
            points: the `points` of that call: per image an (N, 2) [px] array (one image may take the bare array).
            task: the queries' task.

        Returns:
            Per image `{"depth": (Q,) float array in the task's unit ([m] for distances), NaN where the text
            holds no number; "values": the same as a list with `None`; "points": (N, 2) [px] input pixels}`,
            Q = N / points per query.
        """
        if isinstance(generated, str):
            raise TypeError("`generated` must hold one text or id sequence per query, got a single string.")
        texts = [g if isinstance(g, str) else self.decode(g, skip_special_tokens=True) for g in generated]
        values = [self.parse_answer(text, task) for text in texts]
        return values_per_image(values, points, answers.get_task(task).num_points)

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
