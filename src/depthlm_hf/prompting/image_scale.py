"""Keep the unified image's scale through the wrapped VLM image processor.

A DepthLM prompt only works at the focal length the model was trained on, but VLM image processors resize
images to their own limits: Pixtral's stock `longest_edge` 1024 shrinks a 1143x857 unified image to 1024x768
(f* 1000 -> 896); Qwen2-VL's `max_pixels` shrinks any image above it and rounds each side to 28 px; Gemma 3
squashes every image to one square. The family registry (`depthlm_hf.models.families.scale_rule`) says, per
image processor, how the image reaches the model unscaled: padded on the right and bottom (pixel coordinates,
principal point and focal length unchanged) and called with per-call settings, or refused with a `ValueError`
that names the processor and why. `keep_scale` applies it; with `image_scale="processor"` nothing is changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from depthlm_hf.models.families import scale_rule
from depthlm_hf.prompting.query_inputs import pil_images


def pad_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` padded with black on the right and bottom to `size` (width, height) [px]; itself when it fits.

    >>> white = Image.new("RGB", (3, 2), "white")
    >>> padded = pad_image(white, (4, 4))
    >>> padded.getpixel((2, 1)), padded.getpixel((3, 3)), pad_image(white, (3, 2)) is white
    ((255, 255, 255), (0, 0, 0), True)
    """
    if image.size == tuple(size):
        return image
    if image.width > size[0] or image.height > size[1]:
        raise ValueError(f"`size` {tuple(size)} is smaller than the {image.width}x{image.height} image.")
    out = Image.new(image.mode, tuple(size))
    out.paste(image, (0, 0))
    return out


def model_size(image_processor: Any, size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) [px] a unified image of `size` is padded to for `image_processor` (its family's rule);
    the model sees it unscaled, so model pixel = unified pixel and the model's focal length is f*."""
    return scale_rule(image_processor).model_size(image_processor, tuple(size))


def keep_scale_kwargs(image_processor: Any, sizes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Per-call settings for `image_processor` that keep unified images of `sizes` [(width, height) px], once
    padded to `model_size`, at their scale (`{}` when its own settings already do)."""
    rule = scale_rule(image_processor)
    return rule.call_kwargs(image_processor, [rule.model_size(image_processor, tuple(s)) for s in sizes])


def _map_images(images: Any, fn: Any) -> Any:
    if isinstance(images, Image.Image):
        return fn(images)
    if isinstance(images, (list, tuple)):
        return type(images)(_map_images(item, fn) for item in images)
    return images


def keep_scale(processor: Any, images: Any) -> tuple[Any, dict[str, Any]]:
    """`images` (PIL images at any nesting) padded as `processor`'s image processor needs, and the per-call
    settings under which it keeps them unscaled. Unchanged and `{}` when `image_scale` is "processor"."""
    if processor.image_scale == "processor" or images is None:
        return images, {}
    image_processor = processor.image_processor
    rule = scale_rule(image_processor)
    padded = _map_images(images, lambda image: pad_image(image, rule.model_size(image_processor, image.size)))
    return padded, rule.call_kwargs(image_processor, [image.size for image in pil_images(padded)])
