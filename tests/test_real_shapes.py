"""Real architectures at real unified image sizes, on CPU: Qwen2.5-VL-3B and Pixtral-12B shapes with random weights.

The configs are the published ones (Qwen/Qwen2.5-VL-3B-Instruct and mistral-community/pixtral-12b config.json:
hidden sizes, attention and key/value heads, head dims, rope and mrope sections, patch, merge and window sizes,
projector), cut to one layer per tower and with narrow MLPs (`intermediate_size`, which no shape logic reads)
so that a step runs in seconds; the vocabulary is the tiny tokenizer's (the real tokenizers are tested in
test_real_tokenizer.py). Weights are bf16 (CPU bf16 matmuls are about twice as fast as float32 here).
Each model: processor at the real unified size, predictor (forward + generate), one TRL SFT step, save, reload.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    Qwen2_5_VLForConditionalGeneration,
)
from trl import SFTConfig, SFTTrainer

from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.models.tiny import qwen2_5_vl_config, tiny_llava_pixtral, tiny_processor
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.training.trainers import AnswerOnlyCollator

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

IBIMS = [559.62, 558.14, 361.87, 241.99, 640, 480]
NARROW_MLP = 64

QWEN2_5_VL_3B_TEXT = {
    "hidden_size": 2048,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
    "tie_word_embeddings": True,
}
QWEN2_5_VL_3B_VISION = {
    "hidden_size": 1280,
    "num_heads": 16,
    "out_hidden_size": 2048,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "window_size": 112,
    "tokens_per_second": 2,
    "in_chans": 3,
}
PIXTRAL_12B_TEXT = {
    "model_type": "mistral",
    "hidden_size": 5120,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 1024000,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000_000.0},
    "sliding_window": None,
    "tie_word_embeddings": False,
}
PIXTRAL_12B_VISION = {
    "model_type": "pixtral",
    "hidden_size": 1024,
    "num_attention_heads": 16,
    "head_dim": 64,
    "patch_size": 16,
    "image_size": 1024,
    "num_channels": 3,
    "hidden_act": "silu",
    "rope_parameters": {"rope_type": "axial", "rope_theta": 10000.0},
}


def _image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))


def qwen_3b(tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    text = {
        **QWEN2_5_VL_3B_TEXT,
        "vocab_size": len(tokenizer),
        "num_hidden_layers": 1,
        "intermediate_size": NARROW_MLP,
    }
    # Two vision blocks: one windowed (112 px windows), one full-attention, as the published model alternates.
    vision = {**QWEN2_5_VL_3B_VISION, "depth": 2, "intermediate_size": NARROW_MLP, "fullatt_block_indexes": [1]}
    config = qwen2_5_vl_config(tokenizer, text, vision)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    return model.eval()


def pixtral_12b(tokenizer) -> LlavaForConditionalGeneration:
    pad, eos = tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = LlavaConfig(
        text_config={
            **PIXTRAL_12B_TEXT,
            "vocab_size": len(tokenizer),
            "num_hidden_layers": 1,
            "intermediate_size": NARROW_MLP,
            "pad_token_id": pad,
            "eos_token_id": eos,
        },
        vision_config={**PIXTRAL_12B_VISION, "num_hidden_layers": 1, "intermediate_size": NARROW_MLP},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        multimodal_projector_bias=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = pad, eos
    return model.eval()


def _run(model, processor: DepthLMProcessor, size_key: str, size: list, tokens: int, image_token: str, tmp_path):
    # 1. processor: the unified image reaches the model at its unified size, with the published token count.
    batch = processor(images=_image(), intrinsics=IBIMS, points=[[519, 129]], force_answer_prefix=True)
    assert batch[size_key].tolist() == [size]
    assert (batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids(image_token)).sum().item() == tokens

    # 2. predictor: forward and generate at that size.
    predictor = DepthLMPredictor(model, processor, max_new_tokens=2, show_progress=False)
    out = predictor.predict(_image(), IBIMS, [[519, 129]])
    assert len(out) == 1 and len(out.texts[0]) > 0

    # 3. one TRL SFT step on a real-size training row: a finite loss is logged and the weights move.
    row = processor.training_row(_image(), IBIMS, [[519, 129]], 2.5)
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=1,
        learning_rate=1e-3,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        remove_unused_columns=False,
        max_length=None,
        dataloader_num_workers=0,
    )
    before = {name: p.detach().clone() for name, p in model.named_parameters() if "lm_head" in name or "proj" in name}
    collator = AnswerOnlyCollator(processor=processor, max_length=None, completion_only_loss=True)
    dataset = Dataset.from_list([row])
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=processor, data_collator=collator
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 1 and np.isfinite(losses[0])
    assert any(not torch.equal(p, dict(model.named_parameters())[name].detach()) for name, p in before.items())

    # 4. save and reload: same weights, same settings, same model inputs.
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    reloaded = DepthLMPredictor.from_pretrained(folder, dtype=torch.bfloat16, show_progress=False, max_new_tokens=2)
    for name, param in model.named_parameters():
        torch.testing.assert_close(dict(reloaded.model.named_parameters())[name], param.detach(), msg=name)
    assert reloaded.processor.to_dict() == processor.to_dict()
    again = reloaded.processor(images=_image(), intrinsics=IBIMS, points=[[519, 129]], force_answer_prefix=True)
    assert torch.equal(again["input_ids"], batch["input_ids"])
    assert torch.equal(again["pixel_values"], batch["pixel_values"])


def test_qwen2_5_vl_3b_shapes(tmp_path):
    """Paper preset: 1143x859 unified, rounded to 1148x868 by the Qwen processor (its published pixel limits)."""
    processor = tiny_processor(min_pixels=3136, max_pixels=12_845_056, image_scale="keep")
    model = qwen_3b(processor.tokenizer)
    _run(model, processor, "image_grid_thw", [1, 62, 82], 62 * 82 // 4, "<|image_pad|>", tmp_path)


def test_pixtral_12b_shapes(tmp_path):
    """Official preset: the release's 857x643 image (stock Pixtral settings would make it 864x656), 40 x 53 tokens."""
    _, processor = tiny_llava_pixtral(longest_edge=1024, image_scale="keep")
    model = pixtral_12b(processor.tokenizer)
    _run(model, processor, "image_sizes", [643, 857], 40 * 53, "<image>", tmp_path)
