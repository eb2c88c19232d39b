"""SFT on the tiny offline model: answer-only labels, learning, save/reload/generate, LoRA, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from transformers import AutoModelForImageTextToText, TrainerCallback

from depthlm_hf.models.tiny import tiny_qwen2_5_vl
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.scripts import sft
from depthlm_hf.training.setup import resume_checkpoint
from depthlm_hf.training.trainers import AnswerOnlyCollator

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "sft" / "config_synthetic.yaml"
INTRINSICS = [1000.0, 1000.0, 111.5, 83.5, 224, 168]  # f = f*: the image is used at its own size


def _argv(output_dir: Path, *extra: str) -> list[str]:
    return ["--config", str(RECIPE), "--output_dir", str(output_dir), "--synthetic_scenes", "8", *extra]


def _image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (168, 224, 3), dtype=np.uint8))


def test_labels_only_on_answer_and_end_of_turn(tiny):
    """Token by token: the labelled tokens are exactly the answer text and `<|im_end|>`, nothing else."""
    _, processor = tiny
    tokenizer = processor.tokenizer
    rows = [
        processor.training_row(_image(0), INTRINSICS, [[100, 80]], 3.25),
        processor.training_row(_image(1), INTRINSICS, [[60, 40]], 12.5, task="time", speed=1.5),
    ]
    answers = [
        "The point is around 3.25 meters away from the camera.",
        "The camera needs around 12.50 seconds.",
    ]
    batch = AnswerOnlyCollator(processor=processor, completion_only_loss=True)([dict(row) for row in rows])
    image_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert batch["attention_mask"].eq(0).any(), "rows of different lengths must be padded"
    for i, answer in enumerate(answers):
        ids, labels, mask = batch["input_ids"][i], batch["labels"][i], batch["attention_mask"][i]
        labelled = torch.nonzero(labels != -100).flatten().tolist()
        assert labelled == list(range(labelled[0], labelled[-1] + 1)), "labels form one contiguous span"
        assert torch.equal(labels[labelled], ids[labelled])
        expected = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        assert labels[labelled].tolist() == expected
        assert [tokenizer.decode([t]) for t in labels[labelled]] == [tokenizer.decode([t]) for t in expected]
        assert tokenizer.decode(labels[labelled]) == answer + "<|im_end|>"
        assert tokenizer.decode(ids[: labelled[0]]).endswith("<|im_start|>assistant\n")
        assert not ((labels != -100) & (ids == image_id)).any(), "no label on image tokens"
        assert not ((labels != -100) & (mask == 0)).any(), "no label on padding"
        assert (ids == image_id).sum() > 0


def _losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_sft_30_steps_learns_saves_reloads_and_generates(tmp_path):
    out = tmp_path / "sft"
    trainer = sft.main(_argv(out, "--max_steps", "30", "--per_device_train_batch_size", "2", "--logging_steps", "1"))
    losses = _losses(trainer)
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5

    initial, _ = tiny_qwen2_5_vl()
    trained = dict(trainer.model.named_parameters())
    changed = [name for name, p in initial.named_parameters() if not torch.equal(p, trained[name].detach())]
    assert "lm_head.weight" in changed or "model.language_model.embed_tokens.weight" in changed
    assert len(changed) > len(trained) // 2

    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = DepthLMProcessor.from_pretrained(out)
    assert processor.unified_focal_length == 200.0 and processor.marker == trainer.processing_class.marker
    for name, param in model.named_parameters():
        torch.testing.assert_close(param, trained[name].detach(), msg=name)

    inputs = processor(images=_image(2), intrinsics=[200.0, 200.0, 111.5, 83.5, 224, 168], points=[[100, 90]])
    output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    text = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    assert isinstance(text, str) and len(text) > 0

    card = (out / "README.md").read_text()
    assert "base_model:" not in card.split("---")[1] and "# sft\n" in card  # a random init has no Hub base
    assert "unified focal length: 200 px" in card
    assert "| learning_rate | 0.001 |" in card and "synthetic:ground" in card


def test_lora_adapter_saves_reloads_merges_and_generates(tmp_path):
    from peft import PeftModel

    out = tmp_path / "lora"
    argv = _argv(out, "--max_steps", "3", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2")
    trainer = sft.main(argv + ["--use_peft", "true", "--lora_target_modules", "all-linear", "--lora_r", "4"])
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    assert "library_name: peft" in (out / "README.md").read_text()

    base, _ = tiny_qwen2_5_vl()
    model = PeftModel.from_pretrained(base, out)
    trained = {name: p for name, p in trainer.model.named_parameters() if "lora_B" in name}
    assert trained and any(p.abs().sum() > 0 for p in trained.values())
    reloaded = dict(model.named_parameters())
    for name, param in trained.items():
        torch.testing.assert_close(reloaded[name], param.detach(), msg=name)

    processor = DepthLMProcessor.from_pretrained(out)
    inputs = processor(images=_image(3), intrinsics=[200.0, 200.0, 111.5, 83.5, 224, 168], points=[[100, 90]])
    with torch.no_grad():
        adapter_logits = model(**inputs).logits
        merged = model.merge_and_unload()
        merged_logits = merged(**inputs).logits
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-4, rtol=1e-4)
    output = merged.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


class _Killed(Exception):
    pass


class _KillAfter(TrainerCallback):
    """Simulates the job dying at the end of `step` (after the checkpoint of an earlier step was written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Killed


def test_resume_after_kill_continues_data_order(tmp_path, monkeypatch):
    seen: list[list[int]] = []
    collate = AnswerOnlyCollator.torch_call

    def recording(self, examples):
        seen.append([example["index"] for example in examples])
        return collate(self, examples)

    monkeypatch.setattr(AnswerOnlyCollator, "torch_call", recording)
    common = (
        "--logging_steps",
        "1",
        "--max_steps",
        "6",
        "--per_device_train_batch_size",
        "2",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
    )

    full = sft.main(_argv(tmp_path / "full", *common))
    order_full, seen[:] = list(seen), []

    parser = sft.make_parser()
    with pytest.raises(_Killed):
        sft.train(*parser.parse_args_and_config(_argv(tmp_path / "run", *common)), callbacks=[_KillAfter(4)])
    assert (tmp_path / "run" / "checkpoint-3").is_dir() and not (tmp_path / "run" / "checkpoint-6").exists()
    order_killed, seen[:] = list(seen), []
    assert order_killed[:4] == order_full[:4]  # (the loader may have prefetched one batch more)

    resumed = sft.main(_argv(tmp_path / "run", *common, "--resume_from_checkpoint", "last"))
    assert resumed.state.global_step == full.state.global_step == 6
    assert seen[-3:] == order_full[3:], "the resumed run continues the data order after step 3"
    final = dict(full.model.named_parameters())
    # the checkpoint's weights, optimizer and schedule were restored: the same end point as without the kill
    assert _losses(resumed)[-3:] == pytest.approx(_losses(full)[-3:], abs=1e-5)
    for name, param in resumed.model.named_parameters():
        torch.testing.assert_close(param, final[name], msg=name)


def test_resume_last_without_checkpoint_starts_fresh(tmp_path):
    args = sft.make_parser().parse_args_and_config(_argv(tmp_path / "new", "--resume_from_checkpoint", "last"))[1]
    assert resume_checkpoint(args) is None


def test_sft_on_a_mixture_of_curated_datasets(ibims1_dir, tmp_path, monkeypatch):
    """A recipe's `dataset` list of mappings with weights, on the real iBims-1 sample, paper crops."""
    seen: list[dict] = []
    collate = AnswerOnlyCollator.torch_call

    def recording(self, examples):
        seen.extend(examples)
        return collate(self, examples)

    monkeypatch.setattr(AnswerOnlyCollator, "torch_call", recording)
    recipe = yaml.safe_load(RECIPE.read_text())
    jsonl = str(ibims1_dir / "ibims1_val.jsonl")
    recipe["dataset"] = [
        {"name": "ibims1_val", "jsonl": jsonl, "image_root": str(ibims1_dir)},
        {"name": "ibims1_val_2", "jsonl": jsonl, "image_root": str(ibims1_dir), "weight": 0.1},
    ]
    config = tmp_path / "mixture.yaml"
    config.write_text(yaml.safe_dump(recipe))
    argv = ["--config", str(config), "--output_dir", str(tmp_path), "--max_steps", "2"]
    argv += [
        "--per_device_train_batch_size",
        "2",
        "--unified_focal_length",
        "1000",
        "--crop_width",
        "1000",
        "1400",
    ]
    argv += ["--crop_height", "700", "1200"]
    trainer = sft.main(argv)
    assert trainer.state.global_step == 2 and len(seen) == 4
    for row in seen:
        (image,) = row["images"]
        assert 1000 <= image.width <= 1400 or image.width == 1145  # cropped (or the whole unified width)
        assert image.height <= 1200
    card = (tmp_path / "README.md").read_text()
    assert "| ibims1_val | 0.909091 |" in card and "| ibims1_val_2 | 0.090909 |" in card  # one file, two entries


def test_evaluation_logs_delta1_of_generated_answers(tmp_path):
    """`eval_samples` rows are answered by generation at each evaluation; delta1 and AbsRel are logged with the loss."""
    from depthlm_hf.inference.predictor import DepthLMPredictor
    from depthlm_hf.training.trainers import generated_metrics

    argv = _argv(tmp_path, "--max_steps", "2", "--per_device_train_batch_size", "2", "--eval_samples", "4")
    trainer = sft.main([*argv, "--eval_strategy", "steps", "--eval_steps", "1", "--per_device_eval_batch_size", "4"])
    logged = [entry for entry in trainer.state.log_history if "eval_delta1" in entry]
    assert len(logged) == 2 and all("eval_abs_rel" in e and 0 <= e["eval_parse_rate"] <= 1 for e in logged)
    assert len([entry for entry in trainer.state.log_history if "eval_loss" in entry]) == 2
    rows = [trainer.eval_dataset[i] for i in range(4)]
    assert {row["task"] for row in rows} == {"distance"} and all(row["depth"] > 0 for row in rows)
    again = generated_metrics(DepthLMPredictor(trainer.model, trainer.processing_class, show_progress=False), rows)
    assert again["delta1"] == logged[-1]["eval_delta1"] and again["parse_rate"] == logged[-1]["eval_parse_rate"]


def test_grouped_rows_are_read_in_order_with_batched_vision_attention(tmp_path, monkeypatch):
    from depthlm_hf.data import GroupedTrainingView
    from depthlm_hf.models import vision_attention

    seen, views = [], []
    original = AnswerOnlyCollator.torch_call

    def recording(self, examples):
        seen.append([int(example["index"]) for example in examples])
        return original(self, examples)

    real_init = GroupedTrainingView.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        views.append(self)

    monkeypatch.setattr(AnswerOnlyCollator, "torch_call", recording)
    monkeypatch.setattr(GroupedTrainingView, "__init__", init)
    common = ("--per_device_train_batch_size", "2", "--save_strategy", "no", "--rows_per_image", "3")
    trainer = sft.main(_argv(tmp_path / "grouped", "--max_steps", "3", *common))
    assert seen == [[0, 1], [2, 3], [4, 5]]
    assert len(views) == 1 and views[0].rows_per_image == 3
    assert vision_attention.is_enabled(trainer.model)
    stock = sft.main(_argv(tmp_path / "stock", "--max_steps", "1", "--vision_attention", "stock"))
    assert not vision_attention.is_enabled(stock.model) and not stock.read_in_order
