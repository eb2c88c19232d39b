"""Image loading and resampling: RGB conversion, a decompression-bomb guard, and one-call affine resampling."""

from __future__ import annotations

import math
import os
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from depthlm_hf.geometry import PixelTransform

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (width x height) accepted by default: 8000 x 8000."""
EXIF_ORIENTATION = 0x0112
"""The EXIF `Orientation` tag: 1 is upright; 2-8 flip and/or rotate the stored pixels for display."""
MAX_PIXELS_CAP = 1_000_000_000
"""The highest `max_pixels` anyone may set (about 31623 x 31623, 3 GB as RGB): the guard cannot be switched off."""


def check_max_pixels(value: int, argument: str = "max_pixels") -> int:
    """`value` as an int when it is a whole number of pixels in [1, MAX_PIXELS_CAP], else a ValueError or
    TypeError naming `argument` (the same rule for an argument in code and a setting read from a checkpoint).

    >>> check_max_pixels(64e6)
    64000000
    >>> check_max_pixels(1e30, "max_image_pixels")
    Traceback (most recent call last):
    ...
    ValueError: `max_image_pixels` must be a whole number of pixels in [1, 1000000000], got 1e+30.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{argument}` must be a whole number of pixels, got {type(value).__name__} {value!r}.")
    if not (math.isfinite(value) and value == int(value) and 1 <= value <= MAX_PIXELS_CAP):
        raise ValueError(f"`{argument}` must be a whole number of pixels in [1, {MAX_PIXELS_CAP}], got {value!r}.")
    return int(value)


def load_image(
    image: str | os.PathLike | Image.Image | np.ndarray,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    exif_orientation: bool = True,
) -> Image.Image:
    """Open `image` (a path, a PIL image or an (H, W[, C]) uint8 array) as an RGB PIL image.

    Grayscale, 16-bit, float, palette and RGBA images are converted to RGB (alpha is dropped, 16-bit values
    are scaled to 8 bits). Images larger than `max_pixels` are refused before they are decoded.
    A file is read as it is displayed: its EXIF orientation (a phone photo's "rotate 90") is applied, so
    pixels, query points and intrinsics are those of the upright picture; `exif_orientation=False` keeps
    the stored pixels (as curated datasets and the official release read them). A PIL image or array passed
    in is used as it is and never modified.
    """
    max_pixels = check_max_pixels(max_pixels)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(
                f"`image` arrays must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4), "
                f"got {image.dtype} {image.shape}."
            )
        image = Image.fromarray(image)
    elif isinstance(image, (str, os.PathLike)):
        image = open_image(image, max_pixels)
        if exif_orientation and image.getexif().get(EXIF_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"`image` must be a path, a PIL image or a numpy array, got {type(image).__name__}.")
    _check_pixels(image, max_pixels)
    return to_rgb(image)


_PIL_LIMIT = threading.Lock()


def _open_header(path: Path, max_pixels: int) -> Image.Image:
    """`Image.open` (header only), with PIL's own bomb limit raised to `max_pixels` when the caller raised it.

    PIL refuses images above twice its global `Image.MAX_IMAGE_PIXELS` whatever the caller allows; the
    exact limit is `max_pixels`, checked by the caller, so PIL's warning is silenced and its global is
    raised (under a lock, then restored) only when `max_pixels` exceeds it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        limit = Image.MAX_IMAGE_PIXELS
        if limit is None or max_pixels <= limit:
            return Image.open(path)
        with _PIL_LIMIT:
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit


def open_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, argument: str = "image") -> Image.Image:
    """The image file at `path`, decoded in its own mode (no conversion), or a ValueError naming `argument`.

    Guarded like every image this library reads: only a regular file is opened, its size is checked
    against `max_pixels` from the header before any pixel is decoded, and decoder errors become ValueErrors.
    """
    path, max_pixels = Path(path), check_max_pixels(max_pixels)
    check_regular_file(path, argument)
    try:
        opened = _open_header(path, max_pixels)
    except Image.DecompressionBombError as err:
        raise ValueError(f"`{argument}` {str(path)!r} is too large to open safely: {err}") from None
    # PIL's decoders raise assorted types on hostile files (OSError, SyntaxError, struct.error, ...).
    except Exception as err:
        raise ValueError(f"`{argument}` {str(path)!r} is not a readable image: {err}") from None
    _check_pixels(opened, max_pixels, argument)
    try:
        opened.load()
    except Exception as err:
        raise ValueError(f"`{argument}` {str(path)!r} is corrupt or truncated: {err}") from None
    return opened


def check_regular_file(path: str | os.PathLike, argument: str = "image") -> None:
    """Raise a ValueError naming `argument` unless `path` is an existing regular file (symbolic links followed).

    The check uses `os.stat`, so a FIFO, socket or device is refused without being opened (opening a FIFO
    blocks until a writer appears); odd path strings (NUL bytes, too long) are refused too.

    >>> check_regular_file("/dev/null")
    Traceback (most recent call last):
    ...
    ValueError: `image` '/dev/null' is not a regular file.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ValueError(f"`{argument}` {str(path)!r} does not exist.") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"`{argument}` {str(path)[:200]!r} cannot be accessed: {err}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"`{argument}` {str(path)!r} is not a regular file.")


def _check_pixels(image: Image.Image, max_pixels: int, argument: str = "image") -> None:
    if image.width * image.height > max_pixels:
        raise ValueError(
            f"`{argument}` has {image.width}x{image.height} = {image.width * image.height} pixels, more than "
            f"`max_pixels` = {max_pixels}; raise `max_pixels` if the image is trusted."
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of `image` (or `image` itself when it already is RGB)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        gray = np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "F":  # scaled over its finite pixels; NaN and inf pixels are black
        array = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(array)
        low, high = (float(array[finite].min()), float(array[finite].max())) if finite.any() else (0.0, 1.0)
        scaled = np.where(finite, (np.where(finite, array, low) - low) / max(high - low, 1e-12) * 255, 0)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    return image.convert("RGB")


def apply_transform(
    image: Image.Image, transform: PixelTransform, resample: int = Image.Resampling.BICUBIC
) -> Image.Image:
    """Resample `image` through `transform` (resize and/or crop) in a single `PIL.Image.resize` call.

    The output has size `(transform.out_width, transform.out_height)` and pixel `(x, y)` of the input
    lands at `transform.map_points([[x, y]])`.
    """
    size = (transform.out_width, transform.out_height)
    if (
        transform.scale_x == 1.0
        and transform.scale_y == 1.0
        and float(transform.offset_x).is_integer()
        and float(transform.offset_y).is_integer()
    ):
        left, top = int(-transform.offset_x), int(-transform.offset_y)
        if (left, top) == (0, 0) and size == image.size:
            return image.copy()
        return image.crop((left, top, left + size[0], top + size[1]))
    left, top, right, bottom = transform.source_box()
    # Floating-point rounding can put an exact edge at -1e-16 px or W + 1e-13 px, which PIL refuses.
    eps = 1e-6
    if left < -eps or top < -eps or right > image.width + eps or bottom > image.height + eps:
        raise ValueError(
            f"`transform` reads outside the {image.width}x{image.height} image (source box "
            f"{(left, top, right, bottom)}); it must map into the image."
        )
    # Edges within eps of a whole pixel are that pixel's edge: a whole-image resize then is PIL's own
    # `image.resize(size)` bit for bit (the official release's resize), not one off by 1e-13 px.
    box = tuple(float(round(v)) if abs(v - round(v)) < eps else v for v in (left, top, right, bottom))
    box = (max(0.0, box[0]), max(0.0, box[1]), min(float(image.width), box[2]), min(float(image.height), box[3]))
    return image.resize(size, resample=resample, box=box)
