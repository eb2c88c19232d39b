"""Offline tiny models: a random Qwen2.5-VL / Llava-Pixtral with a tokenizer trained on the spot (demo, recipes)."""

from depthlm_hf.models.tiny import (
    tiny_llava_pixtral,
    tiny_processor,
    tiny_qwen2_5_vl,
    tiny_qwen2_5_vl_config,
    tiny_tokenizer,
)

__all__ = ["tiny_llava_pixtral", "tiny_processor", "tiny_qwen2_5_vl", "tiny_qwen2_5_vl_config", "tiny_tokenizer"]
