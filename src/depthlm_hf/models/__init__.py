"""Model code: the VLM family registry, offline tiny models of every registered family, and model patches.

Names are imported lazily, so that `depthlm_hf.models.families` (read by the processor) loads without the
tiny-model factories (which build processors).
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES_BY_MODULE = {
    "families": ("FAMILIES", "get_family", "scale_rule"),
    "tiny_families": ("tiny_vlm",),
    "tiny": ("tiny_llava_pixtral", "tiny_processor", "tiny_qwen2_5_vl", "tiny_qwen2_5_vl_config", "tiny_tokenizer"),
}
__all__ = sorted(name for names in _NAMES_BY_MODULE.values() for name in names)


def __getattr__(name: str) -> Any:
    module = next((module for module, names in _NAMES_BY_MODULE.items() if name in names), None)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
