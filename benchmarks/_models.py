"""The published Qwen2.5-VL-3B/7B architectures with random weights (no download), for the GPU benchmarks.

`shrink=True` keeps the structure (window attention, full-attention blocks, mrope, tied head) at 2 layers of
width 64, so that a CPU dry run goes through the same code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}
"""Dense bf16 peak of the accelerator [FLOP/s], matched by name."""

TEXT_CONFIGS = {
    "qwen2.5-vl-3b": {
        "hidden_size": 2048,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "intermediate_size": 11008,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "qwen2.5-vl-7b": {
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
}
VISION_CONFIG = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
    "in_chans": 3,
}
SHRUNK_TEXT = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
SHRUNK_VISION = {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4, "fullatt_block_indexes": [1]}


def real_config(name: str, tokenizer, shrink: bool = False) -> Qwen2_5_VLConfig:
    """The published architecture `name`, with special-token ids taken from `tokenizer` (`shrink`: see above)."""
    from depthlm_hf.models.tiny import qwen2_5_vl_config

    text = {**TEXT_CONFIGS[name], **(SHRUNK_TEXT | {"intermediate_size": 128} if shrink else {})}
    if shrink:
        text["vocab_size"] = len(tokenizer)
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    mrope = [16, 24, 24] if head_dim == 128 else [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]
    text_config = {
        **text,
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope},
    }
    vision_config = {**VISION_CONFIG, **(SHRUNK_VISION if shrink else {}), "out_hidden_size": text["hidden_size"]}
    return qwen2_5_vl_config(tokenizer, text_config, vision_config, text["tie_word_embeddings"])


def save_random_model(name: str, folder: Path, dtype: torch.dtype, shrink: bool = False, focal: float = 1000.0):
    """Random weights of architecture `name` + a DepthLMProcessor (real-size image settings), saved to `folder`."""
    from depthlm_hf.models.tiny import tiny_processor

    processor = tiny_processor(min_pixels=3136, max_pixels=12845056, unified_focal_length=focal)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2_5_VLForConditionalGeneration(real_config(name, processor.tokenizer, shrink)).to(dtype)
    model.generation_config.pad_token_id = model.config.text_config.pad_token_id
    model.generation_config.eos_token_id = model.config.text_config.eos_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model


def parameter_counts(model) -> dict[str, int]:
    """Parameters of the vision tower, the text transformer body, and the output projection (lm_head)."""
    vision = sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    untied_head = 0 if head is embed else head.numel()
    return {"vision": vision, "text_body": total - vision - embed.numel() - untied_head, "lm_head": head.numel()}
