"""Visual prompts: markers drawn on the image at query pixels (the paper's red arrow, crosses, circles).

A marker's *anchor* is the query pixel: the arrow's tip, the cross's and the circle's centre.
Drawing never mutates the input image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import numpy as np
from PIL import Image, ImageDraw

MarkerShape = Literal["arrow", "cross", "circle", "official_arrow"]
MARKER_SHAPES: tuple[MarkerShape, ...] = get_args(MarkerShape)

PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (0, 0, 255),
    (0, 200, 0),
    (255, 0, 255),
    (255, 160, 0),
    (0, 200, 200),
)
"""Colours given to successive points when a prompt has several markers (red first, as in the paper)."""


@dataclass(frozen=True)
class MarkerStyle:
    """How markers look.

    Args:
        shape: "arrow" (paper default: a horizontal shaft left of the tip with a head of two
            diagonals), "cross", "circle", or "official_arrow": the official release's arrow, one pixel wide,
            its shaft the `size` pixels left of the anchor and its head `size // 2` pixels up and down
            one further left (the tip is at x - 1: the anchor pixel itself stays unpainted); it needs
            `size` pixels on all four sides, as the release requires.
        size: shaft length / half-width / radius [px], >= 1. Paper: 5.
        color: RGB of the first marker.
        thickness: line width [px], >= 1.
        multi_color: give the i-th marker `PALETTE[i]` instead of `color` for multi-point prompts.
        numbered: write the 1-based index next to each marker (multi-point prompts).

    >>> MarkerStyle.from_dict({"shape": "cross", "size": 7}).size
    7
    """

    shape: MarkerShape = "arrow"
    size: int = 5
    color: tuple[int, int, int] = (255, 0, 0)
    thickness: int = 1
    multi_color: bool = True
    numbered: bool = False

    def __post_init__(self) -> None:
        if self.shape not in MARKER_SHAPES:
            raise ValueError(f"Unknown marker shape {self.shape!r}. Available: {', '.join(MARKER_SHAPES)}.")
        for name in ("size", "thickness"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        color = tuple(self.color)
        if len(color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in color):
            raise ValueError(f"`color` must be 3 integers in [0, 255], got {self.color!r}.")
        object.__setattr__(self, "color", color)
        if self.shape == "official_arrow" and self.thickness != 1:
            raise ValueError(f"`thickness` must be 1 for an official_arrow, got {self.thickness}.")

    @classmethod
    def from_dict(cls, values: dict | MarkerStyle | None) -> MarkerStyle:
        """Build from a JSON-able dict (as stored in `processor_config.json`); `None` gives the default."""
        if values is None:
            return cls()
        if isinstance(values, MarkerStyle):
            return values
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Unknown marker settings {sorted(unknown)}. Available: {sorted(cls.__dataclass_fields__)}."
            )
        return cls(**values)

    def to_dict(self) -> dict:
        """A JSON-able dict that :meth:`from_dict` turns back into this style."""
        values = asdict(self)
        values["color"] = list(self.color)
        return values

    @property
    def extent(self) -> tuple[int, int, int, int]:
        """Pixels the marker needs around its anchor: (left, top, right, bottom) [px]."""
        half = self.thickness // 2
        if self.shape == "official_arrow":
            return (self.size,) * 4
        if self.shape == "arrow":
            head = max(1, self.size // 2)
            return (self.size + half, head + half, half, head + half)
        return (self.size + half,) * 4

    def color_of(self, index: int) -> tuple[int, int, int]:
        """Colour of the `index`-th marker of a prompt."""
        return PALETTE[index % len(PALETTE)] if self.multi_color and index > 0 else self.color


def _as_points(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
        raise ValueError(f"`points` must be a non-empty (N, 2) array of [x, y] pixels, got shape {pts.shape}.")
    if not np.isfinite(pts).all():
        raise ValueError(f"`points` must be finite, got {pts.tolist()!r}.")
    return pts


def marker_fits(
    points: np.ndarray | Sequence[Sequence[float]], width: int, height: int, style: MarkerStyle = MarkerStyle()
) -> np.ndarray:
    """Whether a marker anchored at each of the (N, 2) pixels [px] fits in a `width` x `height` image: (N,) bool.

    >>> marker_fits([[5, 2], [4, 2], [639, 479]], 640, 480).tolist()
    [True, False, False]
    """
    pts = np.rint(_as_points(points))
    left, top, right, bottom = style.extent
    return (
        (pts[:, 0] - left >= 0) & (pts[:, 1] - top >= 0) & (pts[:, 0] + right < width) & (pts[:, 1] + bottom < height)
    )


def draw_markers(
    image: Image.Image, points: np.ndarray | Sequence[Sequence[float]], style: MarkerStyle = MarkerStyle()
) -> Image.Image:
    """A copy of RGB `image` with one marker anchored at each (N, 2) pixel [px] (rounded to the nearest pixel).

    Raises `ValueError` when a marker would not fit entirely inside the image.
    """
    pts = _as_points(points)
    fits = marker_fits(pts, image.width, image.height, style)
    if not fits.all():
        bad = pts[~fits].tolist()
        raise ValueError(
            f"`points` {bad} are too close to the border of the {image.width}x{image.height} image for a "
            f"{style.shape} marker of size {style.size} (it needs {style.extent} px left/top/right/bottom)."
        )
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for index, (x, y) in enumerate(np.rint(pts).astype(int).tolist()):
        color = style.color_of(index)
        _draw_one(draw, x, y, style, color)
        if style.numbered:
            left, top, _, _ = style.extent
            draw.text((x - left, max(0, y - top - 11)), str(index + 1), fill=color)
    return out


def _draw_one(draw: ImageDraw.ImageDraw, x: int, y: int, style: MarkerStyle, color: tuple[int, int, int]) -> None:
    s, w = style.size, style.thickness
    if style.shape == "official_arrow":
        shaft = [(x - dx, y) for dx in range(1, s + 1)]
        head = [(x - dy - 1, y + sign * dy) for dy in range(1, s // 2 + 1) for sign in (1, -1)]
        draw.point(shaft + head, fill=color)
    elif style.shape == "arrow":
        head = max(1, s // 2)
        draw.line([(x - s, y), (x, y)], fill=color, width=w)
        draw.line([(x - head, y - head), (x, y)], fill=color, width=w)
        draw.line([(x - head, y + head), (x, y)], fill=color, width=w)
    elif style.shape == "cross":
        draw.line([(x - s, y), (x + s, y)], fill=color, width=w)
        draw.line([(x, y - s), (x, y + s)], fill=color, width=w)
    else:
        draw.ellipse([(x - s, y - s), (x + s, y + s)], outline=color, width=w)
