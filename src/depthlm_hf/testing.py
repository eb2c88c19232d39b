"""Helpers for tests and benchmarks only (production code never imports this module)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from depthlm_hf.prompting.processing import DepthLMProcessor


def flat_image(level: int, width: int = 112, height: int = 84) -> Image.Image:
    """A uniform grey RGB image of `level` (0-255): the simplest image whose content can encode an answer."""
    return Image.fromarray(np.full((height, width, 3), level, np.uint8))


def fit_answer_template(
    model,
    processor: DepthLMProcessor,
    values: Sequence[float] = (1.25, 2.5, 4.75, 8.0),
    camera: Sequence[float] = (100.0, 100.0, 56.0, 42.0, 112, 84),
    steps: int = 150,
    lr: float = 3e-3,
) -> float:
    """Plain-torch SFT until image i (grey 40 + 50 i, a marker at the centre) is answered with `values[i]` [m].

    Teaches a random tiny model the answer template and to end its turn, which tests and benchmarks of
    generation need. Loss on the answer and the end-of-turn token only. Returns the last loss.
    """
    width, height = int(camera[4]), int(camera[5])
    rows = [
        processor.training_row(flat_image(40 + 50 * i, width, height), list(camera), [[width // 2, height // 2]], v)
        for i, v in enumerate(values)
    ]
    base = processor.base_processor
    prompt = base.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    texts = [prompt + r["completion"][0]["content"][0]["text"] + processor.tokenizer.eos_token for r in rows]
    batch = base(images=[r["images"] for r in rows], text=texts, padding=True, return_tensors="pt")
    prompt_length = base(images=[rows[0]["images"]], text=[prompt], return_tensors="pt")["input_ids"].shape[1]
    labels = batch["input_ids"].clone()
    labels[:, :prompt_length] = -100
    labels[batch["attention_mask"] == 0] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return float(loss.detach())


_PIXTRAL_HEAD = (
    '{%- if messages[0]["role"] == "system" %}{%- set system_message = messages[0]["content"] %}'
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}"
    '{%- if message["role"] == "user" %}{%- if loop.last and system_message is defined %}'
    '{{- "[INST]" + system_message + "\\n\\n" }}{%- else %}{{- "[INST]" }}{%- endif %}'
)
PIXTRAL_TEMPLATES: dict[str, str] = {
    "original": _PIXTRAL_HEAD + '{%- if message["content"] is not string %}{%- for chunk in message["content"] %}'
    '{%- if chunk["type"] == "text" %}{{- chunk["content"] }}{%- elif chunk["type"] == "image" %}{{- "[IMG]" }}'
    '{%- endif %}{%- endfor %}{%- else %}{{- message["content"] }}{%- endif %}{{- "[/INST]" }}'
    '{%- elif message["role"] == "assistant" %}{{- message["content"] + eos_token }}{%- endif %}{%- endfor %}',
    "converted": _PIXTRAL_HEAD
    + '{%- endif %}{%- if message["content"] is not string %}{%- for chunk in message["content"] %}'
    '{%- if chunk["type"] == "text" %}{%- if "content" in chunk %}{{- chunk["content"] }}'
    '{%- elif "text" in chunk %}{{- chunk["text"] }}{%- endif %}{%- elif chunk["type"] == "image" %}'
    '{{- "[IMG]" }}{%- endif %}{%- endfor %}{%- else %}{{- message["content"] }}{%- endif %}'
    '{%- if message["role"] == "user" %}{{- "[/INST]" }}{%- elif message["role"] == "assistant" %}'
    "{{- eos_token }}{%- endif %}{%- endfor %}",
}
"""Pixtral-12B's two chat templates: "original", mistral-community/pixtral-12b's of 2024 (a text item renders its
`content` key; the assistant's content must be a string), and "converted", the one transformers' Pixtral conversion
writes (`content`, else `text`). Both keep a system turn only when the last message is the user's."""

RELEASE_PROCESSOR_CONFIG = {
    "processor_class": "PixtralProcessor",
    "image_token": "[IMG]",
    "image_break_token": "[IMG_BREAK]",
    "image_end_token": "[IMG_END]",
    "patch_size": 16,
    "spatial_merge_size": 1,
}
"""The `processor_config.json` of the official release's checkpoint (a stock `PixtralProcessor`)."""


def write_release_files(folder: str | Path, template: str = PIXTRAL_TEMPLATES["original"], **image_settings) -> Path:
    """Write the non-weight files of the official release's checkpoint (facebook/DepthLM) into `folder`.

    The Pixtral-12B `LlavaConfig` (131,072-token text vocabulary, `[IMG]` = id 10), a tekken-shaped
    `tokenizer.json` (1,000 special tokens, `[IMG]` at 10; entries only, no merges), the Pixtral chat template,
    the processor config and a Pixtral image processor with `do_resize` and `do_rescale` off (as the release's
    `train.py` saves it; `image_settings` override). No weights: detection reads these files only.
    """
    from transformers import LlavaConfig, PixtralImageProcessor

    folder = Path(folder)
    LlavaConfig(
        vision_config={"model_type": "pixtral", "hidden_size": 1024, "num_hidden_layers": 24, "patch_size": 16},
        text_config={"model_type": "mistral", "vocab_size": 131_072, "hidden_size": 5120, "num_hidden_layers": 40},
        image_token_index=10,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    ).save_pretrained(folder)
    names = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"]
    names += ["[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]"]
    names += [f"<SPECIAL_{i}>" for i in range(len(names), 1000)]
    tokenizer = {
        "added_tokens": [{"id": i, "content": name, "special": True} for i, name in enumerate(names)],
        "model": {
            "type": "BPE",
            "vocab": {**{n: i for i, n in enumerate(names)}, **{f"t{i}": i for i in range(1000, 131_072)}},
        },
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    (folder / "processor_config.json").write_text(json.dumps(RELEASE_PROCESSOR_CONFIG))
    settings = {"do_resize": False, "do_rescale": False, **image_settings}
    PixtralImageProcessor(patch_size=16, size={"longest_edge": 1024}, **settings).save_pretrained(folder)
    return folder
