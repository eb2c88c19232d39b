"""depthlm_hf: metric depth and 3D from vision-language models (DepthLM, arXiv 2509.25413) on transformers and TRL.

The public surface is re-exported here and imported lazily, so `import depthlm_hf` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "CameraIntrinsics": "geometry",
    "MarkerStyle": "markers",
    "TASKS": "answers",
    "format_answer": "answers",
    "parse_answer": "answers",
    "VisualPromptProcessor": "processing",
    "DepthLMProcessor": "processing",
    "PRESETS": "processing",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .answers import TASKS, format_answer, parse_answer
    from .geometry import CameraIntrinsics
    from .markers import MarkerStyle
    from .processing import PRESETS, DepthLMProcessor, VisualPromptProcessor


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'depthlm_hf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
