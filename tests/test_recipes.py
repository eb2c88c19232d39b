"""Every recipe parses with its script (a typo fails CI) and states the paper's numbers; unknown keys fail
loudly; the DeepSpeed and accelerate configs are valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from depthlm_hf.scripts import grpo, sft

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TRAINING_RECIPES = sorted(RECIPES.glob("*/*/config_*.yaml"))
ACCELERATE = RECIPES / "accelerate_configs"
GPUS = 8  # the accelerate configs' processes per node


def _parse(recipe: Path, *extra: str):
    script = grpo if recipe.parent.name == "grpo" else sft
    overrides = [] if recipe.parts[-3] == "tiny" else ["--use_cpu", "true"]  # bf16 recipes, parsed on a CPU
    return script.make_parser().parse_args_and_config(["--config", str(recipe), *overrides, *extra])


def test_recipes_exist():
    names = {str(path.relative_to(RECIPES)) for path in TRAINING_RECIPES}
    for expected in (
        "qwen2_5_vl_3b/sft/config_paper.yaml",
        "qwen2_5_vl_7b/sft/config_paper.yaml",
        "pixtral_12b/sft/config_paper.yaml",
        "qwen2_5_vl_3b/grpo/config_paper.yaml",
        "tiny/sft/config_synthetic.yaml",
        "tiny/grpo/config_synthetic.yaml",
    ):
        assert expected in names


@pytest.mark.parametrize("recipe", TRAINING_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_recipe_parses_with_its_script(recipe):
    script_args, training_args, model_args = _parse(recipe)
    assert model_args.model_name_or_path
    assert training_args.max_steps > 0 and training_args.output_dir.startswith("outputs/")


# model folder: (learning rate, gradient clipping, unified focal length, global batch, samples)
PAPER_SFT = {
    "qwen2_5_vl_3b": (5.2e-5, 0.1, 1000.0, 1280, 35e6),
    "qwen2_5_vl_7b": (1e-4, 0.5, 1000.0, 1280, 60e6),
    "pixtral_12b": (5.6e-5, 1.0, 750.0, 384, 23e6),
}


@pytest.mark.parametrize("model", sorted(PAPER_SFT))
def test_sft_recipes_state_the_papers_numbers(model):
    lr, clip, focal, batch, samples = PAPER_SFT[model]
    script_args, args, model_args = _parse(RECIPES / model / "sft" / "config_paper.yaml")
    assert (args.learning_rate, args.max_grad_norm, script_args.unified_focal_length) == (lr, clip, focal)
    global_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * GPUS
    assert global_batch == batch
    assert args.max_steps * global_batch == pytest.approx(samples, rel=1e-4)
    assert (args.lr_scheduler_type, args.warmup_steps) == ("cosine", 0.1)
    assert args.bf16 and args.gradient_checkpointing and model_args.dtype == "bfloat16"
    assert model_args.attn_implementation == "flash_attention_2"
    assert script_args.crop_width == [1000, 1400] and script_args.crop_height == [700, 1200]
    weights = {spec.name: spec.weight for spec in script_args.dataset_specs()}
    assert len(weights) == 7 and weights.pop("matterport3d") == 0.1 and set(weights.values()) == {1.0}


def test_grpo_recipe_states_the_papers_numbers():
    _, args, _ = _parse(RECIPES / "qwen2_5_vl_3b" / "grpo" / "config_paper.yaml")
    assert (args.num_generations, args.beta, args.learning_rate, args.max_grad_norm) == (8, 0.0, 1e-5, 1.0)
    assert args.lr_scheduler_type == "constant" and args.reward_funcs == ["neg_l1"]
    prompts_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * GPUS // 8
    assert prompts_per_step == 32


def test_multitask_recipes_mix_the_six_tasks():
    from depthlm_hf.tasks.text import TASKS

    for recipe in RECIPES.glob("*/sft/config_multitask.yaml"):
        script_args, _, _ = _parse(recipe)
        assert sorted(script_args.tasks) == sorted(TASKS) and script_args.task_weights is None


def test_unknown_recipe_key_fails_loudly(tmp_path):
    recipe = yaml.safe_load((RECIPES / "tiny" / "sft" / "config_synthetic.yaml").read_text())
    recipe["learning_rat"] = 1e-4
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ValueError, match="Unknown arguments from config file: \\['--learning_rat'"):
        sft.make_parser().parse_args_and_config(["--config", str(path)])


@pytest.mark.parametrize("flag", ["--focal_unified", "--unified_focal"])  # unknown, and an abbreviation
def test_unknown_or_abbreviated_flag_fails(tmp_path, flag):
    with pytest.raises((ValueError, SystemExit)):
        sft.make_parser().parse_args_and_config(["--output_dir", str(tmp_path), "--use_cpu", "true", flag, "750"])


def test_command_line_overrides_the_recipe():
    script_args, args, _ = _parse(RECIPES / "tiny" / "sft" / "config_synthetic.yaml", "--learning_rate", "0.5")
    assert args.learning_rate == 0.5 and script_args.unified_focal_length == 200.0


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_configs(stage):
    config = json.loads((ACCELERATE / f"ds_zero{stage}.json").read_text())
    assert config["zero_optimization"]["stage"] == stage
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        assert config[key] == "auto"  # taken from the training arguments
    assert config["gradient_clipping"] == "auto" and config["bf16"]["enabled"] == "auto"
    if stage == 3:  # a ZeRO-3 save must write full tensors
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


@pytest.mark.parametrize("name", sorted(p.name for p in ACCELERATE.glob("*.yaml")))
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ACCELERATE / name))
    assert config.num_processes == GPUS * config.num_machines
    if name.startswith("eval_"):  # inference: one plain process per GPU, no DeepSpeed
        assert config.distributed_type == "MULTI_GPU" and not config.deepspeed_config
        return
    assert config.distributed_type == "DEEPSPEED"
    ds_file = Path(config.deepspeed_config["deepspeed_config_file"])
    assert ds_file.parts[0] == "recipes" and (RECIPES.parent / ds_file).is_file()
