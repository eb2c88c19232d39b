"""Every recipe parses with its script (a typo fails CI), states the paper's numbers, and *trains*: the tiny ones
as shipped, the paper ones with the model swapped for a tiny one, a tiny curated dataset and a few CPU steps; every
saved folder reloads in the predictor and answers. Unknown keys fail loudly; the DeepSpeed and accelerate configs
are valid."""

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


# Every shipped training recipe, by path: the parametrized tests below train each one, so a recipe that is added,
# renamed or removed without this list changing fails here.
SHIPPED_RECIPES = {
    "pixtral_12b/sft/config_paper.yaml",
    "qwen2_5_vl_3b/grpo/config_paper.yaml",
    "qwen2_5_vl_3b/sft/config_multitask.yaml",
    "qwen2_5_vl_3b/sft/config_paper.yaml",
    "qwen2_5_vl_3b/sft/config_public.yaml",
    "qwen2_5_vl_7b/sft/config_paper.yaml",
    "tiny/grpo/config_synthetic.yaml",
    "tiny/sft/config_multitask.yaml",
    "tiny/sft/config_synthetic.yaml",
}


def test_recipes_exist():
    names = {str(path.relative_to(RECIPES)) for path in TRAINING_RECIPES}
    assert names == SHIPPED_RECIPES


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
    paper_tasks = ["distance", "speed", "time", "translation", "two_point_distance", "z_distance"]
    for recipe in RECIPES.glob("*/sft/config_multitask.yaml"):
        script_args, _, _ = _parse(recipe)
        assert sorted(script_args.tasks) == paper_tasks and script_args.task_weights is None


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


# --- Every recipe trains a few steps, and its output reloads in the predictor --------------------------------------

TINY_RECIPES = [recipe for recipe in TRAINING_RECIPES if recipe.parts[-3] == "tiny"]
PAPER_RECIPES = [recipe for recipe in TRAINING_RECIPES if recipe.parts[-3] != "tiny"]

CPU_SWAPS: dict[str, object] = {
    "attn_implementation": "sdpa",  # flash_attention_2 needs a GPU
    "bf16": False,  # CPU training in float32
    "use_cpu": True,
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "dataloader_num_workers": 0,
    "report_to": "none",  # tensorboard is not a dependency
    "num_generations": 2,  # GRPO: the batch of 2 is one group of 2 completions
    "max_completion_length": 8,
}
"""What the paper recipes change to train on a CPU in seconds; every other key runs as shipped, the model and the
dataset paths aside (swapped by `_paper_recipe`)."""


def _script(recipe: Path):
    return grpo if recipe.parent.name == "grpo" else sft


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> Path:
    """One tiny curated two-view dataset (`curated.jsonl` + `rgb/`) every paper recipe trains on: six 112x84
    synthetic indoor pairs at f = 400 px, so the focal unification keeps images small (280x210 at f* = 1000)."""
    from depthlm_hf.data.records import to_jsonable
    from depthlm_hf.data.synthetic.scenes import SyntheticDataset

    root = tmp_path_factory.mktemp("curated")
    (root / "rgb").mkdir()
    scenes = SyntheticDataset(
        "indoor", num_scenes=6, num_points=24, two_view=True, seed=0, width=(112, 112), height=(84, 84),
        focal=(400.0, 400.0),
    )  # fmt: skip
    lines = []
    for i, record in enumerate(scenes):
        for key in ("image", "image2"):
            record[key].save(root / f"rgb/{i}_{key}.png")
            record[key] = f"rgb/{i}_{key}.png"
        record.pop("index")
        lines.append(json.dumps(to_jsonable(record)))
    (root / "curated.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def stock_pixtral(tmp_path_factory) -> Path:
    """A tiny Llava/Pixtral folder as the Hub ships Pixtral-12B: the model and a stock processor, no DepthLM
    settings (the recipe's `processor_preset` supplies them)."""
    from depthlm_hf.models.tiny import tiny_llava_pixtral

    model, processor = tiny_llava_pixtral(seed=0)
    folder = tmp_path_factory.mktemp("pixtral")
    model.save_pretrained(folder)
    processor.base_processor.save_pretrained(folder)
    return folder


def _paper_recipe(recipe: Path, curated: Path, model: str, output_dir: Path) -> Path:
    """`recipe` with the CPU swaps, `model`, and every dataset entry reading `curated` (names and weights kept)."""
    config = yaml.safe_load(recipe.read_text())
    swaps = {key: value for key, value in CPU_SWAPS.items() if key in config}
    assert {"attn_implementation", "bf16", "max_steps"} <= set(swaps)  # the swaps still meet the recipe
    datasets = [
        {**entry, "jsonl": str(curated / "curated.jsonl"), "image_root": str(curated)} for entry in config["dataset"]
    ]
    config.update(swaps, model_name_or_path=model, dataset=datasets, output_dir=str(output_dir))
    path = output_dir.parent / f"{recipe.parts[-3]}_{recipe.parent.name}_{recipe.name}"
    path.write_text(yaml.safe_dump(config))
    return path


def _check_trained(trainer, output_dir: Path) -> None:
    import math

    losses = [entry.get("loss", entry.get("train_loss")) for entry in trainer.state.log_history]
    assert trainer.state.global_step == 2 and any(loss is not None and math.isfinite(loss) for loss in losses)
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "README.md").is_file()


def _check_answers(output_dir: Path, script_args) -> None:
    """The saved folder reloads in the predictor, with the run's prompt settings, and answers one query: a number,
    or `None` with the text that did not parse (random tiny weights)."""
    import numpy as np

    from depthlm_hf.inference.predictor import DepthLMPredictor

    predictor = DepthLMPredictor.from_pretrained(output_dir, show_progress=False, max_new_tokens=6)
    assert predictor.processor.preset == (script_args.processor_preset or "paper")  # the tiny models' is "paper"
    if script_args.unified_focal_length is not None:
        assert predictor.processor.unified_focal_length == script_args.unified_focal_length
    image = np.full((84, 112, 3), 90, np.uint8)
    out = predictor.predict(image, [100.0, 100.0, 55.5, 41.5, 112, 84], [[56, 42]])
    assert len(out) == 1 and not any(out.reasons)  # asked, not refused
    value, text = out.values[0], out.texts[0]
    assert (isinstance(value, float) and value == predictor.processor.parse_answer(text)) or (
        value is None and isinstance(text, str)
    )


@pytest.mark.parametrize("recipe", TINY_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_tiny_recipe_trains_as_shipped_and_its_output_answers(recipe, tmp_path, one_thread):
    out = tmp_path / "out"
    argv = ["--config", str(recipe), "--max_steps", "2", "--output_dir", str(out)]
    trainer = _script(recipe).main(argv)
    _check_trained(trainer, out)
    script_args, training_args, model_args = _parse(recipe)
    _check_answers(out, script_args)
    _check_every_task_renders(recipe, script_args, training_args, model_args)


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_paper_recipe_trains_on_a_tiny_model_and_its_output_answers(
    recipe, curated, stock_pixtral, tiny_dir, tmp_path, one_thread
):
    shipped = yaml.safe_load(recipe.read_text())["model_name_or_path"]
    if shipped.startswith("outputs/"):  # GRPO from an SFT output: a saved tiny model with its DepthLM settings
        model = str(tiny_dir)
    else:
        model = str(stock_pixtral) if "pixtral" in shipped else "tiny"
    out = tmp_path / "out"
    config = _paper_recipe(recipe, curated, model, out)
    trainer = _script(recipe).main(["--config", str(config)])
    _check_trained(trainer, out)
    script_args, training_args, model_args = (
        _script(recipe).make_parser().parse_args_and_config(["--config", str(config)])
    )
    _check_answers(out, script_args)
    _check_every_task_renders(recipe, script_args, training_args, model_args)


def _check_every_task_renders(recipe: Path, script_args, training_args, model_args, rows: int = 36) -> None:
    """The run's training stream, beyond the few rows trained on, renders every task of the recipe (two-view rows
    included)."""
    from depthlm_hf.training.setup import build_datasets, load_processor

    processor = load_processor(model_args, script_args)
    kind = recipe.parent.name  # "sft" or "grpo"
    training_args.max_steps = rows // training_args.per_device_train_batch_size
    train, _ = build_datasets(script_args, processor, training_args, kind)
    assert {row["task"] for row in train} == set(script_args.tasks)
