"""Model inputs for many single-marker queries on one image, preprocessing only what each marker changes.

A point cloud asks thousands of questions about one image; each question's image differs from the
unmarked image only around its marker. Running the VLM's image processor on every marked copy (resize
to the model's grid, normalise, cut into patches) costs tens of milliseconds per query at the paper's
image sizes, as much as the GPU forward itself. `MarkedImageBatcher` preprocesses the unmarked image
once and, per query, recomputes only the patches whose pixels the marker can reach through the resize
filter: it crops a small window around the marker, draws the marker there, resizes the window with
PIL's `box` argument (the same filter taps as the full-image resize, so the same bytes), and runs the
image processor on the window alone. The result equals the stock processor's output bit for bit (tested).

Supported: Qwen2-VL / Qwen2.5-VL image processors with the PIL backend (patches in 2x2 merge blocks).
Other processors go through the stock path (`supported()` says which).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from depthlm_hf.models import families
from depthlm_hf.prompting.image_scale import keep_scale
from depthlm_hf.prompting.markers import MarkerStyle, draw_markers

# PIL's bicubic filter reaches 2 source pixels (times the downscale factor) on each side.
_BICUBIC_SUPPORT = 2.0


def supported(processor: Any) -> bool:
    """Whether `processor`'s image processor has the Qwen2-VL PIL layout this module reproduces.

    The torchvision-backed image processor (the default where torchvision is installed) resizes with other
    filter taps, so it is not supported: callers fall back to the stock processor path.
    """
    image_processor = getattr(processor, "image_processor", None)
    style = getattr(processor, "marker_style", None)
    return (
        families.marker_patches_apply(processor)
        and int(getattr(image_processor, "resample", -1)) == int(Image.Resampling.BICUBIC)
        and style is not None
        and not style.numbered
    )


class MarkedImageBatcher:
    """Generation inputs for queries "one marker at pixel p of `image`", built from one preprocessed image.

    Args:
        processor: a `DepthLMProcessor` for which `supported(processor)` is true.
        image: the focal-unified image without markers (RGB).
        text_inputs: the tokenized prompt of one query (`input_ids`, `attention_mask`, ... with batch 1):
            every query has the same text and the same number of image tokens.
        device: where the batches go.

    Raises `ValueError` when PIL's resize of `image` cannot be reproduced pass by pass (then use the
    stock processor path).
    """

    def __init__(self, processor: Any, image: Image.Image, text_inputs: dict[str, torch.Tensor], device=None) -> None:
        self.processor = processor
        image, scale_kwargs = keep_scale(processor, image)  # padded as the family's rule says (pixels unmoved)
        self.image = image
        self.style: MarkerStyle = processor.marker_style
        ip = processor.image_processor
        self.image_processor = ip
        self.patch, self.merge = int(ip.patch_size), int(ip.merge_size)
        base = ip(images=[image], return_tensors="pt", **scale_kwargs)
        self.grid = base["image_grid_thw"]  # (1, 3): t, rows, cols of patches
        _, self.rows, self.cols = (int(v) for v in self.grid[0])
        self.out_width, self.out_height = self.cols * self.patch, self.rows * self.patch
        self.scale_x, self.scale_y = image.width / self.out_width, image.height / self.out_height
        self.vertical_first, self.first_pass = self._pass_order()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.base_pixels = base["pixel_values"].to(self.device)
        self.text = {
            k: v.to(self.device) for k, v in text_inputs.items() if k not in ("pixel_values", "image_grid_thw")
        }

    def _resize(self, image: Image.Image, width: int, height: int) -> Image.Image:
        return image.resize((width, height), resample=Image.Resampling.BICUBIC)

    def _pass_order(self) -> tuple[bool, np.ndarray]:
        """Which 1D pass PIL runs first on this image (it picks per size), and that pass's output (uint8)."""
        full = np.asarray(self._resize(self.image, self.out_width, self.out_height))
        vertical = self._resize(self.image, self.image.width, self.out_height)
        if np.array_equal(np.asarray(self._resize(vertical, self.out_width, self.out_height)), full):
            return True, np.asarray(vertical)
        horizontal = self._resize(self.image, self.out_width, self.image.height)
        if np.array_equal(np.asarray(self._resize(horizontal, self.out_width, self.out_height)), full):
            return False, np.asarray(horizontal)
        raise ValueError("PIL's resize of this image is not two separable passes; use the processor's own path.")

    def _span(self, lo: int, hi: int, scale: float, out_size: int) -> tuple[int, int]:
        """Output range [first, last), merge-block aligned, that source pixels lo..hi reach via the filter."""
        reach = _BICUBIC_SUPPORT * max(scale, 1.0)
        block = self.patch * self.merge
        first = max(0, (math.floor((lo - reach) / scale) - 1) // block * block)
        last = min(out_size, -(-(math.ceil((hi + 1 + reach) / scale) + 1) // block) * block)
        return first, last

    def _rows(self, ox0: int, oy0: int, ox1: int, oy1: int) -> np.ndarray:
        """Indices into the image's patch rows of the window's patches, in the window's own patch order."""
        m, p = self.merge, self.patch
        win_rows, win_cols = (oy1 - oy0) // p, (ox1 - ox0) // p
        # Qwen2-VL orders patches by merge block (row-major), then within the m x m block (row-major).
        bh, bw, mh, mw = np.meshgrid(
            np.arange(win_rows // m), np.arange(win_cols // m), np.arange(m), np.arange(m), indexing="ij"
        )
        gh, gw = bh + oy0 // (p * m), bw + ox0 // (p * m)
        return (((gh * (self.cols // m) + gw) * m + mh) * m + mw).reshape(-1)

    def window(self, x: int, y: int) -> tuple[tuple[int, int, int, int], Image.Image]:
        """The output window `(x0, y0, x1, y1)` a marker at unified pixel (x, y) changes, and its pixels.

        The resize is PIL's own, pass by pass: the first pass only on the marker's columns (or rows), spliced
        into the unmarked image's first pass, then the second pass on a full-length strip, so that every
        filter sees exactly the samples it sees in the full-image resize.
        """
        left, top, right, bottom = self.style.extent
        x0, x1, y0, y1 = x - left, x + right + 1, y - top, y + bottom + 1  # the marker's pixels
        ox0, ox1 = self._span(x - left, x + right, self.scale_x, self.out_width)
        oy0, oy1 = self._span(y - top, y + bottom, self.scale_y, self.out_height)
        width, height = self.image.size
        if self.vertical_first:
            columns = draw_markers(self.image.crop((x0, 0, x1, height)), [[x - x0, y]], self.style)
            strip = self.first_pass[oy0:oy1].copy()
            strip[:, x0:x1] = np.asarray(self._resize(columns, x1 - x0, self.out_height))[oy0:oy1]
            out = self._resize(Image.fromarray(strip), self.out_width, oy1 - oy0).crop((ox0, 0, ox1, oy1 - oy0))
        else:
            rows = draw_markers(self.image.crop((0, y0, width, y1)), [[x, y - y0]], self.style)
            strip = self.first_pass[:, ox0:ox1].copy()
            strip[y0:y1] = np.asarray(self._resize(rows, self.out_width, y1 - y0))[:, ox0:ox1]
            out = self._resize(Image.fromarray(strip), ox1 - ox0, self.out_height).crop((0, oy0, ox1 - ox0, oy1))
        return (ox0, oy0, ox1, oy1), out

    def window_pixels(self, x: int, y: int) -> tuple[np.ndarray, torch.Tensor]:
        """(rows, patches): the patch rows a marker at unified pixel (x, y) changes, and their new values."""
        box, window = self.window(x, y)
        patches = self.image_processor(images=[window], do_resize=False, return_tensors="pt")["pixel_values"]
        return self._rows(*box), patches

    def batch(self, points: np.ndarray) -> dict[str, torch.Tensor]:
        """Generation inputs for one query per (B, 2) unified pixel [px], like the processor's own output."""
        points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
        count, per_image = len(points), self.base_pixels.shape[0]
        pixels = self.base_pixels.repeat(count, 1)
        for i, (x, y) in enumerate(points.tolist()):
            rows, patches = self.window_pixels(x, y)
            pixels[torch.as_tensor(rows + i * per_image, device=self.device)] = patches.to(self.device, pixels.dtype)
        inputs = {k: v.expand(count, *v.shape[1:]).contiguous() for k, v in self.text.items()}
        inputs["pixel_values"] = pixels
        inputs["image_grid_thw"] = self.grid.to(self.device).repeat(count, 1)
        return inputs
