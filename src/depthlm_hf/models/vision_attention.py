"""One attention call per vision block for Qwen2.5-VL's windowed vision attention (exact, switchable).

With `attn_implementation="sdpa"` (or "eager"), transformers runs each vision block's attention as one
call per window: ~2,500 small calls for a 1148x868 image, each paying ~30 us of host time, which on a
GPU costs more than the attention's arithmetic. The windows of a block come in a few lengths only
(full 8x8-patch windows, the shorter ones at the right and bottom edges, and one window per image in
the full-attention blocks), so :class:`BatchedWindowAttention` reorders the tokens once so that the
windows of each length form one (windows, length) batch, makes one `scaled_dot_product_attention` call
per length, and puts the tokens back after the output projection. Each window still attends only to
itself, with the same arithmetic, so outputs match the stock path to float rounding (~1e-6 in fp32).
Flash-attention implementations already run one variable-length call per block and keep the stock code.

    >>> from depthlm_hf.models import vision_attention
    >>> vision_attention.enable(model)  # doctest: +SKIP
    32
    >>> with vision_attention.stock(model):  # doctest: +SKIP
    ...     reference = model(**inputs)

`enable` swaps the class of every `Qwen2_5_VLVisionAttention` module in place (weights, hooks and
adapters untouched; `isinstance` still holds); `disable` swaps it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from itertools import pairwise
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

VisionAttention = Literal["batched", "stock"]
"""Qwen2.5-VL's vision attention: "batched" (one call per window length and block, :func:`enable`) or "stock"
(transformers' call per window, :func:`disable`)."""
VISION_ATTENTIONS: tuple[VisionAttention, ...] = get_args(VisionAttention)

BATCHED_IMPLEMENTATIONS = ("sdpa", "eager")
"""Attention implementations that the batched path replaces (the others keep transformers' own code)."""


@lru_cache(maxsize=16)
def window_plan(bounds: tuple[int, ...]) -> tuple[tuple[int, ...] | None, tuple[tuple[int, int], ...]]:
    """Token order that puts windows of equal length next to each other, and the `(length, count)` groups.

    `bounds` are the cumulative window bounds `(0, b1, ..., S)` [tokens]; empty windows are dropped.
    The order is None when the windows already come grouped (a single image's full-attention block, or
    equal windows tiling the sequence); groups come in order of their first window.

    >>> window_plan((0, 4, 6, 10, 12, 12))
    ((0, 1, 2, 3, 6, 7, 8, 9, 4, 5, 10, 11), ((4, 2), (2, 2)))
    >>> window_plan((0, 4, 8))
    (None, ((4, 2),))
    """
    windows: dict[int, list[int]] = {}
    for start, end in pairwise(bounds):
        if end > start:
            windows.setdefault(end - start, []).append(start)
    groups = tuple((length, len(starts)) for length, starts in windows.items())
    order = tuple(
        token for length, starts in windows.items() for start in starts for token in range(start, start + length)
    )
    return (None if order == tuple(range(len(order))) else order), groups


_ORDERS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _order_tensors(bounds: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`window_plan(bounds)`'s token order and its inverse as index tensors on `device`, made once per layout
    (the blocks of a forward pass share one layout; a host-to-device copy per block would stall the GPU)."""
    key = (bounds, str(device))
    if key not in _ORDERS:
        if len(_ORDERS) >= 16:
            _ORDERS.clear()
        # Normal tensors even under `inference_mode`: a later training step indexes with them (autograd).
        with torch.inference_mode(False):
            forward = torch.tensor(window_plan(bounds)[0], device=device)
            _ORDERS[key] = (forward, torch.argsort(forward))
    return _ORDERS[key]


class BatchedWindowAttention(qwen.Qwen2_5_VLVisionAttention):
    """`Qwen2_5_VLVisionAttention` whose windows of equal length share one SDPA call (see module docstring)."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """(S, C) hidden states of the windows of all images -> (S, C); the stock signature.

        Tokens are reordered once so that each group of equal windows is one contiguous (count, length)
        batch, and put back after the output projection (both per-token maps, so the order does not matter).
        """
        if self.config._attn_implementation not in BATCHED_IMPLEMENTATIONS or position_embeddings is None:
            return super().forward(hidden_states, cu_seqlens, position_embeddings=position_embeddings, **kwargs)
        bounds = tuple(cu_seqlens.tolist())
        order, groups = window_plan(bounds)
        cos, sin = position_embeddings
        if order is not None:
            forward, inverse = _order_tensors(bounds, hidden_states.device)
            hidden_states, cos, sin = (t.index_select(0, forward) for t in (hidden_states, cos, sin))
        seq_len = hidden_states.shape[0]
        qkv = self.qkv(hidden_states).reshape(seq_len, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        query, key = qwen.apply_rotary_pos_emb_vision(qkv[0], qkv[1], cos, sin)
        outputs, start = [], 0
        for length, count in groups:
            q, k, v = (
                t[start : start + length * count].reshape(count, length, *t.shape[1:]).transpose(1, 2)
                for t in (query, key, qkv[2])
            )
            attended = F.scaled_dot_product_attention(q, k, v, scale=self.scaling)
            outputs.append(attended.transpose(1, 2).reshape(length * count, -1))
            start += length * count
        output = self.proj(torch.cat(outputs) if len(outputs) > 1 else outputs[0])
        return output if order is None else output.index_select(0, inverse)


def _attention_modules(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    for module in model.modules():
        if isinstance(module, qwen.Qwen2_5_VLVisionAttention):
            yield module


def enable(model: torch.nn.Module) -> int:
    """Give every Qwen2.5-VL vision attention of `model` the batched path; returns how many modules changed.

    Works on wrapped models too (PEFT, DeepSpeed engines: any `nn.Module` holding the vision tower).
    A model without Qwen2.5-VL vision attention is left as it is (returns 0).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    changed = 0
    for module in _attention_modules(model):
        if not isinstance(module, BatchedWindowAttention):
            module.__class__ = BatchedWindowAttention
            changed += 1
    return changed


def disable(model: torch.nn.Module) -> int:
    """Restore transformers' own vision attention in `model`; returns how many modules changed."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    changed = 0
    for module in _attention_modules(model):
        if isinstance(module, BatchedWindowAttention):
            module.__class__ = qwen.Qwen2_5_VLVisionAttention
            changed += 1
    return changed


def is_enabled(model: torch.nn.Module) -> bool:
    """Whether `model` has Qwen2.5-VL vision attention and all of it takes the batched path."""
    modules = list(_attention_modules(model))
    return bool(modules) and all(isinstance(m, BatchedWindowAttention) for m in modules)


@contextmanager
def batched(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run the block with the batched path enabled, then restore each module's previous class."""
    before = [(m, type(m)) for m in _attention_modules(model)]
    enable(model)
    try:
        yield model
    finally:
        for module, cls in before:
            module.__class__ = cls


@contextmanager
def stock(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run the block with transformers' own vision attention, then restore each module's previous class."""
    before = [(m, type(m)) for m in _attention_modules(model)]
    disable(model)
    try:
        yield model
    finally:
        for module, cls in before:
            module.__class__ = cls
