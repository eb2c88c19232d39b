"""Batched vision attention (depthlm_hf.models.vision_attention): same outputs and gradients as transformers'
per-window path, in fewer attention calls; enable / disable / context managers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import Qwen2_5_VLConfig
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

from depthlm_hf.models import vision_attention
from depthlm_hf.models.vision_attention import BatchedWindowAttention, window_plan

# The published Qwen2.5-VL vision tower's attention widths (3B and 7B share them), cut to one windowed block with
# a narrow MLP (the change does not touch the MLP; the full-attention blocks are covered on the tiny model).
REAL_VISION = {
    "depth": 1,
    "hidden_size": 1280,
    "intermediate_size": 64,
    "num_heads": 16,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [],
    "out_hidden_size": 2048,
    "in_chans": 3,
}


def _vision_tower(vision: dict, seed: int = 0) -> torch.nn.Module:
    config = Qwen2_5_VLConfig(vision_config=vision).vision_config
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return qwen.Qwen2_5_VisionTransformerPretrainedModel._from_config(config).eval()


def _features(tower: torch.nn.Module, pixels: torch.Tensor, grid: torch.Tensor, merged: bool = True) -> torch.Tensor:
    """The merged image features, or (`merged=False`) the last block's per-patch states; older transformers
    releases return the merged features as a plain tensor."""
    output = tower(pixels, grid_thw=grid)
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output if merged else output.last_hidden_state


def _count_sdpa(monkeypatch) -> list[int]:
    calls = [0]
    original = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    return calls


def test_window_plan_groups_equal_windows_and_drops_empty_ones():
    order, groups = window_plan((0, 64, 128, 160, 224, 256, 256))
    assert groups == ((64, 3), (32, 2))
    assert order == (*range(0, 128), *range(160, 224), *range(128, 160), *range(224, 256))
    assert window_plan((0, 10)) == (None, ((10, 1),))
    assert window_plan((0, 0)) == (None, ())


def test_module_equals_stock_on_irregular_windows_in_float64():
    config = Qwen2_5_VLConfig(vision_config={"hidden_size": 48, "num_heads": 3}).vision_config
    config._attn_implementation = "sdpa"
    torch.manual_seed(1)
    attention = qwen.Qwen2_5_VLVisionAttention(config).double()
    bounds = torch.tensor([0, 5, 9, 14, 16, 21, 25])  # lengths 5, 4, 5, 2, 5, 4: three groups
    hidden = torch.randn(25, 48, dtype=torch.float64)
    angles = torch.randn(25, 8, dtype=torch.float64).repeat(1, 2)
    kwargs = {"cu_seqlens": bounds, "position_embeddings": (angles.cos(), angles.sin())}
    stock = attention(hidden, **kwargs)
    with vision_attention.batched(attention):
        batched = attention(hidden, **kwargs)
    torch.testing.assert_close(batched, stock, rtol=0, atol=1e-12)


def test_tiny_model_logits_and_gradients_equal_the_stock_path(tiny, one_thread):
    model, processor = tiny
    model = copy.deepcopy(model).float().train()
    from PIL import Image

    image = Image.fromarray((torch.rand(168, 224, 3) * 255).to(torch.uint8).numpy())
    batch = processor.base_processor(
        images=[image, image.resize((140, 112))], text=["<|vision_start|><|image_pad|><|vision_end|> a"] * 2,
        padding=True, return_tensors="pt",
    )  # fmt: skip
    results = []
    for enabled in (False, True):
        (vision_attention.enable if enabled else vision_attention.disable)(model)
        model.zero_grad()
        logits = model(**batch).logits
        logits.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if "visual" in n and p.grad is not None}
        results.append((logits.detach(), grads))
    vision_attention.disable(model)
    assert results[1][1].keys() == results[0][1].keys() and len(results[0][1]) > 10
    assert (results[1][0] - results[0][0]).abs().max() < 1e-5
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_real_width_tower_at_real_image_size_equals_stock_in_fewer_calls(monkeypatch, one_thread):
    # 1148x868 px, the size of a unified iBims-1 image: 62x82 patches, 5084 tokens in 88 windows. Patch embedding
    # and merger are left out (identity) so that the block's per-patch outputs are compared, and the test is fast.
    tower = _vision_tower(REAL_VISION)
    tower.patch_embed, tower.merger = torch.nn.Identity(), torch.nn.Identity()
    grid = torch.tensor([[1, 62, 82]])
    torch.manual_seed(2)
    pixels = torch.randn(62 * 82, 1280)
    calls = _count_sdpa(monkeypatch)
    with torch.no_grad():
        stock = _features(tower, pixels, grid, merged=False)
        stock_calls = calls[0]
        with vision_attention.batched(tower):
            batched = _features(tower, pixels, grid, merged=False)
    batched_calls = calls[0] - stock_calls
    assert not vision_attention.is_enabled(tower)
    assert stock.shape == (62 * 82, 1280) and stock.abs().mean() > 0.1
    assert (batched - stock).abs().max() < 1e-5
    assert stock_calls == 8 * 11  # ceil(31 / 4) x ceil(41 / 4) windows of 4x4 merged patches
    assert batched_calls == 4  # full, right edge, bottom edge and corner windows


def test_several_images_of_different_sizes(one_thread):
    tower = _vision_tower({**REAL_VISION, "hidden_size": 64, "num_heads": 4, "intermediate_size": 96})
    grid = torch.tensor([[1, 12, 16], [1, 20, 8], [1, 12, 16]])
    pixels = torch.randn(int(grid.prod(-1).sum()), 3 * 2 * 14 * 14)
    with torch.no_grad():
        stock = _features(tower, pixels, grid)
        with vision_attention.batched(tower):
            batched = _features(tower, pixels, grid)
    assert (batched - stock).abs().max() < 1e-6


def test_enable_disable_and_context_managers(tiny):
    model = copy.deepcopy(tiny[0])
    depth = model.config.vision_config.depth
    vision_attention.disable(model)  # the shared model may have been through a predictor, which enables it
    assert not vision_attention.is_enabled(model)
    assert vision_attention.enable(model) == depth and vision_attention.enable(model) == 0
    assert vision_attention.is_enabled(model)
    assert all(isinstance(b.attn, qwen.Qwen2_5_VLVisionAttention) for b in model.model.visual.blocks)
    with vision_attention.stock(model):
        assert not any(isinstance(b.attn, BatchedWindowAttention) for b in model.model.visual.blocks)
    assert vision_attention.is_enabled(model)
    assert vision_attention.disable(model) == depth and not vision_attention.is_enabled(model)
    assert set(model.state_dict()) == set(tiny[0].state_dict())


def test_enable_leaves_models_without_qwen_vision_alone_and_checks_type():
    assert vision_attention.enable(torch.nn.Linear(2, 2)) == 0
    assert not vision_attention.is_enabled(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="`model`"):
        vision_attention.enable("model")


def test_predictor_runs_batched_and_answers_as_the_stock_path(tiny, one_thread):
    from PIL import Image

    from depthlm_hf.inference.predictor import DepthLMPredictor

    model, processor = tiny
    predictor = DepthLMPredictor(copy.deepcopy(model), processor, batch_size=4, show_progress=False)
    assert vision_attention.is_enabled(predictor.model)
    image = Image.fromarray((torch.rand(168, 224, 3, generator=torch.Generator().manual_seed(3)) * 255).byte().numpy())
    camera, points = [1000.0, 1000.0, 111.5, 83.5, 224, 168], [[40, 30], [120, 90], [200, 150]]
    batched = predictor.predict(image, camera, points)
    with vision_attention.stock(predictor.model):
        stock = predictor.predict(image, camera, points)
    assert batched.texts == stock.texts
    np.testing.assert_allclose(batched.confidence, stock.confidence, rtol=1e-5)


def test_layouts_first_seen_in_inference_mode_serve_training(one_thread):
    tower = _vision_tower({**REAL_VISION, "hidden_size": 32, "num_heads": 2, "intermediate_size": 32}).train()
    grid = torch.tensor([[1, 14, 22]])  # a layout no other test uses, so its index tensors are made here
    pixels = torch.randn(14 * 22, 3 * 2 * 14 * 14)
    vision_attention.enable(tower)
    with torch.inference_mode():
        _features(tower, pixels, grid)
    _features(tower, pixels, grid).square().mean().backward()
    assert tower.blocks[0].attn.qkv.weight.grad is not None
