"""Model cards: Hub metadata, the facts they state, round trips through the folder, the trainer mixin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from huggingface_hub import ModelCard
from PIL import Image

from depthlm_hf.training.configs import DepthLMScriptArguments, DepthLMSFTConfig
from depthlm_hf.training.modelcard import (
    ModelCardInfo,
    ModelCardMixin,
    card_eval_results,
    card_info_from_args,
    read_card_info,
    recipe_from_args,
    render_model_card,
    update_model_card,
    write_model_card,
)


def _info(**kwargs) -> ModelCardInfo:
    defaults = dict(
        base_model="Qwen/Qwen2.5-VL-3B-Instruct",
        datasets={"argoverse2_train": 0.5, "matterport3d_train": 0.5},
        tasks={"distance": 1.0},
        marker={"shape": "arrow", "size": 5},
        crop={"width": [1000, 1400], "height": [700, 1200], "position": "center"},
        recipe={"learning_rate": 5.2e-5, "global_batch_size": 1280},
        hub_model_id="me/depthlm-3b",
    )
    return ModelCardInfo(**{**defaults, **kwargs})


def test_card_metadata_and_facts(tmp_path):
    path = write_model_card(tmp_path, _info())
    card = ModelCard.load(path)
    assert card.data.base_model == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-text-to-text"
    assert {"depthlm", "sft", "trl"} <= set(card.data.tags)
    text = card.text
    assert "# depthlm-3b" in text and "unified focal length: 1000 px (focal mode `xy`)" in text
    assert "| argoverse2_train | 0.5 |" in text and "| distance | 1.0 |" in text
    assert "| learning_rate | 5.2e-05 |" in text and "| global_batch_size | 1280 |" in text
    assert "crops: width [1000, 1400], height [700, 1200], position center" in text
    assert "No evaluation figures recorded yet." in text and "arXiv:2509.25413" in text
    assert 'DepthLMProcessor.from_pretrained("me/depthlm-3b")' in text


def test_round_trip_and_eval_update(tmp_path):
    info = _info()
    write_model_card(tmp_path, info)
    assert read_card_info(tmp_path) == info
    update_model_card(tmp_path, {"ibims1": {"delta1": 0.9123, "absrel": 0.081}})
    update_model_card(tmp_path, {"nyuv2": {"delta1": 0.88}})
    assert read_card_info(tmp_path).eval_results == {
        "ibims1": {"delta1": 0.9123, "absrel": 0.081},
        "nyuv2": {"delta1": 0.88},
    }
    text = (tmp_path / "README.md").read_text()
    assert "| dataset | absrel | delta1 |" in text
    assert "| ibims1 | 0.081 | 0.9123 |" in text and "| nyuv2 |  | 0.88 |" in text


def test_peft_and_grpo_cards():
    text = render_model_card(_info(method="grpo", peft=True))
    assert "library_name: peft" in text and "GRPO (TRL `GRPOTrainer`)" in text


def test_recipe_and_info_from_arguments(tiny):
    _, processor = tiny
    args = DepthLMSFTConfig(
        output_dir="unused", use_cpu=True, learning_rate=1e-4, per_device_train_batch_size=10,
        gradient_accumulation_steps=16, max_steps=100,
    )  # fmt: skip
    recipe = recipe_from_args(args)
    assert recipe["learning_rate"] == 1e-4 and recipe["lr_scheduler_type"] == "cosine"
    assert recipe["global_batch_size"] == 160 and recipe["max_steps"] == 100  # one process here
    datasets = [{"jsonl": "a/x.jsonl", "weight": 3}, "b/y.jsonl:b"]
    script = DepthLMScriptArguments(dataset=datasets, tasks=["time"])
    info = card_info_from_args(script, args, processor, "base/model", "sft")
    assert info.datasets == {"x": 0.75, "y": 0.25} and info.tasks == {"time": 1.0}
    assert info.unified_focal_length == processor.unified_focal_length and info.marker == processor.marker
    synthetic = card_info_from_args(
        DepthLMScriptArguments(crop_width=None, crop_height=None), args, processor, "m", "sft"
    )
    assert synthetic.datasets == {"synthetic:indoor (512 scenes)": 1.0} and synthetic.crop == {}


class _Base:
    def __init__(self, output_dir):
        self.args = type("Args", (), {"output_dir": output_dir})()
        self.stock_cards = 0

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        self.stock_cards += 1

    def is_world_process_zero(self):
        return True


class _Trainer(ModelCardMixin, _Base):
    pass


def test_mixin_writes_the_depthlm_card_when_it_has_one(tmp_path):
    trainer = _Trainer(str(tmp_path))
    trainer.create_model_card(model_name="x")
    assert trainer.stock_cards == 1 and not (tmp_path / "README.md").exists()
    trainer.card_info = _info()
    trainer.create_model_card(model_name="x")
    assert trainer.stock_cards == 1 and "depthlm" in (tmp_path / "README.md").read_text()


def test_run_from_a_local_depthlm_folder_names_its_hub_base(tiny, tmp_path):
    _, processor = tiny
    write_model_card(tmp_path / "sft", _info())  # an SFT output folder
    args = DepthLMSFTConfig(output_dir="unused", use_cpu=True)
    script = DepthLMScriptArguments()
    info = card_info_from_args(script, args, processor, str(tmp_path / "sft"), "grpo")
    assert info.base_model == "Qwen/Qwen2.5-VL-3B-Instruct" and info.started_from == str(tmp_path / "sft")
    text = render_model_card(info)
    assert "base_model: Qwen/Qwen2.5-VL-3B-Instruct" in text and f"started from `{tmp_path / 'sft'}`" in text
    plain = card_info_from_args(script, args, processor, str(tmp_path), "sft")  # a folder without a card
    assert "base_model:" not in render_model_card(plain).split("---")[1]


def test_title_base_model_datasets_license_and_model_index(tmp_path):
    info = _info(hub_model_id=None, datasets={"me/rgbd-set": 0.5, "local_jsonl": 0.5}, license="apache-2.0")
    info.eval_results = {"ibims1": {"delta1": 0.875, "abs_rel": 0.1}}
    card = ModelCard.load(write_model_card(tmp_path / "my-depth-model", info))
    assert card.text.lstrip().startswith("# my-depth-model")
    assert card.data.datasets == ["me/rgbd-set"] and card.data.license == "apache-2.0"
    assert {(r.dataset_name, r.metric_type, r.metric_value) for r in card.data.eval_results} == {
        ("ibims1", "delta1", 0.875),
        ("ibims1", "abs_rel", 0.1),
    }
    for local in ("tiny", str(tmp_path), "not a/valid id!"):
        assert "base_model" not in render_model_card(_info(base_model=local)).split("---")[1]


def test_card_eval_results_keeps_finite_headline_metrics():
    results = {"distance": {"a": {"delta1": 0.5, "rmse": float("nan"), "seconds": 3.0}}, "time": {"a": {"delta1": 1}}}
    assert card_eval_results(results) == {"a": {"delta1": 0.5}, "a/time": {"delta1": 1.0}}


def test_sft_then_eval_update_card_gives_a_hub_card_with_delta1(tmp_path, one_thread):
    """`depthlm sft` writes the card; `depthlm eval --update_card` adds its delta1; the Hub parser reads it back."""
    from depthlm_hf.scripts import eval as eval_script
    from depthlm_hf.scripts import sft

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "sft" / "config_synthetic.yaml"
    out = tmp_path / "tiny-sft"
    sft.main(["--config", str(recipe), "--output_dir", str(out), "--synthetic_scenes", "4", "--max_steps", "2"])
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (168, 224, 3), dtype=np.uint8)).save(data / "a.png")
    record = {"image": "a.png", "intrinsics": [200.0, 200.0, 111.5, 83.5, 224, 168],
              "pixel_coords": [[60, 50], [150, 100], [112, 84]], "depth": [1.5, 3.0, 2.2]}  # fmt: skip
    (data / "val.jsonl").write_text(json.dumps(record) + "\n")
    argv = ["--model", str(out), "--data", f"toy={data / 'val.jsonl'}", "--output_dir", str(tmp_path / "eval")]
    results = eval_script.main([*argv, "--plots", "false", "--update_card", "true"])
    card = ModelCard.load(out / "README.md")
    assert card.text.lstrip().startswith("# tiny-sft")
    delta1 = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}[("toy", "delta1")]
    assert delta1 == results["distance"]["toy"]["delta1"]
    assert card.data.model_name == "tiny-sft" and f"| toy | {delta1:.4g} |" in card.text  # delta1 sorts first here
