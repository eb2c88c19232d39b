"""The window a checkpoint was trained on: the whole unified image (no setting), a crop centred on the principal
point, or a window centred on each query pixel.

It is a DepthLM setting of the processor (`DepthLMProcessor(window={"centre": "query", "width": 112,
"height": 84})`), saved in `processor_config.json` and stated in the model card, so every tool that loads the
checkpoint asks it the way it was trained: the processor crops the principal window itself (`default_crop`),
and the predictor cuts one query-centred window per query (`depthlm_hf.inference.backend`). A query-centred
window also bounds the image tokens per query for very large images, at the cost of encoding one image per
query instead of reusing one image for all its queries (docs/inference.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image

from depthlm_hf.geometry import CameraIntrinsics, centered_crop_window

WindowCentre = Literal["principal", "query"]
WINDOW_CENTRES: tuple[str, ...] = get_args(WindowCentre)


@dataclass(frozen=True)
class ModelWindow:
    """A `width` x `height` [px] window of the focal-unified image, centred on the principal point or the query.

    >>> ModelWindow.from_dict({"centre": "query", "width": 112, "height": 84}).box(None, (10, 50))
    (-46, 8, 112, 84)
    """

    centre: WindowCentre
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.centre not in WINDOW_CENTRES:
            raise ValueError(f"`window` centre must be one of {', '.join(WINDOW_CENTRES)}, got {self.centre!r}.")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`window` {name} must be a positive integer [px], got {value!r}.")

    @classmethod
    def from_dict(cls, window: dict[str, Any] | ModelWindow) -> ModelWindow:
        """A window from `{"centre", "width", "height"}` (the form saved in `processor_config.json`)."""
        if isinstance(window, ModelWindow):
            return window
        if not isinstance(window, dict):
            raise TypeError(f"`window` must be a dict (or None for the whole image), got {type(window).__name__}.")
        if set(window) != {"centre", "width", "height"}:
            raise ValueError(f"`window` must have the keys centre, width, height, got {sorted(window)}.")
        size = [int(v) if isinstance(v, float) and v.is_integer() else v for v in (window["width"], window["height"])]
        return cls(window["centre"], *size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def box(self, camera: CameraIntrinsics | None, point: tuple[float, float] | None = None) -> tuple[int, ...]:
        """`(left, top, width, height)` [px] of the window in the unified image of `camera`.

        "principal": the crop nearest the principal point, clipped to the image (`centered_crop_window`);
        "query": the window with `point` (2,) [px] at (width // 2, height // 2), which may leave the image
        (`crop` pads it with black, as the demo's canvases are black where the camera saw nothing).
        """
        if self.centre == "principal":
            return centered_crop_window(camera, self.width, self.height)
        if point is None:
            raise ValueError("`point` is needed to place a query-centred window.")
        x, y = (int(round(float(v))) for v in point)
        return x - self.width // 2, y - self.height // 2, self.width, self.height


def crop(image: Image.Image, camera: CameraIntrinsics, box: tuple[int, ...]) -> tuple[Image.Image, CameraIntrinsics]:
    """`image` (focal-unified, camera `camera`) cut to `box` = (left, top, width, height) [px], black outside it,
    and the window's camera: the same focal lengths, the principal point at the window's centre.

    A query-centred window may not contain the true principal point, and a camera's principal point must lie
    on the positive side; the processor's resize, an identity at the unified focal length, does not read it.

    >>> window, cam = crop(Image.new("RGB", (40, 30)), CameraIntrinsics(20, 20, 19.5, 14.5, 40, 30), (-5, 2, 20, 10))
    >>> window.size, (cam.fx, cam.cx, cam.cy, cam.width, cam.height)
    ((20, 10), (20.0, 9.5, 4.5, 20, 10))
    """
    left, top, width, height = (int(v) for v in box)
    window = image.crop((left, top, left + width, top + height))
    return window, CameraIntrinsics(camera.fx, camera.fy, width / 2 - 0.5, height / 2 - 0.5, width, height)


def window_setting(window: dict[str, Any] | ModelWindow | None) -> dict[str, Any] | None:
    """The processor's `window` setting, checked and in its saved form (None: the whole unified image).

    >>> window_setting({"centre": "principal", "width": 112.0, "height": 84})
    {'centre': 'principal', 'width': 112, 'height': 84}
    """
    return None if window is None else ModelWindow.from_dict(window).to_dict()


def model_window(processor: Any) -> ModelWindow | None:
    """The window `processor` (a `DepthLMProcessor`) was saved with, or None (the whole unified image)."""
    setting = getattr(processor, "window", None)
    return None if setting is None else ModelWindow.from_dict(setting)


def principal_crop(processor: Any, camera: CameraIntrinsics) -> tuple[int, ...] | None:
    """The crop `(left, top, width, height)` [px] every query of an image of `camera` gets in `processor`'s unified
    image: a principal-point window's box; None for the whole image or a query-centred window (cut per query by
    the predictor)."""
    window = model_window(processor)
    if window is None or window.centre != "principal":
        return None
    return window.box(processor.focal_transform(camera).map_intrinsics(camera))


def describe(window: dict[str, Any] | None) -> str:
    """How a checkpoint with this `window` setting is asked, in words (model cards, reports).

    >>> describe(None)
    'the whole unified image'
    >>> describe({"centre": "query", "width": 112, "height": 84})
    'a 112x84 window of the unified image centred on each query pixel (one window per query)'
    """
    if window is None:
        return "the whole unified image"
    w = ModelWindow.from_dict(window)
    if w.centre == "principal":
        return f"the {w.width}x{w.height} crop of the unified image centred on the principal point"
    return f"a {w.width}x{w.height} window of the unified image centred on each query pixel (one window per query)"


def camera_and_crop(processor: Any, intrinsics: Any, crop: tuple[int, ...] | None) -> tuple[CameraIntrinsics, Any]:
    """The camera of `intrinsics` and the crop its queries get: `crop` itself, else `principal_crop`."""
    camera = CameraIntrinsics.from_list(intrinsics)
    return camera, principal_crop(processor, camera) if crop is None else crop
