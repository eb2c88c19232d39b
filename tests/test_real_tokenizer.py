"""The official preset on Pixtral-12B's real tokenizer (tekken, 131k tokens), loaded offline from mistral-common.

Both Pixtral chat templates are here: the original one of mistral-community/pixtral-12b (a text item renders its
`content` key) and the one transformers' Pixtral conversion writes (`content`, else `text`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthlm_hf.inference.decoding import TokenClasses
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.tasks import text as answers
from depthlm_hf.testing import PIXTRAL_TEMPLATES, write_release_files
from depthlm_hf.training.trainers import AnswerOnlyCollator

pytestmark = pytest.mark.slow

IBIMS = [559.62, 558.14, 361.87, 241.99, 640, 480]

ORIGINAL_TEMPLATE, CONVERTED_TEMPLATE = PIXTRAL_TEMPLATES["original"], PIXTRAL_TEMPLATES["converted"]


@pytest.fixture(scope="module")
def tekken():
    """Pixtral-12B's tokenizer (mistral-common's tekken_240911.json) as a transformers fast tokenizer (~20 s)."""
    mistral_common = pytest.importorskip("mistral_common")
    from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

    path = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    return convert_tekken_tokenizer(str(path), chat_template=CONVERTED_TEMPLATE)


@pytest.fixture(scope="module")
def processor(tekken) -> DepthLMProcessor:
    """The official preset around a Pixtral image processor with stock settings and the real tokenizer.

    `PixtralProcessor` needs torchvision, so the wrapped class is `LlavaProcessor` with Pixtral's image token.
    """
    from transformers import PixtralImageProcessor

    settings = {"patch_size": 16, "vision_feature_select_strategy": "full", "num_additional_image_tokens": 0}
    return DepthLMProcessor.from_preset(
        "official_pixtral",
        PixtralImageProcessor(patch_size=16, size={"longest_edge": 1024}),
        tekken,
        chat_template=CONVERTED_TEMPLATE,
        base_processor_class="LlavaProcessor",
        base_processor_kwargs={**settings, "image_token": "[IMG]"},
    )


def test_real_vocabulary(tekken):
    assert len(tekken) == 131_072 and tekken.bos_token == "<s>" and tekken.eos_token == "</s>"
    assert [tekken.convert_tokens_to_ids(t) for t in ("[INST]", "[/INST]", "[IMG]")] == [3, 4, 10]
    assert all(len(tekken.encode(d, add_special_tokens=False)) == 1 for d in "0123456789")


@pytest.mark.parametrize("template", [ORIGINAL_TEMPLATE, CONVERTED_TEMPLATE], ids=["original", "converted"])
def test_official_prompt_renders_in_both_pixtral_templates(processor, tekken, template):
    messages = processor.task_messages()
    text = tekken.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True)
    assert text == "<s>[INST][IMG]" + answers.OFFICIAL_QUESTION + "[/INST]"
    text_key_only = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "question"}]}]
    original = tekken.apply_chat_template(text_key_only, chat_template=ORIGINAL_TEMPLATE, tokenize=False)
    assert original == "<s>[INST][IMG][/INST]"  # why the text item also carries `content`: else it vanishes


def test_training_answer_and_forced_prefix_on_the_real_vocabulary(processor, tekken):
    answer = processor.format_answer(3.14)
    assert answer == "<think> The point is around 3.14 meters away from the camera. </think>\n\n<answer> 3.14 </answer>"
    assert tekken.decode(tekken.encode(answer, add_special_tokens=False)) == answer
    prefix = processor.forced_prefix()
    assert prefix == "<think> The point is around "  # tekken splits "around" + " " + "3": the space stays forced
    prompt = tekken.apply_chat_template(processor.task_messages(), tokenize=False, add_generation_prompt=True)
    forced = tekken.encode(prompt + prefix, add_special_tokens=False)
    trained = tekken.encode(prompt + answer, add_special_tokens=False)
    assert trained[: len(forced)] == forced
    assert tekken.decode(trained[len(forced) :]) == answer.removeprefix(prefix)


def test_number_token_classes_and_parsing_on_the_real_vocabulary(processor, tekken):
    classes = TokenClasses(tekken)
    assert classes.numeric.shape == (131_072,)
    digits = [tekken.convert_tokens_to_ids(d) for d in "0123456789"]
    assert all(classes.has("numeric", d) and classes.has("digit", d) for d in digits)
    assert classes.has("decimal_point", tekken.convert_tokens_to_ids("."))
    assert not any(classes.has("numeric", t) for t in tekken.all_special_ids)
    generated = tekken.encode("3.14 meters away from the camera. </think>", add_special_tokens=False)
    end = classes.number_end(generated)
    assert tekken.decode(generated[:end]) == "3.14"
    logprobs = [-0.1] * len(generated)
    assert classes.confidence(generated[: end + 1], logprobs[: end + 1]) == pytest.approx(np.exp(-0.3))
    full = processor.format_answer(12.5)
    assert processor.parse_answer(tekken.decode(tekken.encode(full, add_special_tokens=False))) == 12.5
    assert processor.parse_answer("3.14 meters away from the camera. </think>\n\n<answer> 3.2 </answer>") == 3.2


def test_model_inputs_with_the_real_tokenizer(processor, tekken):
    """Stock longest_edge 1024 and the real vocabulary: the 857x643 unified image, 40 x 53 image tokens."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 200, (480, 640, 3), dtype=np.uint8))
    batch = processor(images=image, intrinsics=IBIMS, points=[[519, 129]], force_answer_prefix=True)
    assert batch["image_sizes"].tolist() == [[643, 857]]
    assert (batch["input_ids"] == 10).sum().item() == 40 * 53
    text = tekken.decode(batch["input_ids"][0][batch["input_ids"][0] != 10])
    assert text == "<s>[INST]" + answers.OFFICIAL_QUESTION + "[/INST]" + processor.forced_prefix()


def test_stock_pixtral_processor_with_the_real_tokenizer(tekken):
    """Where torchvision exists: the official preset around the stock `PixtralProcessor` (rows end in [IMG_BREAK])."""
    pytest.importorskip("torchvision")
    from transformers import PixtralImageProcessor

    processor = DepthLMProcessor.from_preset(
        "official_pixtral", PixtralImageProcessor(patch_size=16, size={"longest_edge": 1024}), tekken
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 200, (480, 640, 3), dtype=np.uint8))
    batch = processor(images=image, intrinsics=IBIMS, points=[[519, 129]])
    assert batch["image_sizes"].tolist() == [[643, 857]]
    ids = batch["input_ids"][0]
    assert (ids == 10).sum().item() == 40 * 53 and (ids == 12).sum().item() == 39 and (ids == 13).sum().item() == 1
    assert torch.is_tensor(batch["pixel_values"])


RELEASE_SYSTEM = "You are a helpful assistant."


def _release_rule_count(tekken, template: str, value: float = 3.14) -> int:
    """Tokens the release's `collate_fn_pixtral` labels in its own conversation, text only: every token but padding
    and `[IMG]` (its system turn, which the template drops, its user turn with the question under `text`)."""
    messages = [
        {"role": "system", "content": [{"type": "text", "text": RELEASE_SYSTEM}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": answers.OFFICIAL_QUESTION}]},
        {"role": "assistant", "content": answers.OFFICIAL_ANSWER.format(value=f"{value:.2f}")},
    ]
    text = tekken.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True)
    ids = tekken.encode(text, add_special_tokens=False)
    return sum(1 for token in ids if token not in (tekken.pad_token_id, tekken.convert_tokens_to_ids("[IMG]")))


def test_loss_mask_counts_equal_the_release_rule_on_the_real_vocabulary(processor, tekken):
    """official_pixtral rows, one iBims-1 query: 33 answer tokens (the paper's loss); under `all_but_image` 87, the
    release's count under the converted template (under the original one the release's own rows lose the question,
    whose item has no `content` key: 36)."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 200, (480, 640, 3), dtype=np.uint8))
    row = processor.training_row(image, IBIMS, [[519, 129]], 3.14)
    answer_only = AnswerOnlyCollator(processor=processor)([dict(row)])
    assert (answer_only["labels"] != -100).sum().item() == 33
    release = AnswerOnlyCollator(processor=processor, loss_on="all_but_image")([dict(row)])
    ids, labels = release["input_ids"][0], release["labels"][0]
    row_tokens = sum((ids == tekken.convert_tokens_to_ids(t)).sum().item() for t in ("[IMG_BREAK]", "[IMG_END]"))
    assert row_tokens == 0  # the LlavaProcessor stand-in writes no row tokens (PixtralProcessor: below)
    assert (
        _release_rule_count(tekken, CONVERTED_TEMPLATE) == 87 and _release_rule_count(tekken, ORIGINAL_TEMPLATE) == 36
    )
    assert (labels != -100).sum().item() == 87 + row_tokens and (ids == 10).sum().item() == 40 * 53
    assert tekken.decode(labels[labels != -100]).startswith("<s>[INST]" + answers.OFFICIAL_QUESTION + "[/INST]")


def test_release_rule_with_the_stock_pixtral_processor(tekken):
    """Where torchvision exists: with `PixtralProcessor` the labels also cover the image row tokens (the release)."""
    pytest.importorskip("torchvision")
    from transformers import PixtralImageProcessor

    processor = DepthLMProcessor.from_preset(
        "official_pixtral", PixtralImageProcessor(patch_size=16, size={"longest_edge": 1024}), tekken
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 200, (480, 640, 3), dtype=np.uint8))
    row = processor.training_row(image, IBIMS, [[519, 129]], 3.14)
    batch = AnswerOnlyCollator(processor=processor, loss_on="all_but_image")([dict(row)])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    assert (ids == 12).sum().item() + (ids == 13).sum().item() == 40  # 39 [IMG_BREAK] and one [IMG_END]
    assert (labels != -100).sum().item() == 87 + 40


def test_a_saved_real_tokenizer_with_the_release_files_is_recognised(tekken, tmp_path):
    """The release's files with Pixtral-12B's real tekken tokenizer saved by transformers: detected by content."""
    from depthlm_hf.prompting.presets import checkpoint_preset, release_mismatches

    folder = write_release_files(tmp_path / "DepthLM")
    tekken.save_pretrained(folder)  # the real tokenizer.json replaces the shape-only one
    assert release_mismatches(folder) == [] and checkpoint_preset(folder, {}) == "official_pixtral"
