"""Image loading: mode conversion, corrupt files and the decompression-bomb guard give clear errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.geometry import CameraIntrinsics, unify_focal_length
from depthlm_hf.prompting.imaging import apply_transform, load_image


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (8, 6), 128),
        Image.new("RGBA", (8, 6), (10, 20, 30, 0)),
        Image.new("P", (8, 6)),
        Image.fromarray(np.full((6, 8), 65535, dtype=np.uint16)),
        Image.new("1", (8, 6), 1),
    ],
)
def test_modes_become_rgb(image):
    out = load_image(image)
    assert out.mode == "RGB" and out.size == (8, 6)


def test_sixteen_bit_scaled_to_eight_bits(tmp_path):
    path = tmp_path / "depth16.png"
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(path)
    assert np.asarray(load_image(path))[0, :, 0].tolist() == [0, 255]


def test_bad_files_and_limits(tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ValueError, match="is not a readable image"):
        load_image(corrupt)
    with pytest.raises(ValueError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"has 100x100 = 10000 pixels, more than `max_pixels` = 9999"):
        load_image(Image.new("RGB", (100, 100)), max_pixels=9999)
    big = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(big)
    with pytest.raises(ValueError, match="more than `max_pixels`"):
        load_image(big, max_pixels=1000)
    with pytest.raises(TypeError, match="`image` must be a path, a PIL image or a numpy array"):
        load_image(42)
    with pytest.raises(ValueError, match="`image` arrays must be uint8"):
        load_image(np.zeros((4, 4, 2), dtype=np.uint8))


def test_apply_transform_puts_pixels_where_the_map_says():
    # A single white pixel at (10, 7) in a 32x24 image lands at round(map) after a 2x resize.
    array = np.zeros((24, 32, 3), dtype=np.uint8)
    array[7, 10] = 255
    camera = CameraIntrinsics(100.0, 100.0, 16.0, 12.0, 32, 24)
    t = unify_focal_length(camera, 200.0)
    out = np.asarray(apply_transform(Image.fromarray(array), t, resample=Image.Resampling.NEAREST))
    assert out.shape == (48, 64, 3)
    x, y = np.rint(t.map_points([[10, 7]])[0]).astype(int)
    assert out[y, x, 0] == 255
    ys, xs = np.nonzero(out[..., 0])
    assert (xs.mean(), ys.mean()) == pytest.approx(tuple(t.map_points([[10, 7]])[0]), abs=0.01)


def test_apply_transform_tolerates_rounding_at_the_edges_and_refuses_real_overreach():
    from depthlm_hf.geometry import PixelTransform

    image = Image.new("RGB", (640, 480))
    # 1000 / 559.62 style factors whose exact box edges land at +-1e-16 px after rounding.
    for focal in (270.0, 333.3, 1000.0, 1234.5):
        camera = CameraIntrinsics(559.62, 558.14, 361.87, 241.99, 640, 480)
        t = unify_focal_length(camera, focal)
        assert apply_transform(image, t).size == (t.out_width, t.out_height)
    nudged = PixelTransform(2.0, 2.0, 0.5 + 1e-12, 0.5, 1280, 960)
    assert apply_transform(image, nudged).size == (1280, 960)
    with pytest.raises(ValueError, match="reads outside the 640x480 image"):
        apply_transform(image, PixelTransform(2.0, 2.0, 10.0, 0.5, 1280, 960))


def test_special_files_and_odd_paths_are_refused_without_opening(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")  # opening a FIFO blocks until a writer appears: it must never be opened
    for path, message in [
        (tmp_path / "fifo.png", "is not a regular file"),
        (tmp_path, "is not a regular file"),
        ("/dev/zero", "is not a regular file"),
        (tmp_path / "missing.png", "does not exist"),
        ("a\x00b.png", "cannot be accessed"),
        ("x" * 100_000, "cannot be accessed"),
    ]:
        with pytest.raises(ValueError, match=f"`image` .*{message}"):
            load_image(path)


def test_a_raised_pixel_limit_is_honoured_above_pils_own(tmp_path, monkeypatch):
    # PIL warns above MAX_IMAGE_PIXELS and refuses above twice it, whatever the caller allows.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for size in (40, 60):  # 1600 px (PIL would warn), 3600 px (PIL would refuse)
        Image.new("RGB", (size, size)).save(tmp_path / f"{size}.png")
        assert load_image(tmp_path / f"{size}.png", max_pixels=5000).size == (size, size)
        with pytest.raises(ValueError, match="more than `max_pixels` = 1200|too large to open safely"):
            load_image(tmp_path / f"{size}.png", max_pixels=1200)
    assert Image.MAX_IMAGE_PIXELS == 1000  # PIL's global is restored
