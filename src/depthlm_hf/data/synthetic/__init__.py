"""Procedural scenes with exact depth: a vectorised numpy ray caster and random indoor/outdoor layouts."""

from depthlm_hf.data.synthetic.scenes import SCENE_PRESETS, SceneConfig, SyntheticDataset, render_pair, render_scene

__all__ = ["SCENE_PRESETS", "SceneConfig", "SyntheticDataset", "render_pair", "render_scene"]
