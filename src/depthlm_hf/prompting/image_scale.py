"""Keep the unified image's scale through the wrapped VLM image processor.

A DepthLM prompt only works at the focal length the model was trained on, but VLM image processors
rescale images to their own limits: Pixtral's stock `longest_edge` 1024 shrinks a 1143x857 unified image
to 1024x768 (f* 1000 -> 896) and rounds every side up to a multiple of 16; Qwen2-VL's `max_pixels`
shrinks any image above it. `keep_scale_kwargs` gives the per-call image-processor settings under
which the image reaches the model at its own scale:

- Pixtral: `do_resize=False`, as the official release trains (the vision tower drops the last
  partial 16 px row and column of patches; nothing is rescaled);
- Qwen2-VL / Qwen2.5-VL: pixel limits widened to hold the image, so the only resize left is the
  processor's rounding of each side to a multiple of 28 px (at most 14 px, a scale within 1-2 %);
- other image processors: nothing is changed (their limits are their own; see the docs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from transformers import (
    PixtralImageProcessor,
    PixtralImageProcessorPil,
    Qwen2VLImageProcessor,
    Qwen2VLImageProcessorPil,
)

from depthlm_hf.prompting.query_inputs import pil_images

logger = logging.getLogger(__name__)

_PIXTRAL = (PixtralImageProcessor, PixtralImageProcessorPil)
_QWEN = (Qwen2VLImageProcessor, Qwen2VLImageProcessorPil)


def qwen_grid_size(width: int, height: int, factor: int = 28) -> tuple[int, int]:
    """Size `(width, height)` [px] a Qwen2-VL processor gives an image when its pixel limits do not bind.

    Each side is rounded to the nearest multiple of `factor` (patch 14 x merge 2), at least `factor`.

    >>> qwen_grid_size(1143, 859)
    (1148, 868)
    """
    return max(factor, round(width / factor) * factor), max(factor, round(height / factor) * factor)


def keep_scale_kwargs(image_processor: Any, sizes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Per-call settings for `image_processor` that keep images of `sizes` [(width, height) px] at their scale.

    Returns `{}` when the processor's own settings already keep them (or it is of an unknown type).
    """
    if isinstance(image_processor, _PIXTRAL):
        return {"do_resize": False} if image_processor.do_resize else {}
    if not isinstance(image_processor, _QWEN) or not sizes:
        return {}
    factor = int(image_processor.patch_size) * int(image_processor.merge_size)
    areas = [w * h for w, h in (qwen_grid_size(w, h, factor) for w, h in sizes)]
    low, high = int(image_processor.size["shortest_edge"]), int(image_processor.size["longest_edge"])
    if low <= min(areas) and max(areas) <= high:
        return {}
    logger.info(
        "Widening the Qwen image processor's pixel limits [%d, %d] to [%d, %d] for this call so that the "
        "unified images (largest %d px) keep the unified focal length; crop or lower the unified focal length "
        "to use fewer image tokens.",
        low,
        high,
        min(low, min(areas)),
        max(high, max(areas)),
        max(areas),
    )
    return {"size": {"shortest_edge": min(low, min(areas)), "longest_edge": max(high, max(areas))}}


def keep_scale(processor: Any, images: Any) -> dict[str, Any]:
    """Per-call image-processor settings of `processor` for `images` (PIL images at any nesting).

    `{}` when the processor's `image_scale` is "processor"; else `keep_scale_kwargs` for the images' sizes.
    """
    if processor.image_scale == "processor":
        return {}
    return keep_scale_kwargs(processor.image_processor, [image.size for image in pil_images(images)])
