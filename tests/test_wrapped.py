"""The wrapped VLM processor: a saved DepthLM folder holds everything stock transformers loaders read."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.prompting.wrapped import video_processor_entry


def test_saved_qwen_folder_holds_the_video_processor_entry(tiny_dir):
    """Stock `AutoProcessor` builds Qwen2.5-VL's video processor from this entry ("Can't load video processor")."""
    from transformers.video_processing_utils import BaseVideoProcessor

    config = json.loads((tiny_dir / "processor_config.json").read_text())
    video, image = config["video_processor"], config["image_processor"]
    assert config["processor_class"] == "Qwen2_5_VLProcessor"
    assert video["video_processor_type"] == "Qwen2VLVideoProcessor"
    for key in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std"):
        assert video[key] == image[key]
    # The dict stock AutoVideoProcessor reads from the folder (no torchvision needed to read it).
    assert BaseVideoProcessor.get_video_processor_dict(str(tiny_dir))[0] == video
    assert isinstance(DepthLMProcessor.from_pretrained(tiny_dir), DepthLMProcessor)


def test_llava_pixtral_folder_has_no_video_entry(tmp_path):
    from depthlm_hf.models.tiny import tiny_llava_pixtral

    tiny_llava_pixtral()[1].save_pretrained(tmp_path)
    assert "video_processor" not in json.loads((tmp_path / "processor_config.json").read_text())
    assert video_processor_entry("LlavaProcessor", {"image_processor_type": "PixtralImageProcessor"}) == {}
    assert video_processor_entry("Qwen2_5_VLProcessor", None) == {}


def test_stock_auto_processor_and_pipeline_load_the_folder(tiny_dir):
    """Where torchvision exists (users' GPU machines), stock loaders open the DepthLM folder as a Qwen2.5-VL one."""
    pytest.importorskip("torchvision")
    from transformers import AutoProcessor, Qwen2_5_VLProcessor, pipeline

    processor = AutoProcessor.from_pretrained(tiny_dir)
    assert isinstance(processor, Qwen2_5_VLProcessor) and processor.video_processor is not None
    generator = pipeline("image-text-to-text", model=str(tiny_dir))
    image = Image.fromarray(np.full((56, 56, 3), 90, np.uint8))
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Hi"}]}]
    out = generator(text=messages, max_new_tokens=2)
    assert isinstance(out[0]["generated_text"], (str, list))
