"""No silent rescale: the wrapped image processor receives the unified image and keeps its scale."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from transformers import PixtralImageProcessor, Qwen2VLImageProcessor

from depthlm_hf.models.tiny import tiny_llava_pixtral, tiny_processor
from depthlm_hf.prompting.image_scale import keep_scale, keep_scale_kwargs
from depthlm_hf.prompting.processing import DepthLMProcessor

IBIMS = [559.62, 558.14, 361.87, 241.99, 640, 480]


def _image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 200, (480, 640, 3), dtype=np.uint8))


def test_pixtral_with_stock_longest_edge_gets_the_unified_size():
    """Stock Pixtral settings (longest_edge 1024) would turn the 1143x857 unified image into 1024x768."""
    _, processor = tiny_llava_pixtral(longest_edge=1024, unified_focal_length=1000.0, image_scale="keep")
    assert processor.image_processor.size["longest_edge"] == 1024 and processor.image_processor.do_resize
    batch = processor(images=_image(), intrinsics=IBIMS, points=[[519, 129]])
    assert batch["image_sizes"].tolist() == [[857, 1143]]
    assert tuple(batch["pixel_values"].shape[-2:]) == (857, 1143)
    image_tokens = (batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<image>")).sum().item()
    assert image_tokens == (857 // 16) * (1143 // 16)  # whole patches of the unscaled image, as the release

    processor.image_scale = "processor"  # the stock processor's own limits: the rescale this setting prevents
    shrunk = processor(images=_image(), intrinsics=IBIMS, points=[[519, 129]])
    assert shrunk["image_sizes"].tolist() == [[768, 1024]]


def test_pixtral_keeps_the_release_size_below_its_limit():
    """Below the limit stock Pixtral still rounds each side up to 16 px (857x643 -> 864x656); kept: 857x643."""
    _, processor = tiny_llava_pixtral(longest_edge=1024, image_scale="keep")  # official_pixtral: f* = 750
    batch = processor(images=_image(), intrinsics=IBIMS, points=[[519, 129]])
    assert batch["image_sizes"].tolist() == [[643, 857]]


def test_qwen_with_low_max_pixels_gets_the_unified_size():
    processor = tiny_processor(max_pixels=224 * 168, image_scale="keep")
    batch = processor(images=_image(), intrinsics=IBIMS, points=[[519, 129]])
    # 1143x859 unified; the Qwen processor only rounds each side to a multiple of 28: 1148x868 = 82x62 patches.
    assert batch["image_grid_thw"].tolist() == [[1, 62, 82]]
    assert processor.image_processor.size["longest_edge"] == 224 * 168  # the processor's own setting is untouched

    processor.image_scale = "processor"
    shrunk = processor(images=_image(), intrinsics=IBIMS, points=[[519, 129]])
    assert shrunk["image_grid_thw"].tolist() == [[1, 12, 14]]


def test_qwen_small_crops_are_not_upscaled():
    """A unified image below `min_pixels` keeps its size too (the lower limit is widened)."""
    processor = tiny_processor(min_pixels=512 * 512, max_pixels=1024 * 1024, image_scale="keep")
    camera = [100.0, 100.0, 79.5, 59.5, 160, 120]  # f* 1000: 1600x1200; crop a 112x84 window around (80, 60)
    image = Image.fromarray(np.full((120, 160, 3), 90, np.uint8))
    prepared = processor.prepare(image, camera, [[80, 60]], crop=(748, 558, 112, 84))
    image, kwargs = keep_scale(processor, prepared.image)
    assert image is prepared.image  # 112x84: whole 28 px blocks, nothing to pad
    assert processor.image_processor(images=[image], **kwargs)["image_grid_thw"].tolist() == [[1, 6, 8]]


def test_keep_scale_kwargs_by_type():
    qwen = Qwen2VLImageProcessor(min_pixels=784, max_pixels=50_176)
    assert keep_scale_kwargs(qwen, [(1143, 859)]) == {"size": {"shortest_edge": 784, "longest_edge": 1148 * 868}}
    assert keep_scale_kwargs(qwen, [(100, 80)]) == {}  # inside the limits: nothing to change
    assert keep_scale_kwargs(PixtralImageProcessor(), [(1143, 859)]) == {"do_resize": False}
    assert keep_scale_kwargs(PixtralImageProcessor(do_resize=False), [(1143, 859)]) == {}
    with pytest.raises(ValueError, match="object cannot keep the unified scale: DepthLM cannot tell how it resizes"):
        keep_scale_kwargs(object(), [(1143, 859)])


def test_image_scale_round_trips_and_is_validated(tmp_path):
    processor = tiny_processor(image_scale="keep")
    processor.save_pretrained(tmp_path)
    assert DepthLMProcessor.from_pretrained(tmp_path).image_scale == "keep"
    assert tiny_processor().image_scale == "processor"
    with pytest.raises(ValueError, match="`image_scale` must be one of keep, processor, got 'shrink'"):
        tiny_processor(image_scale="shrink")


def test_plain_calls_keep_the_scale_of_training_rows():
    """As a trainer's `processing_class` (rows already unified), the processor keeps their scale too."""
    _, processor = tiny_llava_pixtral(longest_edge=1024, image_scale="keep")
    row = processor.training_row(_image(), [400.0, 400.0, 319.5, 239.5, 640, 480], [[320, 240]], 2.5)
    assert row["images"][0].size == (1200, 900)  # f* 750 / 400 px: a unified image wider than 1024
    prompt = processor.base_processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    batch = processor(images=[row["images"]], text=[prompt], return_tensors="pt")
    assert batch["image_sizes"].tolist() == [[900, 1200]]
    processor.image_scale = "processor"
    shrunk = processor(images=[row["images"]], text=[prompt], return_tensors="pt")
    assert shrunk["image_sizes"].tolist() == [[768, 1024]]


def test_keep_scale_pads_nested_images_once_and_is_idempotent():
    """Rows hold images per conversation; padding keeps the nesting, and padding padded images changes nothing
    (the GRPO trainer pads rows before TRL, and the processor's call pads again)."""
    processor = tiny_processor(image_scale="keep")
    small, exact = Image.new("RGB", (100, 70), "white"), Image.new("RGB", (56, 28), "white")
    padded, kwargs = keep_scale(processor, [[small], [exact, None]])
    assert [[i.size for i in padded[0]], [padded[1][0].size, padded[1][1]]] == [[(112, 84)], [(56, 28), None]]
    assert padded[1][0] is exact and np.asarray(padded[0][0])[70:, :].max() == 0  # black below, pixels unmoved
    again, _ = keep_scale(processor, padded)
    assert again[0][0].size == (112, 84) and np.array_equal(np.asarray(again[0][0]), np.asarray(padded[0][0]))
    assert kwargs == {}  # 112x84 and 56x28 lie inside the tiny processor's pixel limits
    processor.image_scale = "processor"
    assert keep_scale(processor, [[small]]) == ([[small]], {})
