"""Demo data: mixed-camera ground-plane scenes, and the images the model sees for each query.

Every scene is rendered by :func:`depthlm_hf.data.synthetic.scenes.render_scene` at its native camera (640x480,
focal 300-1500 px, fixed height, random pitch). The full method resizes it so the focal length becomes
`unified_focal` (the processor's unification) and shows the model a `width` x `height` crop *centred on
the query pixel*, with the red arrow at the centre. The "focal" ablation does the same on the whole
native frame resized to `width` x `height` (apparent scale then varies with the camera); the "marker"
ablation shows the unified window centred on the principal point, without marker, and writes the pixel
in the question. Query pixels are drawn in the unified window (log-uniform in distance) and mapped to
the other views, so every mode answers about the same physical points.

Each scene is kept as a *canvas*: a 2`width` x 2`height` image whose centre is the principal point
(black where the camera saw nothing), from which query crops are cut on the fly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

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
MODES: tuple[str, ...] = ("full", "focal", "marker")
Crop = Literal["principal", "query"]
CROPS: tuple[str, ...] = ("principal", "query")
Cue = Literal["texture", "clean"]
CUES: tuple[str, ...] = ("texture", "clean")
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
        crop: "query": the window is centred on the query (the marker at its centre: the horizon's offset then
            tells the distance, a cue the tiny model learns in minutes); "principal": centred on the principal
            point, as in the paper (the marker is wherever the query is; not learnt at this scale, see docs).
    """

    width: int = 112
    height: int = 84
    unified_focal: float = 270.0
    focal: tuple[float, float] = (300.0, 1500.0)
    camera_height: float = 0.31
    pitch: tuple[float, float] = (0.0, 8.0)
    distance: tuple[float, float] = (2.0, 14.0)
    tile: float = 0.5
    crop: Crop = "query"
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
        text_points: (S, P, 2) int [px] the same queries in the unified `width` x `height` window (the
            "marker" ablation's text coordinates).
        distance: (S, P) [m] Euclidean distance of each query (the label).
        depth: (S, 2H, 2W) [m] distance of every canvas pixel (NaN where nothing was seen), or None.
        focal: (S,) [px] native focal length of each scene.
    """

    canvas: np.ndarray
    intrinsics: list[CameraIntrinsics]
    points: np.ndarray
    text_points: np.ndarray
    distance: np.ndarray
    depth: np.ndarray | None
    focal: np.ndarray
    crop: Crop = "query"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) [px] of the model images."""
        return self.canvas.shape[2] // 2, self.canvas.shape[1] // 2

    def window(self) -> tuple[int, int]:
        """(left, top) [px] of the principal-point-centred model window on the canvas."""
        w, h = self.size
        return w // 2, h // 2

    def subset(self, scenes: Sequence[int], points: np.ndarray | None = None) -> SceneBank:
        """Scenes `scenes` (repeats allowed); with `points` (N, 2) [px] on the canvas, one query per entry.

        Explicit `points` are taken as unified-window queries for the text coordinates, so use them with
        the "full" and "marker" modes, or for pictures only in the "focal" mode.
        """
        idx = np.asarray(scenes, dtype=np.int64)
        depth = None if self.depth is None else self.depth[idx]
        cams = [self.intrinsics[i] for i in idx]
        if points is None:
            return SceneBank(
                self.canvas[idx],
                cams,
                self.points[idx],
                self.text_points[idx],
                self.distance[idx],
                depth,
                self.focal[idx],
                self.crop,
            )
        if self.depth is None:
            raise ValueError("`points` need the depth maps: render the bank with `keep_depth=True`.")
        pts = np.asarray(points, dtype=np.int64).reshape(-1, 1, 2)
        labels = depth[np.arange(len(idx)), pts[:, 0, 1], pts[:, 0, 0]][:, None]
        text = pts - np.array(self.window())
        return SceneBank(self.canvas[idx], cams, pts, text, labels, depth, self.focal[idx], self.crop)


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
    canvases, cameras, points, text_points, labels, depths, focals = [], [], [], [], [], [], []
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
        text_points.append(upts - [w // 2, h // 2])
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
        np.stack(text_points),
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


def model_window(bank: SceneBank, scene: int, point: int, mode: Mode) -> tuple[Image.Image, tuple[int, int]]:
    """The window the model sees for query `point` of `scene`, without marker, and its (left, top) [px] on the canvas.

    Full method and "focal" ablation: the `bank.crop` window (principal-point or query centred); "marker"
    ablation: the principal-point window.
    """
    w, h = bank.size
    x, y = (int(v) for v in bank.points[scene, point])
    left, top = bank.window() if mode == "marker" or bank.crop == "principal" else (x - w // 2, y - h // 2)
    return Image.fromarray(bank.canvas[scene]).crop((left, top, left + w, top + h)), (left, top)


def model_image(bank: SceneBank, scene: int, point: int, mode: Mode, style: MarkerStyle) -> Image.Image:
    """The image the model sees for query `point` of `scene`: `model_window`, with the marker on the query
    except in the "marker" ablation."""
    image, (left, top) = model_window(bank, scene, point, mode)
    if mode == "marker":
        return image
    x, y = (int(v) for v in bank.points[scene, point])
    return draw_markers(image, [[x - left, y - top]], style)


def predictor_queries(
    bank: SceneBank, queries: Sequence[tuple[int, int]], mode: Mode, unified_focal: float
) -> list[tuple[Image.Image, CameraIntrinsics, np.ndarray]]:
    """`DepthLMPredictor.predict_batch` queries `(image, intrinsics, (N, 2) points [px])` for (scene, point) pairs.

    The image is `model_window` (no marker: the predictor draws it) with a camera whose focal length is
    `unified_focal` [px], the processor's, so its unification is an identity and the model sees exactly
    `model_image`. (In the "focal" ablation that camera is what "no unification" means: the frame is taken
    as it is.) The principal point is put at the window's centre: an identity resize does not read it, and
    a query-centred window may not contain the true one. Consecutive pairs on the same principal-point
    window share one entry; answers keep the order.
    """
    if mode == "marker":
        raise ValueError("`mode` 'marker' has no marker to draw: use `predictor_rows`.")
    out: list[tuple[Image.Image, CameraIntrinsics, np.ndarray]] = []
    last = -1
    for scene, point in queries:
        pixel = bank.points[scene, point]
        if bank.crop == "principal" and scene == last:
            image, camera, points = out[-1]
            out[-1] = (image, camera, np.concatenate([points, [pixel - bank.window()]]))
            continue
        image, (left, top) = model_window(bank, scene, point, mode)
        w, h = image.size
        camera = CameraIntrinsics(unified_focal, unified_focal, w / 2 - 0.5, h / 2 - 0.5, w, h)
        out.append((image, camera, (pixel - [left, top])[None]))
        last = scene
    return out


def predictor_rows(
    processor: DepthLMProcessor, bank: SceneBank, queries: Sequence[tuple[int, int]]
) -> list[dict[str, object]]:
    """`DepthLMPredictor.predict_rows` rows of the "marker" ablation: the window and the text-coordinate question."""
    return [
        {
            "images": [model_window(bank, scene, point, "marker")[0]],
            "prompt": processor.prompt_messages(question(processor, bank, scene, point, "marker")),
        }
        for scene, point in queries
    ]


def question(processor: DepthLMProcessor, bank: SceneBank, scene: int, point: int, mode: Mode) -> str:
    """The question of query `point` of `scene` (pixel coordinates in the text for the "marker" ablation)."""
    if mode == "marker":
        x, y = bank.text_points[scene, point]
        return COORDINATE_QUESTION.format(x=int(x), y=int(y))
    return processor.question("distance")
