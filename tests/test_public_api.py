"""The public surface: every exported name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import depthlm_hf


def test_every_export_resolves():
    assert sorted(depthlm_hf.__all__) == sorted(depthlm_hf._EXPORTS)
    for name in depthlm_hf.__all__:
        assert getattr(depthlm_hf, name) is not None, name


def test_import_is_lazy():
    code = "import sys, depthlm_hf; print('transformers' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# The public names of the first release: each must keep importing from `depthlm_hf`.
RELEASED_NAMES = (
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
)


def test_released_names_still_import():
    missing = [name for name in RELEASED_NAMES if name not in depthlm_hf.__all__]
    assert not missing, missing
    for name in RELEASED_NAMES:
        assert getattr(depthlm_hf, name) is not None, name
