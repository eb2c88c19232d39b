"""MarkedImageBatcher: patches recomputed around each marker equal the stock processor's output exactly."""

from __future__ import annotations

import numpy as np
import PIL
import pytest
import torch
from PIL import Image
from transformers import Qwen2VLImageProcessorPil

from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.models.tiny import tiny_processor
from depthlm_hf.prompting.marker_patches import MarkedImageBatcher, supported
from depthlm_hf.prompting.markers import marker_fits

PILLOW_13 = int(PIL.__version__.split(".")[0]) >= 13  # gradio (the `app` extra) still pins Pillow < 13


@pytest.mark.parametrize(
    ("max_pixels", "camera", "vertical_first"),
    [
        (224 * 168, [91.3, 95.7, 57.2, 40.1, 112, 84], False),  # strong downscale to the model grid
        # slight upscale in x, downscale in y: Pillow 13 resizes vertically first here, Pillow 12 horizontally
        (2000 * 2000, [91.3, 95.7, 57.2, 40.1, 112, 84], PILLOW_13),
        (2000 * 2000, [100.0, 100.0, 56.0, 42.0, 112, 84], True),  # already on the grid: no resize
        (2000 * 2000, [81.3, 99.7, 57.2, 40.1, 112, 84], False),
    ],
)
def test_batch_equals_the_processor_output(max_pixels, camera, vertical_first):
    processor = _pil(tiny_processor(max_pixels=max_pixels))
    assert supported(processor)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (84, 112, 3), dtype=np.uint8))
    prepared = processor.prepare(image, camera, None)
    unified = prepared.intrinsics
    exact = CameraIntrinsics(1000.0, 1000.0, unified.cx, unified.cy, unified.width, unified.height)
    points = np.rint(prepared.transform.map_points(np.stack([rng.integers(0, 112, 12), rng.integers(0, 84, 12)], 1)))
    points = points[marker_fits(points, unified.width, unified.height, processor.marker_style)].astype(int)
    points = np.concatenate([points, [[5, 2], [unified.width - 1, unified.height - 3]]])  # markers at the borders
    reference = processor(images=prepared.image, intrinsics=exact, points=points, force_answer_prefix=True)
    one = processor(images=prepared.image, intrinsics=exact, points=points[:1], force_answer_prefix=True)
    batcher = MarkedImageBatcher(processor, prepared.image, dict(one))
    assert batcher.vertical_first == vertical_first
    got = batcher.batch(points)
    assert set(got) == set(reference)
    for key, value in reference.items():
        assert torch.equal(value, got[key]), key


def _pil(processor):
    """`processor` with the PIL-backed image processor (the default only where torchvision is missing)."""
    ip = processor.image_processor
    processor.image_processor = Qwen2VLImageProcessorPil(**ip.to_dict())
    return processor


class _OtherBackend:
    """Stands in for the torchvision-backed image processor: same settings, not the PIL class."""

    def __init__(self, ip):
        self.__dict__.update(vars(ip))


def test_unsupported_processors():
    assert not supported(object())
    assert not supported(_pil(tiny_processor(marker={"numbered": True})))
    processor = _pil(tiny_processor())
    assert supported(processor)
    processor.image_processor = _OtherBackend(processor.image_processor)
    assert not supported(processor)
