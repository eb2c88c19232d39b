"""Named processor settings (the paper's and the official release's), the closed choices they pick from, and
which preset a checkpoint loads with."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, get_args

from transformers.utils import cached_file

from depthlm_hf.choices import check_choice
from depthlm_hf.geometry import FocalMode
from depthlm_hf.prompting.markers import MarkerStyle
from depthlm_hf.prompting.wrapped import stock_settings
from depthlm_hf.tasks import text as answers

logger = logging.getLogger(__name__)

PixelMap = Literal["exact", "release"]
"""Input pixel to model-image pixel: "exact" (the pixel's exact image, rounded) or "release" (the official
release's truncation, `geometry.release_map_points`)."""
PIXEL_MAPS: tuple[PixelMap, ...] = get_args(PixelMap)
ImageScale = Literal["keep", "processor"]
"""Whether the wrapped image processor keeps the unified scale ("keep") or applies its own limits ("processor")."""
IMAGE_SCALES: tuple[ImageScale, ...] = get_args(ImageScale)
PresetName = Literal["paper", "official_pixtral"]
"""The named processor settings: the keys of `PRESETS`."""
PRESET_NAMES: tuple[PresetName, ...] = get_args(PresetName)

PRESETS: dict[PresetName, dict[str, Any]] = {
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
assert tuple(PRESETS) == PRESET_NAMES, f"`PRESETS` {tuple(PRESETS)} must hold the `PresetName`s {PRESET_NAMES}."


def check_settings(focal_mode: str, pixel_map: str, image_scale: str) -> None:
    """Raise `ValueError` naming the setting when a closed choice is out of its set or two settings clash.

    >>> check_settings("fx", "release", "keep")
    """
    check_choice("focal_mode", focal_mode, FocalMode)
    check_choice("pixel_map", pixel_map, PixelMap)
    check_choice("image_scale", image_scale, ImageScale)
    if pixel_map == "release" and focal_mode != "fx":
        raise ValueError(
            f"`pixel_map` 'release' scales both axes by f*/fx: it needs `focal_mode` 'fx', not {focal_mode!r}."
        )


PRESET_HELP = (
    f"Processor preset for a checkpoint without saved DepthLM settings ({', '.join(PRESET_NAMES)}); unset: the saved "
    "settings, or official_pixtral for the official release's files, else an error."
)
"""The command-line help of a `preset` argument (`depthlm predict`, `depthlm predict_dataset`)."""

RELEASED_CHECKPOINTS: dict[str, str] = {"facebook/DepthLM": "official_pixtral"}
"""Hub ids of released DepthLM checkpoints whose folders hold no DepthLM settings, and the preset that
reproduces their inputs (facebook/DepthLM: the official release's Pixtral-12B). A copy elsewhere is recognised
by its files (`release_mismatches`)."""

RELEASE_VOCAB_SIZE = 131_072
"""Entries of Pixtral-12B's tekken tokenizer (`[IMG]` is id 10)."""


def _read_json(name_or_path: str, filename: str, revision: str | None) -> dict[str, Any] | None:
    path = cached_file(name_or_path, filename, revision=revision, _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(path).read_text()) if path else None


def _chat_template(name_or_path: str, revision: str | None) -> str:
    path = cached_file(
        name_or_path, "chat_template.jinja", revision=revision, _raise_exceptions_for_missing_entries=False
    )
    if path:
        return Path(path).read_text()
    for filename in ("chat_template.json", "tokenizer_config.json"):
        template = (_read_json(name_or_path, filename, revision) or {}).get("chat_template")
        if isinstance(template, str):
            return template
    return ""


def release_mismatches(name_or_path: str | os.PathLike, revision: str | None = None) -> list[str]:
    """How a checkpoint's files differ from the official release's (facebook/DepthLM); `[]` when they match.

    The release's signature, read from the files alone (no weights, nothing imported):
    `config.json` is a `llava` model with a `pixtral` vision tower, a 131,072-entry text vocabulary and image
    token 10; `tokenizer.json` is tekken-sized with `[IMG]` at id 10; the chat template is a Pixtral one
    (`[INST]`, `[/INST]`, `[IMG]`); the image settings (`preprocessor_config.json`, or inside `processor_config.json`
    as transformers 5 saves them) are a Pixtral image processor's with `do_resize` and `do_rescale` off, as the
    release's `train.py` saves them (a stock Pixtral-12B has both on).
    """
    name = str(name_or_path)
    config = _read_json(name, "config.json", revision) or {}
    text, vision = config.get("text_config") or {}, config.get("vision_config") or {}
    image_token = config.get("image_token_index", config.get("image_token_id"))
    found = []
    if config.get("model_type") != "llava" or vision.get("model_type") != "pixtral":
        found.append(f"config.json is {config.get('model_type')!r} / {vision.get('model_type')!r}, not llava / pixtral")
    if text.get("vocab_size") != RELEASE_VOCAB_SIZE or image_token != 10:
        found.append(f"config.json has vocab_size {text.get('vocab_size')} and image token {image_token}")
    tokenizer = _read_json(name, "tokenizer.json", revision) or {}
    added = {token.get("id"): token.get("content") for token in tokenizer.get("added_tokens", [])}
    size = max([*(tokenizer.get("model", {}).get("vocab") or {}).values(), *added, -1]) + 1
    if size != RELEASE_VOCAB_SIZE or added.get(10) != "[IMG]":
        found.append(f"tokenizer.json has {size} tokens and {added.get(10)!r} at id 10, not tekken's [IMG]")
    template = _chat_template(name, revision)
    if not all(mark in template for mark in ("[INST]", "[/INST]", "[IMG]")):
        found.append("the chat template is not a Pixtral one ([INST] ... [IMG] ... [/INST])")
    image = _read_json(name, "preprocessor_config.json", revision)
    if image is None:  # transformers 5 saves the image settings inside processor_config.json
        image = (_read_json(name, "processor_config.json", revision) or {}).get("image_processor") or {}
    kind = str(image.get("image_processor_type", ""))
    if not kind.startswith("Pixtral") or image.get("do_resize") is not False or image.get("do_rescale") is not False:
        found.append(
            f"preprocessor_config.json is {kind or None!r} with do_resize {image.get('do_resize')} and do_rescale "
            f"{image.get('do_rescale')}, not PixtralImageProcessor with both off"
        )
    return found


def saved_processor_config(name_or_path: str | os.PathLike, revision: str | None = None) -> dict[str, Any]:
    """The `processor_config.json` of a checkpoint folder or hub id (`{}` when it has none); never writes there."""
    return _read_json(str(name_or_path), "processor_config.json", revision) or {}


def checkpoint_preset(
    name_or_path: str | os.PathLike,
    saved: dict[str, Any],
    preset: str | None = None,
    revision: str | None = None,
    fallback: str | None = None,
) -> str | None:
    """The preset to load a checkpoint's processor with, or `None` to use the DepthLM settings saved in it.

    An explicit `preset` wins. A folder without DepthLM settings gets the preset of the released checkpoint it
    is (`RELEASED_CHECKPOINTS`, by hub id or hub-cache snapshot) or whose files it holds, wherever it lies
    (`release_mismatches`: facebook/DepthLM's config, tokenizer, chat template and image settings), else
    `fallback`; with no fallback it raises a `ValueError` that lists the presets, how to choose one and how the
    folder differs from the release.

    >>> checkpoint_preset("my/run", {"depthlm_processor_class": "DepthLMProcessor"}) is None
    True
    >>> checkpoint_preset("facebook/DepthLM", {}), checkpoint_preset("my/run", {}, preset="paper")
    ('official_pixtral', 'paper')
    """
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"Unknown `preset` {preset!r}. Available: {', '.join(PRESET_NAMES)}.")
        return preset
    if "depthlm_processor_class" in saved:
        return None
    name = str(name_or_path)
    for hub_id, released in RELEASED_CHECKPOINTS.items():  # the id, or its snapshot in the Hugging Face cache
        if name == hub_id or f"models--{hub_id.replace('/', '--')}" in Path(name).parts:
            return released
    differences = release_mismatches(name, revision)
    if not differences:
        logger.info("%s holds the official release's files (facebook/DepthLM): using 'official_pixtral'.", name)
        return "official_pixtral"
    if fallback is not None:
        logger.info("%s holds no DepthLM processor settings: using the %r preset.", name, fallback)
        return fallback
    raise ValueError(
        f"{name} holds no DepthLM processor settings and its files are not those of a released DepthLM checkpoint "
        f"({'; '.join(differences)}). Choose a preset: {', '.join(PRESETS)} "
        "(`DepthLMPredictor.from_pretrained(path, preset='paper')`, `--preset paper` for depthlm eval and predict, "
        "`--processor_preset paper` in training); 'official_pixtral' reproduces facebook/DepthLM's inputs, "
        "'paper' the paper's."
    )


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
    name = checkpoint_preset(name_or_path, saved, preset, revision)
    return {} if name is None else preset_settings(name, saved)
