"""Script arguments and trainer configs: paper defaults, validation errors, processor settings."""

from __future__ import annotations

import pytest
from trl import ModelConfig

from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.training.configs import GRPO_SYSTEM_PROMPT, DepthLMGRPOConfig, DepthLMScriptArguments, DepthLMSFTConfig
from depthlm_hf.training.setup import load_processor


def test_script_defaults_are_the_papers():
    args = DepthLMScriptArguments()
    assert (args.crop_width, args.crop_height, args.crop_position) == ([1000, 1400], [700, 1200], "center")
    assert args.tasks == ["distance"] and args.task_weights is None and args.dataset == []
    assert args.processor_overrides() == {}  # focal length etc. come from the model's processor or preset


def test_sft_config_defaults():
    config = DepthLMSFTConfig(output_dir="unused", use_cpu=True)
    assert config.completion_only_loss is True and config.max_length is None
    assert (config.lr_scheduler_type, config.warmup_steps) == ("cosine", 0.1)


def test_grpo_config_defaults():
    config = DepthLMGRPOConfig(output_dir="unused", use_cpu=True, per_device_train_batch_size=8)
    assert (config.num_generations, config.beta, config.learning_rate, config.max_grad_norm) == (
        8,
        0.0,
        1e-5,
        1.0,
    )
    assert config.lr_scheduler_type == "constant" and config.reward_funcs == ["neg_l1"]
    assert config.system_prompt == GRPO_SYSTEM_PROMPT and "<answer>" in GRPO_SYSTEM_PROMPT


def test_dataset_entries_parse_shorthand_and_mappings():
    args = DepthLMScriptArguments(
        dataset=["data/a.jsonl:data/a", "c=C:/b.jsonl:/mnt/b", {"name": "m", "jsonl": "m.jsonl", "weight": 0.1}]
    )
    assert [(s.name, s.jsonl, s.image_root, s.weight) for s in args.dataset_specs()] == [
        ("a", "data/a.jsonl", "data/a", 1.0),
        ("c", "C:/b.jsonl", "/mnt/b", 1.0),
        ("m", "m.jsonl", ".", 0.1),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": ["a:b"]}, "`dataset` entries must look like \\[NAME=\\]JSONL\\[:IMAGE_ROOT\\]"),
        ({"dataset": ["x/a.jsonl", "y/a.jsonl"]}, "`dataset` names must be unique, got 'a' more than once"),
        ({"tasks": ["distance", "depth"]}, "Unknown `tasks` \\['depth'\\]. Available: distance, z_distance"),
        ({"tasks": ["distance"], "task_weights": [-1.0]}, "`task_weights` must be >= 0"),
        ({"crop_width": [1400, 1000]}, "`crop_width` must be two sizes"),
        ({"crop_width": None}, "`crop_width` and `crop_height` must both be set"),
        ({"synthetic": "moon"}, "`synthetic`: Unknown scene preset 'moon'. Available: indoor, outdoor"),
        ({"aspect_jitter": [1.3, 1.0]}, "`aspect_jitter` must be \\[lo, hi\\]"),
        ({"unified_focal_length": -5.0}, "`unified_focal_length` must be > 0"),
        ({"synthetic_scenes": 0}, "`synthetic_scenes` must be > 0"),
        ({"rows_per_image": 0}, "`rows_per_image` must be >= 1, got 0"),
        ({"vision_attention": "fast"}, "`vision_attention` must be one of batched, stock, got 'fast'"),
        ({"marker_shape": "star"}, "`marker_shape` must be one of arrow, cross, circle, official_arrow, got 'star'"),
        ({"focal_mode": "yx"}, "`focal_mode` must be one of xy, fx, got 'yx'"),
        ({"processor_preset": "nope"}, "`processor_preset` must be one of paper, official_pixtral, got 'nope'"),
        ({"crop_position": "left"}, "`crop_position` must be one of center, random, got 'left'"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthLMScriptArguments(**kwargs)


def test_closed_choices_are_the_owning_modules_literals_on_the_command_line_and_in_recipes(tmp_path):
    """Each closed choice is typed with its owner's `Literal`: the parser's choices and the checks of recipe values
    (which the parser does not check) both come from it."""
    from typing import get_type_hints

    from trl import TrlParser

    from depthlm_hf.data.views import CropPosition
    from depthlm_hf.geometry import FocalMode
    from depthlm_hf.models.vision_attention import VisionAttention
    from depthlm_hf.prompting.markers import MarkerShape
    from depthlm_hf.prompting.presets import PresetName

    hints = get_type_hints(DepthLMScriptArguments)
    owners = {
        "crop_position": CropPosition,
        "focal_mode": FocalMode | None,
        "marker_shape": MarkerShape | None,
        "processor_preset": PresetName | None,
        "vision_attention": VisionAttention,
    }
    assert {name: hints[name] for name in owners} == owners
    parser = TrlParser((DepthLMScriptArguments,))
    choices = {action.dest: tuple(action.choices) for action in parser._actions if action.dest in owners}
    assert choices["marker_shape"] == ("arrow", "cross", "circle", "official_arrow")
    assert choices["vision_attention"] == ("batched", "stock")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("marker_shape: star\n")
    with pytest.raises(ValueError, match="`marker_shape` must be one of arrow, cross, circle, official_arrow"):
        parser.parse_args_and_config(["--config", str(recipe)])


def test_processor_overrides_hold_only_given_settings():
    args = DepthLMScriptArguments(unified_focal_length=750.0, focal_mode="fx", marker_size=7)
    assert args.processor_overrides() == {
        "unified_focal_length": 750.0,
        "focal_mode": "fx",
        "marker": {"size": 7},
    }


def test_load_processor_keeps_saved_settings_and_applies_overrides(tiny_dir):
    model = ModelConfig(model_name_or_path=str(tiny_dir))
    saved = DepthLMProcessor.from_pretrained(tiny_dir)
    kept = load_processor(model, DepthLMScriptArguments())
    assert kept.to_dict() == saved.to_dict()
    changed = load_processor(model, DepthLMScriptArguments(unified_focal_length=750.0, marker_shape="cross"))
    assert changed.unified_focal_length == 750.0
    assert changed.marker == {**saved.marker, "shape": "cross"}
    assert changed.chat_template == saved.chat_template


def test_load_processor_wraps_a_stock_processor_with_the_preset(tiny, tmp_path):
    _, processor = tiny
    processor.base_processor.save_pretrained(tmp_path)  # a stock Qwen2.5-VL processor folder
    loaded = load_processor(ModelConfig(model_name_or_path=str(tmp_path)), DepthLMScriptArguments(marker_size=7))
    assert isinstance(loaded, DepthLMProcessor)
    assert (loaded.preset, loaded.base_processor_class, loaded.unified_focal_length) == (
        "paper",
        "Qwen2_5_VLProcessor",
        1000.0,
    )
    assert loaded.marker["size"] == 7 and loaded.marker["shape"] == "arrow"


def test_tiny_keyword_builds_the_offline_processor():
    loaded = load_processor(ModelConfig(model_name_or_path="tiny"), DepthLMScriptArguments(unified_focal_length=200.0))
    assert loaded.unified_focal_length == 200.0 and loaded.chat_template
