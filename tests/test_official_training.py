"""Training as the official release did: its objective (`loss_on`), its pixels (`training_pixels`), and SFT and GRPO
steps under both Pixtral chat templates on the tiny Llava-Pixtral (the real-vocabulary counts are in
test_real_tokenizer.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset
from PIL import Image

from depthlm_hf.models.tiny import LLAVA_PROCESSOR_KWARGS, tiny_llava_pixtral
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.testing import PIXTRAL_TEMPLATES
from depthlm_hf.training.configs import GRPO_SYSTEM_PROMPT, DepthLMGRPOConfig, DepthLMSFTConfig
from depthlm_hf.training.trainers import (
    AnswerOnlyCollator,
    DepthLMGRPOTrainer,
    DepthLMSFTTrainer,
    release_training_image,
    release_training_size,
)

CAMERA = [50.0, 50.0, 31.5, 23.5, 64, 48]
ANSWER = "<think> The point is around 3.25 meters away from the camera. </think>\n\n<answer> 3.25 </answer>"


def _pixtral(template: str, image_scale: str = "processor"):
    """The tiny Llava-Pixtral with `[IMG]` as its image token and a Pixtral chat template, as the release ships."""
    model, tiny = tiny_llava_pixtral(seed=0, longest_edge=64)
    model.config.image_token_id = tiny.tokenizer.convert_tokens_to_ids("[IMG]")
    processor = DepthLMProcessor.from_preset(
        "official_pixtral",
        tiny.image_processor,
        tiny.tokenizer,
        chat_template=PIXTRAL_TEMPLATES[template],
        base_processor_class="LlavaProcessor",
        base_processor_kwargs={**LLAVA_PROCESSOR_KWARGS, "image_token": "[IMG]"},
        image_scale=image_scale,
    )
    return model, processor


def _rows(processor: DepthLMProcessor, count: int = 2) -> list[dict]:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return [processor.training_row(image, CAMERA, [[30 + i, 20]], 3.25) for i in range(count)]


@pytest.mark.parametrize("template", list(PIXTRAL_TEMPLATES))
def test_loss_masks_answer_only_and_the_release_rule(template):
    model, processor = _pixtral(template)
    tokenizer = processor.tokenizer
    image_id, eos = tokenizer.convert_tokens_to_ids("[IMG]"), tokenizer.eos_token
    answer = AnswerOnlyCollator(processor=processor)(_rows(processor))
    labels = answer["labels"][0]
    assert tokenizer.decode(labels[labels != -100]) == ANSWER + eos
    release = AnswerOnlyCollator(processor=processor, loss_on="all_but_image")(_rows(processor))
    ids, labels = release["input_ids"][0], release["labels"][0]
    # the release's rule, restated: labels = input ids, except padding and the image token
    expected = ids.clone()
    expected[(ids == tokenizer.pad_token_id) | (ids == image_id)] = -100
    assert torch.equal(labels, expected) and (ids == image_id).sum() == 12  # 64 x 48 px: 4 x 3 patches of 16 px
    assert tokenizer.decode(labels[labels != -100]).startswith("[INST]Given this image, how far is the point")
    assert tokenizer.decode(labels[labels != -100]).endswith("[/INST]" + ANSWER + eos)


@pytest.mark.parametrize("template", list(PIXTRAL_TEMPLATES))
def test_sft_rows_with_a_system_turn_under_both_pixtral_templates(template):
    """Pixtral templates keep a system turn only when the user's message is last: the training text is the prompt
    as generation sees it (with the system turn) followed by the answer."""
    _, processor = _pixtral(template)
    processor.system_prompt = "Be brief."
    tokenizer = processor.tokenizer
    batch = AnswerOnlyCollator(processor=processor)(_rows(processor, 1))
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    assert tokenizer.decode(ids[ids != tokenizer.convert_tokens_to_ids("[IMG]")]) == (
        "[INST]Be brief.\n\n" + processor.question() + "[/INST]" + ANSWER + tokenizer.eos_token
    )
    assert tokenizer.decode(labels[labels != -100]) == ANSWER + tokenizer.eos_token


@pytest.mark.parametrize("template", list(PIXTRAL_TEMPLATES))
def test_sft_and_grpo_step_under_both_pixtral_templates(template, tmp_path, one_thread):
    """The original template concatenates the assistant's content to a string and both a system turn's: each used
    to fail with a TypeError (SFT, and GRPO's system prompt)."""
    model, processor = _pixtral(template)
    before = [p.detach().clone() for p in model.parameters()]
    common = {"max_steps": 1, "per_device_train_batch_size": 2, "report_to": [], "use_cpu": True, "bf16": False}
    common |= {"save_strategy": "no", "logging_steps": 1}
    args = DepthLMSFTConfig(tmp_path / "sft", remove_unused_columns=False, warmup_steps=0, **common)
    collator = AnswerOnlyCollator(processor=processor, loss_on="all_but_image")
    sft = DepthLMSFTTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=Dataset.from_list(_rows(processor)),
        processing_class=processor,
    )
    sft.train()
    assert np.isfinite(sft.state.log_history[0]["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    processor.system_prompt = GRPO_SYSTEM_PROMPT
    prompt = processor.apply_chat_template(processor.task_messages(), tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("[INST]" + GRPO_SYSTEM_PROMPT + "\n\n[IMG]Given this image")
    rows = [{"prompt": processor.task_messages(), "image": r["images"][0], "depth": 3.25} for r in _rows(processor)]
    args = DepthLMGRPOConfig(tmp_path / "grpo", num_generations=2, max_completion_length=4, **common)
    grpo = DepthLMGRPOTrainer(
        model=model,
        args=args,
        reward_funcs=[lambda completions, **kw: [float(i) for i in range(len(completions))]],
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
    )
    grpo.train()
    assert grpo.state.global_step == 1 and grpo.state.log_history[0]["reward_std"] > 0


def test_release_training_pixels_are_multiples_of_28():
    """857 x 643 (iBims-1 at f* = 750 px) becomes 868 x 644: fx 750 -> 759.6, fy 748.0 -> 749.2."""
    assert release_training_size(857, 643) == (868, 644)
    assert release_training_size(766, 574) == (756, 560)
    assert release_training_size(20, 10) == (84, 56)  # below 4 x 28^2 pixels: scaled up (ceiled)
    assert release_training_size(6000, 4000) == (4368, 2912)  # above 16,384 x 28^2: scaled down (floored)
    fy = 558.14 * 750.0 / 559.62  # the release's unified fy (both axes scaled by f*/fx)
    assert (750.0 * 868 / 857, fy * 644 / 643) == pytest.approx((759.627, 749.180), abs=1e-3)
    image = Image.new("RGB", (857, 643), (90, 90, 90))
    image.putpixel((400, 300), (255, 0, 0))
    resized = release_training_image(image)
    assert resized.size == (868, 644)
    red = np.asarray(resized)[..., 0]
    assert red.max() < 255 and (red > 90).sum() > 1  # the 1 px marker is resampled (PIL's bicubic)


def test_release_training_pixels_reach_the_model_inputs():
    _, processor = _pixtral("converted", image_scale="keep")
    rows = [
        processor.training_row(
            Image.new("RGB", (857, 643), (90, 90, 90)), [750, 750, 428, 321, 857, 643], [[428, 321]], 3.25
        )
    ]
    unified = AnswerOnlyCollator(processor=processor)([dict(rows[0])])
    release = AnswerOnlyCollator(processor=processor, training_pixels="release")([dict(rows[0])])
    assert unified["image_sizes"].tolist() == [[643, 857]] and release["image_sizes"].tolist() == [[644, 868]]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"loss_on": "everything"}, "`loss_on` must be one of answer, all_but_image, got 'everything'"),
        ({"training_pixels": "raw"}, "`training_pixels` must be one of unified, release, got 'raw'"),
    ],
)
def test_unknown_options_are_refused(settings, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        DepthLMSFTConfig(tmp_path, **settings)
    with pytest.raises(ValueError, match=message):
        AnswerOnlyCollator(processor=None, **settings)
    assert DepthLMSFTConfig(tmp_path, loss_on="all_but_image", bf16=False).completion_only_loss is False


def test_depthlm_sft_with_the_release_options_saves_do_rescale_off(tmp_path, one_thread):
    """`depthlm sft --loss_on all_but_image --training_pixels release` on a stock Llava/Pixtral folder: one step,
    and the saved processor has `do_rescale` off, as the release's train.py saves it."""
    import json

    from depthlm_hf.scripts import sft

    model, processor = tiny_llava_pixtral(seed=0)
    folder = tmp_path / "pixtral"
    model.save_pretrained(folder)
    processor.base_processor.save_pretrained(folder)
    out = tmp_path / "out"
    config = {"model_name_or_path": str(folder), "processor_preset": "official_pixtral", "output_dir": str(out)}
    config |= {"loss_on": "all_but_image", "training_pixels": "release", "synthetic": "ground", "synthetic_scenes": 4}
    config |= {"unified_focal_length": 150.0, "crop_width": None, "crop_height": None, "max_steps": 1}
    config |= {"per_device_train_batch_size": 2, "use_cpu": True, "bf16": False, "save_strategy": "no"}
    config |= {"report_to": "none", "logging_steps": 1}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    argv = ["--config", str(tmp_path / "config.yaml")]
    trainer = sft.main(argv)
    assert trainer.state.global_step == 1 and np.isfinite(trainer.state.log_history[0]["loss"])

    def do_rescale(path):  # transformers 5 saves the image processor's settings inside processor_config.json
        return json.loads((path / "processor_config.json").read_text())["image_processor"]["do_rescale"]

    assert do_rescale(out) is False and do_rescale(folder) is True
    reloaded = DepthLMProcessor.from_pretrained(out)
    assert reloaded.preset == "official_pixtral" and reloaded.image_processor.do_rescale is False
