"""Markers: the arrow's tip is exactly the query pixel; the input image is never mutated."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.prompting.markers import PALETTE, MarkerStyle, draw_markers, marker_fits

RED = (255, 0, 0)


def _red_pixels(image: Image.Image, color=RED) -> set[tuple[int, int]]:
    ys, xs = np.nonzero((np.asarray(image) == color).all(axis=-1))
    return set(zip(xs.tolist(), ys.tolist(), strict=True))


def test_paper_arrow_pixels_and_tip():
    image = Image.new("RGB", (40, 30))
    out = draw_markers(image, [[20, 15]])
    pixels = _red_pixels(out)
    shaft = {(x, 15) for x in range(15, 21)}
    head = {(18, 13), (19, 14), (18, 17), (19, 16)}
    assert pixels == shaft | head
    assert max(pixels) == (20, 15)  # the rightmost red pixel, the tip, is the query pixel
    assert not np.asarray(image).any()  # input untouched


@pytest.mark.parametrize("shape", ["cross", "circle"])
def test_cross_and_circle_are_centred(shape):
    out = draw_markers(Image.new("RGB", (40, 30)), [[20, 15]], MarkerStyle(shape=shape, size=4))
    xs, ys = zip(*_red_pixels(out), strict=True)
    assert (min(xs) + max(xs)) / 2 == 20 and (min(ys) + max(ys)) / 2 == 15


def test_multi_point_colours_and_numbers():
    out = draw_markers(Image.new("RGB", (60, 40)), [[20, 20], [45, 20]], MarkerStyle(numbered=True))
    assert (20, 20) in _red_pixels(out) and (45, 20) in _red_pixels(out, PALETTE[1])
    single = draw_markers(Image.new("RGB", (60, 40)), [[20, 20], [45, 20]], MarkerStyle(multi_color=False))
    assert {(20, 20), (45, 20)} <= _red_pixels(single)


def test_fit_and_failure_modes():
    style = MarkerStyle()
    # The arrow extends 5 px left of its tip and 2 px up and down, nothing to the right.
    assert marker_fits([[5, 2], [4, 2], [10, 1], [39, 27], [39, 28]], 40, 30, style).tolist() == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert marker_fits([[39, 10]], 40, 30, MarkerStyle(shape="cross")).tolist() == [False]
    with pytest.raises(ValueError, match=r"too close to the border of the 40x30 image"):
        draw_markers(Image.new("RGB", (40, 30)), [[2, 10]])
    with pytest.raises(ValueError, match="Unknown marker shape 'star'. Available: arrow, cross, circle"):
        MarkerStyle(shape="star")
    with pytest.raises(ValueError, match="`size` must be an integer >= 1"):
        MarkerStyle(size=0)
    with pytest.raises(ValueError, match="`color` must be 3 integers"):
        MarkerStyle(color=(300, 0, 0))
    with pytest.raises(ValueError, match=r"non-empty \(N, 2\)"):
        draw_markers(Image.new("RGB", (40, 30)), [])
    with pytest.raises(ValueError, match="Unknown marker settings"):
        MarkerStyle.from_dict({"shape": "arrow", "colour": [1, 2, 3]})


def test_style_dict_round_trip():
    style = MarkerStyle(shape="circle", size=7, color=(0, 255, 0), thickness=2, numbered=True)
    assert MarkerStyle.from_dict(style.to_dict()) == style
