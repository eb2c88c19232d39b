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
    "load_curated": "data",
    "CuratedDataset": "data",
    "InvalidRecordError": "data",
    "record_features": "data",
    "rgbd_to_record": "data",
    "TrainingView": "data",
    "TrainingViewConfig": "data",
    "EvaluationView": "data",
    "MixtureView": "data",
    "SyntheticDataset": "synthetic",
    "SceneConfig": "synthetic",
    "SCENE_PRESETS": "synthetic",
    "render_scene": "synthetic",
    "build_sample": "tasks",
    "DepthLMPredictor": "inference",
    "DepthPrediction": "inference",
    "point_cloud": "pointcloud",
    "PointCloud": "pointcloud",
    "metric_path": "metrics",
    "depth_metrics": "metrics",
    "DepthLMScriptArguments": "configs",
    "DepthLMSFTConfig": "configs",
    "DepthLMGRPOConfig": "configs",
    "GRPO_SYSTEM_PROMPT": "configs",
    "get_reward": "rewards",
    "REWARDS": "rewards",
    "negative_l1": "rewards",
    "negative_l2": "rewards",
    "negative_absrel": "rewards",
    "delta1": "rewards",
    "format_reward": "rewards",
    "ModelCardInfo": "modelcard",
    "write_model_card": "modelcard",
    "update_model_card": "modelcard",
}

__all__ = [
    "CameraIntrinsics",
    "CuratedDataset",
    "DepthLMGRPOConfig",
    "DepthLMPredictor",
    "DepthLMProcessor",
    "DepthLMSFTConfig",
    "DepthLMScriptArguments",
    "DepthPrediction",
    "EvaluationView",
    "GRPO_SYSTEM_PROMPT",
    "InvalidRecordError",
    "MarkerStyle",
    "MixtureView",
    "ModelCardInfo",
    "PRESETS",
    "PointCloud",
    "REWARDS",
    "SCENE_PRESETS",
    "SceneConfig",
    "SyntheticDataset",
    "TASKS",
    "TrainingView",
    "TrainingViewConfig",
    "VisualPromptProcessor",
    "build_sample",
    "delta1",
    "depth_metrics",
    "format_answer",
    "format_reward",
    "get_reward",
    "load_curated",
    "metric_path",
    "negative_absrel",
    "negative_l1",
    "negative_l2",
    "parse_answer",
    "point_cloud",
    "record_features",
    "render_scene",
    "rgbd_to_record",
    "update_model_card",
    "write_model_card",
]

if TYPE_CHECKING:
    from .answers import TASKS, format_answer, parse_answer
    from .configs import GRPO_SYSTEM_PROMPT, DepthLMGRPOConfig, DepthLMScriptArguments, DepthLMSFTConfig
    from .data import (
        CuratedDataset,
        EvaluationView,
        InvalidRecordError,
        MixtureView,
        TrainingView,
        TrainingViewConfig,
        load_curated,
        record_features,
        rgbd_to_record,
    )
    from .geometry import CameraIntrinsics
    from .inference import DepthLMPredictor, DepthPrediction
    from .markers import MarkerStyle
    from .metrics import depth_metrics, metric_path
    from .modelcard import ModelCardInfo, update_model_card, write_model_card
    from .pointcloud import PointCloud, point_cloud
    from .processing import PRESETS, DepthLMProcessor, VisualPromptProcessor
    from .rewards import REWARDS, delta1, format_reward, get_reward, negative_absrel, negative_l1, negative_l2
    from .synthetic import SCENE_PRESETS, SceneConfig, SyntheticDataset, render_scene
    from .tasks import build_sample


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'depthlm_hf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
