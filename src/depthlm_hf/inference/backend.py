"""Backend-agnostic inference steps: unify each image once, map the queries, build the prompts (`preprocess`),
turn generated ids into metres and confidence (`postprocess`). `QueryPredictor` holds both; the transformers
predictor (`depthlm_hf.inference.predictor.DepthLMPredictor`) and the vLLM backend add only generation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from depthlm_hf.geometry import CameraIntrinsics, PixelTransform
from depthlm_hf.inference.decoding import DepthPrediction, Generated, TokenClasses, decode_numbers
from depthlm_hf.prompting import query_inputs
from depthlm_hf.prompting.imaging import load_image
from depthlm_hf.prompting.markers import MarkerStyle, draw_markers
from depthlm_hf.prompting.model_window import crop as crop_window
from depthlm_hf.prompting.model_window import model_window
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.prompting.query_inputs import (
    Points,
    camera_list,
    check_size,
    group_points,
    image_list,
    points_per_image,
)
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
        images: the focal-unified images without markers, one per input image (cut to the processor's principal
            `window` if it has one), or one per query for a query-centred `window`.
        cameras: their intrinsics (focal exactly f*) [px].
        points: per image, (N_i, 2) int [px] query pixels in it (the markers' anchors).
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
            images: one image or a list (nesting as `depthlm_hf.prompting.query_inputs` documents).
            intrinsics: one camera `[fx, fy, cx, cy, width, height]` [px] per image.
            points: per image an (N, 2) [px] array of input pixels `[x, y]`; N a non-zero multiple of the
                task's points per query.
            task: a single-image task of `depthlm_hf.tasks.text.TASKS`.
            task_fields: the question's placeholders (e.g. `{"time": 2.0}` for "speed").

        The processor's `window` (`depthlm_hf.prompting.model_window`) decides what the model sees: the whole
        unified image, its principal-point crop, or for each query the window centred on its pixel.

        Raises `ValueError` naming the argument for a multi-image task, a wrong number of points, or a
        point outside its image or too close to its border for a marker.
        """
        spec = answers.get_task(task)
        if spec.num_images != 1:
            raise ValueError(f"`task` {task!r} takes {spec.num_images} images per query; `predict` takes one image.")
        items = image_list(images)
        queries = Queries(task, "", [], [], [], self.processor.marker_style, spec.num_points, dict(task_fields or {}))
        window = model_window(self.processor)
        per_query = window is not None and window.centre == "query"
        if per_query and spec.num_points != 1:
            raise ValueError(f"`task` {task!r} marks {spec.num_points} points; a query-centred window takes one.")
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
            mapped = self.processor.map_queries(camera, pts).points
            unified, exact, _ = self.unify(image, camera)
            if not per_query:
                queries.points.append(mapped)
                queries.images.append(unified)
                queries.cameras.append(exact)
                continue
            for point in mapped:  # each query sees exactly the window it was trained on, its pixel at the centre
                box = window.box(exact, point)
                cut, cut_camera = crop_window(unified, exact, box)
                queries.images.append(cut)
                queries.cameras.append(cut_camera)
                queries.points.append((point - np.array(box[:2]))[None])
        messages = self.processor.task_messages(task, **queries.task_fields)
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
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
