"""How an image reaches a VLM at the unified scale: the resize policies of image processors, and how to keep each.

Every rule answers two questions about a focal-unified image of size (width, height) [px]: the size it is padded
to (`model_size`: black pixels on the right and bottom, so pixel coordinates, the principal point and the focal
length f* do not move) and the per-call image-processor settings (`call_kwargs`) under which the processor then
leaves those pixels unscaled. A rule that cannot keep the scale raises `ValueError` naming the processor and why.
Rules know policies, not families: `depthlm_hf.models.families` says which processor follows which rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Size = tuple[int, int]
"""(width, height) [px]."""

RuleKind = Literal["pixel_limits", "longest_edge", "fixed_size", "square_tiles", "refused"]
"""How a rule keeps the scale (the docs' family table lists one per family)."""


def _size(image_processor: Any, key: str) -> int | None:
    size = getattr(image_processor, "size", None) or {}
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return None if value is None else int(value)


def pad_up(value: int, factor: int) -> int:
    """`value` rounded up to a multiple of `factor` (at least `factor`).

    >>> pad_up(1143, 28), pad_up(28, 28), pad_up(3, 28)
    (1148, 28, 28)
    """
    return max(factor, math.ceil(value / factor) * factor)


@dataclass(frozen=True)
class ScaleRule:
    """Base rule: the image is passed as it is (no padding, no settings)."""

    kind: RuleKind = "longest_edge"
    how: str = ""

    def model_size(self, image_processor: Any, size: Size) -> Size:
        """The (width, height) [px] the unified image of `size` is padded to before the image processor."""
        return size

    def call_kwargs(self, image_processor: Any, sizes: Sequence[Size]) -> dict[str, Any]:
        """Per-call image-processor settings for images already padded to `sizes` [(width, height) px]."""
        return {}


@dataclass(frozen=True)
class PixelLimits(ScaleRule):
    """Qwen2-VL-style processors (min/max pixels, sides rounded to patch x merge): pad each side up to that
    multiple, so the rounding resizes nothing, and widen the pixel limits for the call to hold the image."""

    kind: RuleKind = "pixel_limits"
    how: str = "pads each side to a multiple of patch x merge; per-call pixel limits widened to hold the image"

    def model_size(self, image_processor: Any, size: Size) -> Size:
        factor = int(image_processor.patch_size) * int(image_processor.merge_size)
        return pad_up(size[0], factor), pad_up(size[1], factor)

    def call_kwargs(self, image_processor: Any, sizes: Sequence[Size]) -> dict[str, Any]:
        if not sizes:
            return {}
        areas = [w * h for w, h in sizes]
        low, high = _size(image_processor, "shortest_edge"), _size(image_processor, "longest_edge")
        if low is not None and high is not None and low <= min(areas) and max(areas) <= high:
            return {}
        return {"size": {"shortest_edge": min(low or 0, min(areas)), "longest_edge": max(high or 0, max(areas))}}


@dataclass(frozen=True)
class LongestEdge(ScaleRule):
    """Pixtral-style processors (a longest edge, sides rounded up to the patch): resizing is switched off for the
    call, as the official release trains; the vision tower reads the whole patches of the unscaled image."""

    kind: RuleKind = "longest_edge"
    how: str = "per-call `do_resize=False` (the official release's setting); whole patches of the unscaled image"

    def call_kwargs(self, image_processor: Any, sizes: Sequence[Size]) -> dict[str, Any]:
        return {"do_resize": False} if getattr(image_processor, "do_resize", True) else {}


@dataclass(frozen=True)
class FixedSize(ScaleRule):
    """Processors that resize every image to one fixed size (Gemma 3, PaliGemma, InternVL without tiles): the
    unified image is padded to exactly that size, so the resize is the identity; a larger image is refused."""

    kind: RuleKind = "fixed_size"
    how: str = "pads to the processor's fixed size (resize is then the identity); larger images are refused"

    def fixed(self, image_processor: Any) -> Size:
        width, height = _size(image_processor, "width"), _size(image_processor, "height")
        if width is None or height is None:
            raise ValueError(f"{type(image_processor).__name__} has no fixed `size` (height, width) to pad to.")
        return width, height

    def model_size(self, image_processor: Any, size: Size) -> Size:
        fixed = self.fixed(image_processor)
        if size[0] > fixed[0] or size[1] > fixed[1]:
            raise ValueError(
                f"{type(image_processor).__name__} resizes every image to {fixed[0]}x{fixed[1]} px, which would "
                f"change the focal length of this {size[0]}x{size[1]} unified image: crop it to at most "
                f"{fixed[0]}x{fixed[1]} (`crop=`), lower `unified_focal_length`, or pass `image_scale='processor'`."
            )
        return fixed

    def call_kwargs(self, image_processor: Any, sizes: Sequence[Size]) -> dict[str, Any]:
        return {"do_pan_and_scan": False} if getattr(image_processor, "do_pan_and_scan", None) else {}


@dataclass(frozen=True)
class SquareTiles(ScaleRule):
    """Processors that cut an image into square tiles of side T plus a downscaled overview (Idefics3 / SmolVLM,
    InternVL's `crop_to_patches`): the unified image is padded to a k x k grid of tiles, so every tile holds
    unscaled pixels and the overview is a uniform 1/k downscale (no stretch).

    `tile` names the processor attribute holding T: "max_image_size" (Idefics3: `{"longest_edge": T}`, resizing
    switched off for the call) or "size" (GotOcr2 / InternVL: `{"height": T, "width": T}`, its own grid choice,
    `get_optimal_tiled_canvas`, must pick k x k for the padded image, else the image is refused).
    """

    kind: RuleKind = "square_tiles"
    how: str = "pads to a k x k grid of the processor's tiles (tiles unscaled, overview a uniform 1/k downscale)"
    tile: Literal["max_image_size", "size"] = "max_image_size"

    def side(self, image_processor: Any) -> int:
        if self.tile == "size":
            return int(_size(image_processor, "height"))
        return int(image_processor.max_image_size["longest_edge"])

    def model_size(self, image_processor: Any, size: Size) -> Size:
        side = self.side(image_processor)
        k = math.ceil(max(size) / side)
        if self.tile == "size" and not getattr(image_processor, "crop_to_patches", False):
            return FixedSize().model_size(image_processor, size)
        if self.tile == "size" and not self._grid_kept(image_processor, k, side):
            raise ValueError(
                f"{type(image_processor).__name__} would not cut a {k * side}x{k * side} image into {k}x{k} tiles "
                f"(min_patches {image_processor.min_patches}, max_patches {image_processor.max_patches}): the "
                f"{size[0]}x{size[1]} unified image cannot keep its scale; crop it or lower `unified_focal_length`."
            )
        return k * side, k * side

    @staticmethod
    def _grid_kept(image_processor: Any, k: int, side: int) -> bool:
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

        low, high = int(image_processor.min_patches), int(image_processor.max_patches)
        if not low <= k * k <= high:
            return False
        return tuple(get_optimal_tiled_canvas((k * side, k * side), (side, side), low, high)) == (k, k)

    def call_kwargs(self, image_processor: Any, sizes: Sequence[Size]) -> dict[str, Any]:
        if self.tile == "size":
            return {}
        return {"do_resize": False, "do_image_splitting": True}


@dataclass(frozen=True)
class Refused(ScaleRule):
    """Processors whose resize cannot be kept: every unified image raises `ValueError` with `reason`."""

    kind: RuleKind = "refused"
    how: str = "refused"
    reason: str = ""

    def model_size(self, image_processor: Any, size: Size) -> Size:
        raise ValueError(f"{type(image_processor).__name__} cannot keep the unified scale: {self.reason}")
