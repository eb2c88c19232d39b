"""A tiny, random, fully offline Qwen2.5-VL and its `DepthLMProcessor`, shared by tests, examples, benchmarks, demo.

Nothing here touches the network: the tokenizer is trained on the spot with the `tokenizers` library (byte-level
BPE over the task sentences, digits as single tokens as in the real Qwen tokenizers), the chat template is the
Qwen2-VL one with the assistant turn in a `{% generation %}` block (so `return_assistant_tokens_mask` marks
exactly the answer and `<|im_end|>`), and the weights are random.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    PixtralImageProcessor,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessor,
)

from depthlm_hf.models.families import FAMILIES
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.tasks import text as answers

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",
    "[IMG]",
    "[IMG_BREAK]",
    "[IMG_END]",
)

CHAT_TEMPLATE = FAMILIES["qwen2_5_vl"].chat.template()
"""Qwen2-VL's chat template, written so that the assistant's text and `<|im_end|>` sit in a generation block."""


def _corpus() -> list[str]:
    lines = [" ".join(SPECIAL_TOKENS), "system user assistant You are a helpful assistant.", answers.OFFICIAL_QUESTION]
    for task in answers.TASKS.values():
        lines += [task.question, task.answer, task.question.format(time=1.25, speed=2.5)]
    lines += [answers.OFFICIAL_ANSWER.format(value=v) for v in ("0.50", "12.34")]
    lines += [f"The point is around {i}.{i % 10}{i % 7} meters away from the camera." for i in range(50)]
    lines += ["x y [ ] ( ) , : ; - + = ? ! . meters metres cm mm km seconds point points pixel at"]
    return lines


@functools.lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\d"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    return tokenizer.to_str()


def tiny_tokenizer(
    vocab_size: int = 512,
    extra_tokens: Sequence[str] = (),
    attributes: dict[str, str] | None = None,
    eos_token: str = "<|im_end|>",
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with Qwen2.5-VL's special tokens and single-digit tokens, trained offline.

    `extra_tokens` are added as special tokens after the trained vocabulary (another family's), `attributes`
    become tokenizer attributes naming special tokens (e.g. `{"boi_token": "<start_of_image>"}`).
    """
    added = [token for token in dict.fromkeys([*extra_tokens, eos_token]) if token not in SPECIAL_TOKENS]
    backend = Tokenizer.from_str(_tokenizer_json(vocab_size))
    backend.add_special_tokens(added)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,
        eos_token=eos_token,
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=[*SPECIAL_TOKENS[1:], *added],
        extra_special_tokens=dict(attributes or {}),
        model_max_length=32768,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_processor(
    min_pixels: int = 28 * 28,
    max_pixels: int = 224 * 168,
    unified_focal_length: float = 1000.0,
    vocab_size: int = 512,
    **settings,
) -> DepthLMProcessor:
    """A `DepthLMProcessor` around a Qwen2.5-VL processor with the tiny tokenizer.

    `max_pixels` caps the image size the Qwen image processor feeds the model (it resizes larger
    images down, in multiples of 28 px), which keeps CPU tests fast: the processor's `image_scale` is
    "processor" (the cap applies) unless `settings` say otherwise.
    """
    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    return DepthLMProcessor(
        image_processor=image_processor,
        tokenizer=tiny_tokenizer(vocab_size),
        chat_template=CHAT_TEMPLATE,
        unified_focal_length=unified_focal_length,
        **{"image_scale": "processor", **settings},
    )


def qwen2_5_vl_config(
    tokenizer: PreTrainedTokenizerFast, text_config: dict, vision_config: dict, tie_word_embeddings: bool = True
) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config of the given text and vision settings whose special-token ids are `tokenizer`'s."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    text_config = {
        **text_config,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=tie_word_embeddings,
    )


def tiny_qwen2_5_vl_config(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 64,
    num_layers: int = 2,
    vision_hidden_size: int = 64,
    vision_depth: int = 2,
) -> Qwen2_5_VLConfig:
    """The config of a tiny Qwen2.5-VL matching `tokenizer` (head dim 16, mrope sections summing to 8)."""
    heads = max(1, hidden_size // 16)
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(1, heads // 2),
        "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
        "tie_word_embeddings": True,
    }
    vision_config = {
        "depth": vision_depth,
        "hidden_size": vision_hidden_size,
        "intermediate_size": 2 * vision_hidden_size,
        "num_heads": max(1, vision_hidden_size // 16),
        "out_hidden_size": hidden_size,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [vision_depth - 1],
        "tokens_per_second": 2,
    }
    return qwen2_5_vl_config(tokenizer, text_config, vision_config)


def tiny_qwen2_5_vl(
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    vision_hidden_size: int = 64,
    vision_depth: int = 2,
    **processor_settings,
) -> tuple[Qwen2_5_VLForConditionalGeneration, DepthLMProcessor]:
    """A tiny random Qwen2.5-VL (about 0.4 M parameters at the defaults) and its `DepthLMProcessor`, offline.

    `processor_settings` go to `tiny_processor` (e.g. `max_pixels`, `unified_focal_length`, `marker`).
    The same `seed` gives the same weights.
    """
    processor = tiny_processor(**processor_settings)
    config = tiny_qwen2_5_vl_config(processor.tokenizer, hidden_size, num_layers, vision_hidden_size, vision_depth)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.eval()
    return model, processor


LLAVA_PROCESSOR_KWARGS = {"patch_size": 16, "vision_feature_select_strategy": "full", "num_additional_image_tokens": 0}
"""How the wrapped `LlavaProcessor` counts image tokens for a Pixtral vision tower (one per 16 px patch, no CLS)."""


def tiny_llava_pixtral(
    seed: int = 0, longest_edge: int = 224, **processor_settings
) -> tuple[LlavaForConditionalGeneration, DepthLMProcessor]:
    """A tiny random Pixtral-shaped `LlavaForConditionalGeneration` with the "official_pixtral" preset, offline.

    The official release ships its Pixtral-12B checkpoint in this architecture. `PixtralProcessor` needs
    torchvision, which has no CPU build here, so the tiny stand-in wraps `LlavaProcessor` with a Pixtral
    image processor (same image tokens per 16 px patch, without `[IMG_BREAK]` rows).
    """
    tokenizer = tiny_tokenizer()
    image_processor = PixtralImageProcessor(size={"longest_edge": longest_edge}, patch_size=16)
    template = CHAT_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<image>")
    settings = {
        "base_processor_class": "LlavaProcessor",
        "base_processor_kwargs": LLAVA_PROCESSOR_KWARGS,
        "image_scale": "processor",
    }
    processor = DepthLMProcessor.from_preset(
        "official_pixtral", image_processor, tokenizer, chat_template=template, **{**settings, **processor_settings}
    )
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = LlavaConfig(
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "head_dim": 16,
            "patch_size": 16,
            "image_size": longest_edge,
        },
        text_config={
            "model_type": "mistral",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "pad_token_id": pad,
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        },
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = pad
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.eval()
    return model, processor
