"""One attention call per vision block for Qwen2.5-VL's windowed vision attention (exact, switchable).

With `attn_implementation="sdpa"` (or "eager"), transformers runs each vision block's attention as one
call per window: ~2,500 small calls for a 1148x868 image, each paying ~30 us of host time, which on a
GPU costs more than the attention's arithmetic. The windows of a block come in a few lengths only
(full 8x8-patch windows, the shorter ones at the right and bottom edges, and one window per image in
the full-attention blocks), so :class:`BatchedWindowAttention` gathers the windows of each length into
one batched `scaled_dot_product_attention` call: each window still attends only to itself, with the
same arithmetic, so outputs match the stock path to float rounding (max |diff| ~1e-6 in fp32).
Flash-attention implementations already run one variable-length call per block and keep the stock code.

    >>> from depthlm_hf.inference import vision_attention
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

import torch
import torch.nn.functional as F
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

BATCHED_IMPLEMENTATIONS = ("sdpa", "eager")
"""Attention implementations that the batched path replaces (the others keep transformers' own code)."""


@lru_cache(maxsize=16)
def window_groups(bounds: tuple[int, ...]) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """Windows grouped by length: `((length, starts), ...)` from cumulative bounds `(0, b1, ..., S)` [tokens].

    Empty windows are dropped; groups come in order of their first window.

    >>> window_groups((0, 64, 128, 160, 224, 256, 256))
    ((64, (0, 64, 160)), (32, (128, 224)))
    """
    groups: dict[int, list[int]] = {}
    for start, end in pairwise(bounds):
        if end > start:
            groups.setdefault(end - start, []).append(start)
    return tuple((length, tuple(starts)) for length, starts in groups.items())


def windowed_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor, scale: float
) -> torch.Tensor:
    """Attention of each window to itself, one batched SDPA call per window length.

    Args:
        query, key, value: (S, H, D) tokens of all windows, window after window.
        cu_seqlens: (W + 1,) int, cumulative window bounds `[0, ..., S]` [tokens].
        scale: the softmax scale (1 / sqrt(D) in Qwen2.5-VL).

    Returns:
        (S, H, D): each token's attention output over the tokens of its own window.
    """
    seq_len = query.shape[0]
    groups = window_groups(tuple(int(b) for b in cu_seqlens.tolist()))
    if len(groups) == 1 and groups[0][1] == tuple(range(0, seq_len, groups[0][0])):
        length = groups[0][0]  # equal windows tiling the sequence: a view, no gather
        q, k, v = (t.reshape(-1, length, *t.shape[1:]).transpose(1, 2) for t in (query, key, value))
        return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).reshape(query.shape)
    outputs, order = [], []
    for length, starts in groups:
        index = (torch.tensor(starts, device=query.device)[:, None] + torch.arange(length, device=query.device)).ravel()
        q, k, v = (t[index].reshape(len(starts), length, *t.shape[1:]).transpose(1, 2) for t in (query, key, value))
        outputs.append(
            F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).reshape(-1, *query.shape[1:])
        )
        order.append(index)
    return torch.cat(outputs)[torch.argsort(torch.cat(order))]


class BatchedWindowAttention(qwen.Qwen2_5_VLVisionAttention):
    """`Qwen2_5_VLVisionAttention` whose windows of equal length share one SDPA call (see module docstring)."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """(S, C) hidden states of the windows of all images -> (S, C); the stock signature."""
        if self.config._attn_implementation not in BATCHED_IMPLEMENTATIONS or position_embeddings is None:
            return super().forward(hidden_states, cu_seqlens, position_embeddings=position_embeddings, **kwargs)
        seq_len = hidden_states.shape[0]
        query, key, value = (
            self.qkv(hidden_states).reshape(seq_len, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        )
        query, key = qwen.apply_rotary_pos_emb_vision(query, key, *position_embeddings)
        output = windowed_attention(query, key, value, cu_seqlens, self.scaling)
        return self.proj(output.reshape(seq_len, -1))


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
