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

pytestmark = pytest.mark.slow

IBIMS = [559.62, 558.14, 361.87, 241.99, 640, 480]

_HEAD = (
    '{%- if messages[0]["role"] == "system" %}{%- set system_message = messages[0]["content"] %}'
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}"
    '{%- if message["role"] == "user" %}{%- if loop.last and system_message is defined %}'
    '{{- "[INST]" + system_message + "\\n\\n" }}{%- else %}{{- "[INST]" }}{%- endif %}'
)
ORIGINAL_TEMPLATE = (
    _HEAD + '{%- if message["content"] is not string %}{%- for chunk in message["content"] %}'
    '{%- if chunk["type"] == "text" %}{{- chunk["content"] }}{%- elif chunk["type"] == "image" %}{{- "[IMG]" }}'
    '{%- endif %}{%- endfor %}{%- else %}{{- message["content"] }}{%- endif %}{{- "[/INST]" }}'
    '{%- elif message["role"] == "assistant" %}{{- message["content"] + eos_token }}{%- endif %}{%- endfor %}'
)
CONVERTED_TEMPLATE = (
    _HEAD + '{%- endif %}{%- if message["content"] is not string %}{%- for chunk in message["content"] %}'
    '{%- if chunk["type"] == "text" %}{%- if "content" in chunk %}{{- chunk["content"] }}'
    '{%- elif "text" in chunk %}{{- chunk["text"] }}{%- endif %}{%- elif chunk["type"] == "image" %}'
    '{{- "[IMG]" }}{%- endif %}{%- endfor %}{%- else %}{{- message["content"] }}{%- endif %}'
    '{%- if message["role"] == "user" %}{{- "[/INST]" }}{%- elif message["role"] == "assistant" %}'
    "{{- eos_token }}{%- endif %}{%- endfor %}"
)


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
