"""`tiny_vlm(model_type)`: a tiny random offline model of any registered family and its `DepthLMProcessor`.

The model is the family's real transformers config class at tiny widths (`FAMILIES[model_type].tiny` adds
what the family needs beyond them); the tokenizer is `models.tiny.tiny_tokenizer` (trained on the spot) with the
family's special tokens added; the chat template is the family's `ChatShape.template()`.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers
from transformers import AutoModelForImageTextToText, PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from depthlm_hf.models.families import Family, get_family
from depthlm_hf.models.tiny import tiny_tokenizer
from depthlm_hf.prompting.processing import DepthLMProcessor

TEXT_WIDTHS = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 4096,
}
"""Text-config settings of every tiny model (set where the family's text config has the key)."""

VISION_WIDTHS = {
    "hidden_size": 32,
    "embed_dim": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "depth": 2,
    "num_attention_heads": 2,
    "num_heads": 2,
    "head_dim": 16,
    "out_hidden_size": TEXT_WIDTHS["hidden_size"],
}
"""Vision-config settings of every tiny model (set where the family's vision config has the key)."""


def family_tokenizer(family: Family, vocab_size: int = 512) -> Any:
    """`tiny_tokenizer` with `family`'s special tokens added (ids after the trained vocabulary), its end of turn
    as end-of-sequence token and the tokenizer attributes its processor reads (e.g. Gemma 3's `boi_token`)."""
    spec, chat = family.tiny, family.chat
    tokens = [*spec.token_ids.values(), *spec.tokenizer_attributes.values(), *spec.extra_tokens]
    tokens += [token for token in (chat.bos, chat.end_of_turn) if token]
    return tiny_tokenizer(
        vocab_size, extra_tokens=tokens, attributes=spec.tokenizer_attributes, eos_token=chat.end_of_turn
    )


def _fill(defaults: dict[str, Any], widths: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {**{key: value for key, value in widths.items() if key in defaults}, **extra}


def tiny_config(family: Family, tokenizer: Any) -> transformers.PretrainedConfig:
    """The family's real config class at tiny widths, its special-token ids those of `tokenizer`."""
    spec = family.tiny
    config_class = CONFIG_MAPPING[family.model_type]
    defaults = config_class()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in spec.token_ids.values()}
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    text = _fill(defaults.text_config.to_dict(), TEXT_WIDTHS, spec.text)
    text.update(vocab_size=len(tokenizer), eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    vision = _fill(defaults.vision_config.to_dict(), VISION_WIDTHS, spec.vision)
    top = {name: ids[token] for name, token in spec.token_ids.items()}
    return config_class(text_config=text, vision_config=vision, **top, **spec.config)


def tiny_vlm(
    model_type: str = "qwen2_5_vl", seed: int = 0, vocab_size: int = 512, **processor_settings: Any
) -> tuple[PreTrainedModel, DepthLMProcessor]:
    """A tiny random model of the registered family `model_type` and its `DepthLMProcessor`, fully offline.

    `processor_settings` go to `DepthLMProcessor` (e.g. `unified_focal_length`, `marker`, `image_scale`; the
    default `image_scale` is "keep": the family's rule keeps the unified scale). The same `seed` gives the same
    weights. Raises `ValueError` naming `model_type` when it is not registered (`models.families.FAMILIES`).

    >>> model, processor = tiny_vlm("gemma3")  # doctest: +SKIP
    """
    family = get_family(model_type)
    spec = family.tiny
    tokenizer = family_tokenizer(family, vocab_size)
    name, settings = spec.image_processor
    image_processor = getattr(transformers, name)(**settings)
    processor = DepthLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=family.chat.template(),
        base_processor_class=spec.processor_class or family.processor_class,
        base_processor_kwargs=spec.processor_kwargs,
        **{"image_scale": "keep", **processor_settings},
    )
    config = tiny_config(family, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
        with torch.no_grad():  # Gemma 3 zero-initialises its image projection: a random model would be blind
            for weight in model.parameters():
                if weight.ndim > 1 and not weight.any():
                    weight.normal_(0.0, config.get_text_config().initializer_range)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    model.eval()
    return model, processor
