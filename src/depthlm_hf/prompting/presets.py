"""Named processor settings (the paper's and the official release's), the closed choices they pick from, and
which preset a checkpoint loads with."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from transformers.utils import cached_file

from depthlm_hf.prompting.markers import MarkerStyle
from depthlm_hf.prompting.wrapped import stock_settings
from depthlm_hf.tasks import text as answers

logger = logging.getLogger(__name__)

PixelMap = Literal["exact", "release"]
PIXEL_MAPS: tuple[str, ...] = ("exact", "release")
ImageScale = Literal["keep", "processor"]
IMAGE_SCALES: tuple[str, ...] = ("keep", "processor")

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "unified_focal_length": 1000.0,
        "focal_mode": "xy",
        "pixel_map": "exact",
        "marker": MarkerStyle().to_dict(),
        "question_template": None,
        "answer_template": None,
        "system_prompt": None,
    },
    "official_pixtral": {
        "base_processor_class": "PixtralProcessor",
        "unified_focal_length": 750.0,
        "focal_mode": "fx",
        "pixel_map": "release",
        "marker": MarkerStyle(shape="official_arrow").to_dict(),
        "question_template": answers.OFFICIAL_QUESTION,
        "answer_template": answers.OFFICIAL_ANSWER,
        "system_prompt": None,
    },
}
"""Named settings. "paper": the paper's inputs with exact geometry (f* = 1000 px, red arrow, its sentences).
"official_pixtral": the official release's Pixtral-12B checkpoint, bit for bit (f* = 750 px scaled by fx only,
the release's size truncation, pixel truncation and arrow, its think/answer prompt and tags); docs/official.md
lists every difference."""


def check_settings(focal_mode: str, pixel_map: str, image_scale: str) -> None:
    """Raise `ValueError` naming the setting when a closed choice is out of its set or two settings clash.

    >>> check_settings("fx", "release", "keep")
    """
    for name, value, allowed in (
        ("focal_mode", focal_mode, ("xy", "fx")),
        ("pixel_map", pixel_map, PIXEL_MAPS),
        ("image_scale", image_scale, IMAGE_SCALES),
    ):
        if value not in allowed:
            raise ValueError(f"`{name}` must be one of {', '.join(allowed)}, got {value!r}.")
    if pixel_map == "release" and focal_mode != "fx":
        raise ValueError(
            f"`pixel_map` 'release' scales both axes by f*/fx: it needs `focal_mode` 'fx', not {focal_mode!r}."
        )


RELEASED_CHECKPOINTS: dict[str, str] = {"facebook/DepthLM": "official_pixtral"}
"""Hub ids of released DepthLM checkpoints whose folders hold no DepthLM settings, and the preset that
reproduces their inputs (facebook/DepthLM: the official release's Pixtral-12B)."""


def saved_processor_config(name_or_path: str | os.PathLike, revision: str | None = None) -> dict[str, Any]:
    """The `processor_config.json` of a checkpoint folder or hub id (`{}` when it has none); never writes there."""
    path = cached_file(
        str(name_or_path), "processor_config.json", revision=revision, _raise_exceptions_for_missing_entries=False
    )
    return json.loads(Path(path).read_text()) if path else {}


def checkpoint_preset(name_or_path: str | os.PathLike, saved: dict[str, Any], preset: str | None = None) -> str | None:
    """The preset to load a checkpoint's processor with, or `None` to use the DepthLM settings saved in it.

    An explicit `preset` wins. A folder without DepthLM settings gets the preset of its released checkpoint
    (`RELEASED_CHECKPOINTS`, by hub id or hub-cache snapshot path), else "paper"; which one is logged.

    >>> checkpoint_preset("facebook/DepthLM", {})
    'official_pixtral'
    >>> checkpoint_preset("my/run", {"depthlm_processor_class": "DepthLMProcessor"}) is None
    True
    """
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"Unknown `preset` {preset!r}. Available: {', '.join(PRESETS)}.")
        return preset
    if "depthlm_processor_class" in saved:
        return None
    name = str(name_or_path)
    for hub_id, released in RELEASED_CHECKPOINTS.items():
        if name == hub_id or f"models--{hub_id.replace('/', '--')}" in Path(name).parts:
            logger.info("%s is the released checkpoint %s: using the %r preset.", name, hub_id, released)
            return released
    logger.warning(
        "%s holds no DepthLM processor settings: using the 'paper' preset (f* = 1000 px). Pass `preset=` to choose "
        "another (a copy of facebook/DepthLM needs preset='official_pixtral').",
        name,
    )
    return "paper"


def preset_settings(name: str, saved: dict[str, Any]) -> dict[str, Any]:
    """The settings of preset `name` for a checkpoint whose `processor_config.json` is `saved`.

    The processor wraps the checkpoint's own processor class (`processor_class`; else the preset's, else
    Qwen2.5-VL's) and keeps that class's settings saved at the top level (Llava's `patch_size`, ...).
    """
    settings = {**PRESETS[name], "preset": name}
    default = settings.get("base_processor_class", "Qwen2_5_VLProcessor")
    settings["base_processor_class"] = saved.get("processor_class", default)
    settings["base_processor_kwargs"] = stock_settings(settings["base_processor_class"], saved) if saved else {}
    return settings


def checkpoint_settings(
    name_or_path: str | os.PathLike, preset: str | None = None, revision: str | None = None
) -> dict:
    """Keyword settings for `DepthLMProcessor.from_pretrained(name_or_path, ...)`: `{}` keeps the saved DepthLM
    settings, else those of `checkpoint_preset` (see `preset_settings`)."""
    saved = saved_processor_config(name_or_path, revision)
    name = checkpoint_preset(name_or_path, saved, preset)
    return {} if name is None else preset_settings(name, saved)
