"""Closed choices: one `Literal` per concept, its tuple derived with `get_args`, values checked against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import pytest

from depthlm_hf.choices import check_choice, check_dataclass_choices, literal_of
from depthlm_hf.data.curated import OnError
from depthlm_hf.data.eval_view import PROTOCOLS, Protocol
from depthlm_hf.data.views import CROP_POSITIONS, ROW_FORMATS, CropPosition, RowFormat
from depthlm_hf.geometry import DISTANCE_KINDS, FOCAL_MODES, DistanceKind, FocalMode
from depthlm_hf.models.vision_attention import VISION_ATTENTIONS, VisionAttention
from depthlm_hf.prompting.markers import MARKER_SHAPES, MarkerShape
from depthlm_hf.prompting.presets import (
    IMAGE_SCALES,
    PIXEL_MAPS,
    PRESET_NAMES,
    PRESETS,
    ImageScale,
    PixelMap,
    PresetName,
)
from depthlm_hf.tasks.text import TASK_NAMES, TASKS, TaskName
from depthlm_hf.training.configs import LOSS_ON, TRAINING_PIXELS, LossOn, TrainingPixels
from depthlm_hf.training.rewards import METRICS, Metric

Shade = Literal["red", "blue"]


@dataclass
class Paint:
    shade: Shade = "red"
    finish: Shade | None = None
    name: str = "x"


def test_each_tuple_is_its_literals_values_and_registries_follow_their_literal():
    pairs = [
        (FOCAL_MODES, FocalMode),
        (DISTANCE_KINDS, DistanceKind),
        (MARKER_SHAPES, MarkerShape),
        (PIXEL_MAPS, PixelMap),
        (IMAGE_SCALES, ImageScale),
        (PRESET_NAMES, PresetName),
        (CROP_POSITIONS, CropPosition),
        (ROW_FORMATS, RowFormat),
        (PROTOCOLS, Protocol),
        (METRICS, Metric),
        (VISION_ATTENTIONS, VisionAttention),
        (TASK_NAMES, TaskName),
        (LOSS_ON, LossOn),
        (TRAINING_PIXELS, TrainingPixels),
    ]
    assert all(values == get_args(literal) and len(values) > 1 for values, literal in pairs)
    assert tuple(PRESETS) == PRESET_NAMES and tuple(TASKS) == TASK_NAMES


def test_check_choice_names_the_argument_the_value_and_the_choices():
    assert check_choice("on_error", "skip", OnError) == "skip"
    with pytest.raises(ValueError, match="^`on_error` must be one of skip, raise, got 'ignore'.$"):
        check_choice("on_error", "ignore", OnError)
    with pytest.raises(ValueError, match="got None"):
        check_choice("shade", None, Shade)


def test_literal_fields_of_a_dataclass_are_checked_and_optional_ones_accept_none():
    assert literal_of(Shade) == (Shade, False) and literal_of(Shade | None) == (Shade, True)
    assert literal_of(str) is None and literal_of(int | None) is None
    check_dataclass_choices(Paint("blue", None))
    check_dataclass_choices(Paint("blue", "red", name="anything"))
    with pytest.raises(ValueError, match="`shade` must be one of red, blue, got 'green'"):
        check_dataclass_choices(Paint("green"))
    with pytest.raises(ValueError, match="`finish` must be one of red, blue, got 'matt'"):
        check_dataclass_choices(Paint(finish="matt"))
