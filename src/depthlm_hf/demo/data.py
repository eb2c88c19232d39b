"""Demo data: mixed-camera ground-plane scenes, and the images the model sees for each query.

Every scene is rendered by :func:`depthlm_hf.data.synthetic.scenes.render_scene` at its native camera (640x480,
focal 300-1500 px, fixed height, random pitch) and resized so the focal length becomes `unified_focal` (the
processor's unification). The model image depends on `DemoScenes.crop`:

- "paper" (the default, the paper's geometry): in training, a crop of random size (`width`..2`width` x
  `height`..2`height`) centred on the principal point, the marker wherever the query is; in evaluation, the whole
  unified canvas (`whole` window);
- "principal": a fixed `width` x `height` crop centred on the principal point, in training and evaluation;
- "query" (an ablation): a `width` x `height` crop centred on the query pixel, the marker at its centre.

The "focal" ablation does the same on the whole native frame resized to `width` x `height` (apparent scale then
varies with the camera); the "marker" ablation draws no marker and writes the pixel in the question, in the
coordinates of the window shown. Query pixels are drawn in the unified principal window (log-uniform in
distance) and mapped to the other views, so every mode answers about the same physical points.

Each scene is kept as a *canvas*: a 2`width` x 2`height` image whose centre is the principal point
(black where the camera saw nothing), from which model windows are cut on the fly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from depthlm_hf.data.seeding import rng as seeded_rng
from depthlm_hf.data.synthetic.scenes import SCENE_PRESETS, SceneConfig, render_scene
from depthlm_hf.geometry import CameraIntrinsics, PixelTransform
from depthlm_hf.prompting.imaging import apply_transform
from depthlm_hf.prompting.markers import MarkerStyle, draw_markers
from depthlm_hf.prompting.processing import DepthLMProcessor

Mode = Literal["full", "focal", "marker"]
MODES: tuple[str, ...] = get_args(Mode)
Crop = Literal["paper", "principal", "query"]
CROPS: tuple[str, ...] = get_args(Crop)
Size = tuple[int, int]
"""A window size `(width, height)` [px]."""
Cue = Literal["texture", "clean"]
CUES: tuple[str, ...] = get_args(Cue)
SKY = (90, 140, 235)
"""Sky colour of the "clean" cue [RGB]."""

COORDINATE_QUESTION = "How many meters is the point at pixel ({x}, {y}) from the camera?"
"""The "marker" ablation's question: the query pixel is written as text and no marker is drawn."""


@dataclass(frozen=True)
class DemoScenes:
    """How the demo's scenes and model images look.

    Args:
        width, height: model image size [px] (multiples of 28: 2x2 merged 14 px patches per token).
        unified_focal: focal length f* [px] of the full method's model images.
        focal: range of the native cameras' focal lengths [px] (log-uniform), 640x480 images.
        camera_height: camera centre above the ground [m] (low, so the horizon is in the crop of near points).
        pitch: range of the downward camera tilt [deg]: the horizon row varies, so a pixel's row alone does
            not give its distance (the model has to look at the image).
        distance: range of query distances [m], sampled log-uniform.
        tile: ground checker tile [m].
        cue: "texture": the shaded, checkered ground of `render_scene`; "clean": every surface's grey level is
            a fixed function of its log-distance (`clean_image`), so the pixels at the marker tell the distance.
        crop: "paper": training crops of random size centred on the principal point, the whole canvas in
            evaluation (the paper's geometry); "principal": a fixed `width` x `height` crop centred on the
            principal point; "query": centred on the query (the marker at its centre: the horizon's offset then
            tells the distance, a cue the tiny model learns in minutes without a localisation stage).
    """

    width: int = 112
    height: int = 84
    unified_focal: float = 270.0
    focal: tuple[float, float] = (300.0, 1500.0)
    camera_height: float = 0.31
    pitch: tuple[float, float] = (0.0, 8.0)
    distance: tuple[float, float] = (2.0, 14.0)
    tile: float = 0.5
    crop: Crop = "paper"
    cue: Cue = "texture"

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"`crop` must be one of {', '.join(CROPS)}, got {self.crop!r}.")
        if self.cue not in CUES:
            raise ValueError(f"`cue` must be one of {', '.join(CUES)}, got {self.cue!r}.")

    def scene_config(self) -> SceneConfig:
        """The `SceneConfig` of the native cameras (the "ground" preset with mixed focal lengths)."""
        return replace(
            SCENE_PRESETS["ground"],
            width=(640, 640),
            height=(480, 480),
            focal=self.focal,
            camera_height=(self.camera_height, self.camera_height),
            pitch=self.pitch,
            tile=self.tile,
            depth_range=(0.1, 1000.0),
        )


@dataclass
class SceneBank:
    """Rendered scenes and their queries, in canvas coordinates (see the module docstring).

    Attributes:
        canvas: (S, 2H, 2W, 3) uint8 scene canvases of the mode's view (unified, or the resized native
            frame in the "focal" mode), principal point at the centre.
        intrinsics: S cameras of the canvases (true intrinsics, used to back-project).
        points: (S, P, 2) int [px] query pixels on the canvases.
        distance: (S, P) [m] Euclidean distance of each query (the label).
        depth: (S, 2H, 2W) [m] distance of every canvas pixel (NaN where nothing was seen), or None.
        focal: (S,) [px] native focal length of each scene.
    """

    canvas: np.ndarray
    intrinsics: list[CameraIntrinsics]
    points: np.ndarray
    distance: np.ndarray
    depth: np.ndarray | None
    focal: np.ndarray
    crop: Crop = "paper"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) [px] of the model images."""
        return self.canvas.shape[2] // 2, self.canvas.shape[1] // 2

    def window(self, size: Size | None = None) -> tuple[int, int]:
        """(left, top) [px] on the canvas of the window of `size` (default `self.size`) centred on the principal point.

        >>> bank = SceneBank(np.zeros((1, 168, 224, 3), np.uint8), [], np.zeros((1, 1, 2)), None, None, None)
        >>> bank.window(), bank.window((168, 112)), bank.window((224, 168))
        ((56, 42), (28, 28), (0, 0))
        """
        w, h = self.size
        width, height = size or (w, h)
        return (2 * w - width) // 2, (2 * h - height) // 2

    def training_sizes(self) -> list[Size]:
        """The window sizes of the "paper" crop in training: multiples of 28 px from (`width`, `height`) to the canvas.

        >>> bank = SceneBank(np.zeros((1, 168, 224, 3), np.uint8), [], np.zeros((1, 1, 2)), None, None, None)
        >>> len(bank.training_sizes()), bank.training_sizes()[0], bank.training_sizes()[-1]
        (20, (112, 84), (224, 168))
        """
        w, h = self.size
        return [(x, y) for x in range(w, 2 * w + 1, 28) for y in range(h, 2 * h + 1, 28)]

    def subset(self, scenes: Sequence[int], points: np.ndarray | None = None) -> SceneBank:
        """Scenes `scenes` (repeats allowed); with `points` (N, 2) [px] on the canvas, one query per entry
        (labelled from the depth maps)."""
        idx = np.asarray(scenes, dtype=np.int64)
        depth = None if self.depth is None else self.depth[idx]
        cams = [self.intrinsics[i] for i in idx]
        if points is None:
            return SceneBank(
                self.canvas[idx],
                cams,
                self.points[idx],
                self.distance[idx],
                depth,
                self.focal[idx],
                self.crop,
            )
        if self.depth is None:
            raise ValueError("`points` need the depth maps: render the bank with `keep_depth=True`.")
        pts = np.asarray(points, dtype=np.int64).reshape(-1, 1, 2)
        labels = depth[np.arange(len(idx)), pts[:, 0, 1], pts[:, 0, 0]][:, None]
        return SceneBank(self.canvas[idx], cams, pts, labels, depth, self.focal[idx], self.crop)


def clean_image(depth: np.ndarray, distance: tuple[float, float]) -> np.ndarray:
    """(H, W, 3) uint8: grey 40 at `distance[0]` to 220 at `distance[1]` [m], linear in log-distance; sky blue.

    >>> clean_image(np.array([[2.0, 14.0, np.inf]]), (2.0, 14.0))[0].tolist()
    [[40, 40, 40], [220, 220, 220], [90, 140, 235]]
    """
    lo, hi = distance
    with np.errstate(invalid="ignore", divide="ignore"):
        grey = 40.0 + 180.0 * np.clip(np.log(np.maximum(depth, 1e-6) / lo) / np.log(hi / lo), 0.0, 1.0)
    out = np.where(np.isfinite(depth)[..., None], grey[..., None], np.array(SKY, float))
    return np.rint(out).astype(np.uint8)


def _pick_points(
    depth: np.ndarray, allowed: np.ndarray, distance: tuple[float, float], num: int, rng: np.random.Generator
) -> np.ndarray:
    """`num` pixels (N, 2) [px] where `allowed`, log-uniform in `depth` over the `distance` range [m]."""
    lo, hi = distance
    ok = allowed & np.isfinite(depth) & (depth >= lo) & (depth <= hi)
    if not ok.any():
        ok = allowed & np.isfinite(depth)
    ys, xs = np.nonzero(ok)
    logd = np.log(depth[ys, xs])
    # Inverse density in log-distance bins flattens the label distribution (far rows are few pixels tall).
    counts, edges = np.histogram(logd, bins=16)
    weight = 1.0 / counts[np.clip(np.digitize(logd, edges) - 1, 0, 15)]
    pick = rng.choice(len(xs), size=num, replace=len(xs) < num, p=weight / weight.sum())
    return np.stack([xs[pick], ys[pick]], axis=-1)


def _to_canvas(image: Image.Image, intr: CameraIntrinsics, width: int, height: int):
    """Paste `image` on a black 2`width` x 2`height` canvas with its principal point at the centre.

    Returns the canvas, its intrinsics and the integer (dx, dy) [px] added to image coordinates.
    """
    dx, dy = round(width - 0.5 - intr.cx), round(height - 0.5 - intr.cy)
    canvas = Image.new("RGB", (2 * width, 2 * height))
    canvas.paste(image.convert("RGB"), (dx, dy))
    cam = CameraIntrinsics(intr.fx, intr.fy, intr.cx + dx, intr.cy + dy, 2 * width, 2 * height)
    return canvas, cam, (dx, dy)


def _canvas_depth(native_depth: np.ndarray, transform: PixelTransform, shift, width: int, height: int) -> np.ndarray:
    """(2H, 2W) [m]: for each canvas pixel, the distance of the native pixel nearest to where it comes from."""
    grid = np.stack(np.meshgrid(np.arange(2 * width), np.arange(2 * height)), -1).reshape(-1, 2)
    src = np.rint(transform.unmap_points(grid - np.asarray(shift))).astype(np.int64)
    h, w = native_depth.shape
    inside = (src[:, 0] >= 0) & (src[:, 0] < w) & (src[:, 1] >= 0) & (src[:, 1] < h)
    out = np.full(len(grid), np.nan)
    out[inside] = native_depth[src[inside, 1], src[inside, 0]]
    return out.reshape(2 * height, 2 * width)


def render_bank(
    spec: DemoScenes,
    processor: DepthLMProcessor,
    num_scenes: int,
    points_per_scene: int,
    seed: int,
    mode: Mode = "full",
    keep_depth: bool = False,
    desc: str = "scenes",
) -> SceneBank:
    """Render `num_scenes` scenes (deterministic in `seed`) and pick `points_per_scene` queries in each."""
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {', '.join(MODES)}, got {mode!r}.")
    config = spec.scene_config()
    w, h = spec.width, spec.height
    # Queries sit in the unified window, where an arrow fits and a text coordinate names a visible pixel.
    window = window_markable(processor, w, h)
    canvases, cameras, points, labels, depths, focals = [], [], [], [], [], []
    for index in tqdm(range(num_scenes), desc=desc, leave=False):
        rng = seeded_rng(seed, index)
        view = render_scene(config, rng)
        pixels = clean_image(view.depth, spec.distance) if spec.cue == "clean" else view.image
        native, image = view.camera.intrinsics, Image.fromarray(pixels)
        native_depth = np.where(view.valid, view.depth, np.nan)
        unify = processor.focal_transform(native)
        canvas, cam, shift = _to_canvas(apply_transform(image, unify), unify.map_intrinsics(native), w, h)
        depth = _canvas_depth(native_depth, unify, shift, w, h)
        upts = _pick_points(depth, window, spec.distance, points_per_scene, rng)
        labels.append(depth[upts[:, 1], upts[:, 0]])
        if mode == "focal":
            raw = PixelTransform(
                w / native.width, h / native.height, 0.5 * w / native.width - 0.5, 0.5 * h / native.height - 0.5, w, h
            )
            resized = image.resize((w, h), Image.Resampling.BICUBIC)
            native_pts = unify.unmap_points(upts - np.asarray(shift))
            canvas, cam, raw_shift = _to_canvas(resized, raw.map_intrinsics(native), w, h)
            upts = np.rint(raw.map_points(native_pts) + raw_shift).astype(np.int64)
            depth = _canvas_depth(native_depth, raw, raw_shift, w, h)
        canvases.append(np.asarray(canvas))
        cameras.append(cam)
        points.append(upts)
        depths.append(depth.astype(np.float32))
        focals.append(native.fx)
    return SceneBank(
        np.stack(canvases),
        cameras,
        np.stack(points),
        np.stack(labels),
        np.stack(depths) if keep_depth else None,
        np.array(focals),
        spec.crop,
    )


def window_markable(processor: DepthLMProcessor, width: int, height: int) -> np.ndarray:
    """(2`height`, 2`width`) bool: the canvas pixels whose marker fits in the principal-point window.

    The processor's rule (`DepthLMProcessor.markable`), asked about a canvas whose focal length is already
    the unified one, cropped to the `width` x `height` window at its centre.
    """
    f = processor.unified_focal_length
    canvas = CameraIntrinsics(f, f, width - 0.5, height - 0.5, 2 * width, 2 * height)
    return processor.markable(canvas, crop=(width // 2, height // 2, width, height))


def window_box(bank: SceneBank, scene: int, point: int, mode: Mode, size: Size | None = None) -> tuple[int, ...]:
    """`(left, top, width, height)` [px] on the canvas of the window the model sees for query `point` of `scene`.

    `size`: the "paper" crop's training size; None is its evaluation window, the whole canvas. The "query" crop
    centres a `bank.size` window on the query (except in the "marker" ablation, which has no marker to centre on
    and takes the principal window); the "principal" crop takes the `bank.size` window at the principal point.
    """
    w, h = bank.size
    if bank.crop == "paper":
        width, height = size or (2 * w, 2 * h)
    elif bank.crop == "query" and mode != "marker":
        x, y = (int(v) for v in bank.points[scene, point])
        return x - w // 2, y - h // 2, w, h
    else:
        width, height = w, h
    return (*bank.window((width, height)), width, height)


def model_window(
    bank: SceneBank, scene: int, point: int, mode: Mode, size: Size | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """The window the model sees for query `point` of `scene` (`window_box`), without marker; its (left, top) [px]."""
    left, top, width, height = window_box(bank, scene, point, mode, size)
    return Image.fromarray(bank.canvas[scene]).crop((left, top, left + width, top + height)), (left, top)


def model_image(
    bank: SceneBank, scene: int, point: int, mode: Mode, style: MarkerStyle, size: Size | None = None
) -> Image.Image:
    """The image the model sees for query `point` of `scene`: `model_window`, with the marker on the query
    except in the "marker" ablation."""
    image, (left, top) = model_window(bank, scene, point, mode, size)
    if mode == "marker":
        return image
    x, y = (int(v) for v in bank.points[scene, point])
    return draw_markers(image, [[x - left, y - top]], style)


def processor_window(crop: Crop, mode: Mode, size: Size) -> dict[str, int | str] | None:
    """The processor's `window` setting (`depthlm_hf.prompting.model_window`) of a demo model: what it was trained
    on, so every tool asks it the same way. "paper": None (the whole image); "principal": the `size` principal
    crop; "query": the `size` window centred on each query (the principal one in the "marker" ablation).

    >>> processor_window("query", "full", (112, 84)), processor_window("paper", "full", (112, 84))
    ({'centre': 'query', 'width': 112, 'height': 84}, None)
    """
    if crop == "paper":
        return None
    centre = "query" if crop == "query" and mode != "marker" else "principal"
    return {"centre": centre, "width": size[0], "height": size[1]}


def predictor_queries(
    bank: SceneBank,
    queries: Sequence[tuple[int, int]],
    mode: Mode,
    unified_focal: float,
    size: Size | None = None,
) -> list[tuple[Image.Image, CameraIntrinsics, np.ndarray]]:
    """`DepthLMPredictor.predict_batch` queries `(image, intrinsics, (N, 2) points [px])` for (scene, point) pairs.

    The image is the whole canvas (`canvas_camera`; with `size`: its principal window of that size, the principal
    point at its centre), without marker, with a camera whose focal length is `unified_focal` [px], the
    processor's, so its unification is an identity; the processor's
    `window` setting (`processor_window`) then cuts what the model was trained on, as for any user's image, and the
    model sees exactly `model_image`. (In the "focal" ablation that camera is what "no unification" means: the
    frame is taken as it is.) Consecutive pairs on the same scene share one entry; answers keep the order.
    """
    if mode == "marker":
        raise ValueError("`mode` 'marker' has no marker to draw: use `predictor_rows`.")
    w, h = bank.size
    width, height = size or (2 * w, 2 * h)
    left, top = bank.window((width, height))
    window = CameraIntrinsics(unified_focal, unified_focal, width / 2 - 0.5, height / 2 - 0.5, width, height)
    out: list[tuple[Image.Image, CameraIntrinsics, np.ndarray]] = []
    last = -1
    for scene, point in queries:
        pixel = bank.points[scene, point] - [left, top]
        if scene == last:
            out[-1] = (out[-1][0], out[-1][1], np.concatenate([out[-1][2], [pixel]]))
            continue
        image = Image.fromarray(bank.canvas[scene]).crop((left, top, left + width, top + height))
        out.append((image, window if size else canvas_camera(bank, scene, unified_focal), pixel[None]))
        last = scene
    return out


def canvas_camera(bank: SceneBank, scene: int, unified_focal: float) -> CameraIntrinsics:
    """The camera of `scene`'s whole canvas with focal length `unified_focal` [px]: its true principal point (within
    half a pixel of the centre); the focal length is already f* except in the "focal" ablation, where taking the
    frame as it is (no unification) is the point."""
    return replace(bank.intrinsics[scene], fx=float(unified_focal), fy=float(unified_focal))


def predictor_rows(
    processor: DepthLMProcessor, bank: SceneBank, queries: Sequence[tuple[int, int]], size: Size | None = None
) -> list[dict[str, object]]:
    """`DepthLMPredictor.predict_rows` rows of the "marker" ablation: the window and the text-coordinate question."""
    rows = []
    for scene, point in queries:
        image, origin = model_window(bank, scene, point, "marker", size)
        text = question(processor, bank, scene, point, "marker", origin)
        rows.append({"images": [image], "prompt": processor.prompt_messages(text)})
    return rows


def question(
    processor: DepthLMProcessor,
    bank: SceneBank,
    scene: int,
    point: int,
    mode: Mode,
    origin: tuple[int, int] | None = None,
) -> str:
    """The question of query `point` of `scene`; the "marker" ablation writes the pixel's coordinates in the
    window whose (left, top) on the canvas is `origin` (default: the `bank.size` principal window)."""
    if mode == "marker":
        x, y = bank.points[scene, point] - np.asarray(origin if origin is not None else bank.window())
        return COORDINATE_QUESTION.format(x=int(x), y=int(y))
    return processor.question("distance")
