"""depthlm_hf: metric depth and 3D from vision-language models (DepthLM, arXiv 2509.25413) on transformers and TRL.

The public surface is re-exported here and imported lazily, so `import depthlm_hf` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "CameraIntrinsics": "geometry",
    "MarkerStyle": "prompting.markers",
    "TASKS": "tasks.text",
    "format_answer": "tasks.text",
    "parse_answer": "tasks.text",
    "VisualPromptProcessor": "prompting.processing",
    "DepthLMProcessor": "prompting.processing",
    "PRESETS": "prompting.processing",
    "load_curated": "data",
    "CuratedDataset": "data",
    "InvalidRecordError": "data",
    "record_features": "data",
    "rgbd_to_record": "data",
    "TrainingView": "data",
    "GroupedTrainingView": "data",
    "GroupedMixtureView": "data",
    "TrainingViewConfig": "data",
    "EvaluationView": "data",
    "MixtureView": "data",
    "SyntheticDataset": "data.synthetic",
    "SceneConfig": "data.synthetic",
    "SCENE_PRESETS": "data.synthetic",
    "render_scene": "data.synthetic",
    "build_sample": "tasks.samples",
    "DepthLMPredictor": "inference.predictor",
    "DepthPrediction": "inference.decoding",
    "point_cloud": "inference.pointcloud",
    "PointCloud": "inference.pointcloud",
    "metric_path": "metrics",
    "depth_metrics": "metrics",
    "DepthLMScriptArguments": "training.configs",
    "DepthLMSFTConfig": "training.configs",
    "DepthLMGRPOConfig": "training.configs",
    "GRPO_SYSTEM_PROMPT": "training.configs",
    "get_reward": "training.rewards",
    "REWARDS": "training.rewards",
    "negative_l1": "training.rewards",
    "negative_l2": "training.rewards",
    "negative_absrel": "training.rewards",
    "delta1": "training.rewards",
    "format_reward": "training.rewards",
    "ModelCardInfo": "training.modelcard",
    "write_model_card": "training.modelcard",
    "update_model_card": "training.modelcard",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"depthlm_hf.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'depthlm_hf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
