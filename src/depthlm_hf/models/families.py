"""The VLM family registry: the one place that knows a family.

Two tables:

- `SCALE_RULES`: image-processor types (checked with `isinstance`) and the `scale_rules` rule that keeps the
  unified scale through them. Processors of no listed type are classified by their settings (pixel limits with
  patch and merge sizes, or a single longest edge); anything else is refused. `scale_rule(image_processor)`
  answers; `prompting.image_scale` applies it.
- `FAMILIES`: one `Family` per transformers `model_type`: the stock processor class, the chat template's shape
  (which token ends the answer, what an image renders to), the fast paths that apply, and the tiny offline
  model's config (`depthlm_hf.models.tiny_vlm`).

Adding a family is one `Family` entry (plus a `SCALE_RULES` line if its image processor needs one) and a row in
`tests/test_families.py`; docs/families.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import transformers

from depthlm_hf.models.scale_rules import (
    FixedSize,
    LongestEdge,
    PixelLimits,
    Refused,
    ScaleRule,
    SquareTiles,
)


def _types(*names: str) -> tuple[type, ...]:
    """The transformers classes `names` that exist in this install (PIL and torchvision backends alike)."""
    found = []
    for name in names:
        try:
            cls = getattr(transformers, name)
        except (AttributeError, ImportError):  # an older transformers, or a backend that needs torchvision
            continue
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


def _both(*names: str) -> tuple[type, ...]:
    return _types(*names, *(f"{name}Pil" for name in names))


SCALE_RULES: tuple[tuple[tuple[type, ...], ScaleRule], ...] = (
    (_both("Qwen2VLImageProcessor", "Glm4vImageProcessor"), PixelLimits()),
    (_both("PixtralImageProcessor"), LongestEdge()),
    (_both("Gemma3ImageProcessor", "SiglipImageProcessor"), FixedSize()),
    (_both("Idefics3ImageProcessor", "SmolVLMImageProcessor"), SquareTiles(tile="max_image_size")),
    (_both("GotOcr2ImageProcessor"), SquareTiles(tile="size")),
    (
        _both("MllamaImageProcessor"),
        Refused(reason="its tiles are resized to an aspect-ratio canvas chosen per image; no padding keeps f*."),
    ),
)
"""Image-processor types and the rule that keeps the unified scale through them (first match wins)."""

MARKER_PATCH_TYPES: tuple[type, ...] = _types("Qwen2VLImageProcessorPil")
"""Image processors whose patch layout `prompting.marker_patches` reproduces bit for bit (Qwen2-VL's PIL one)."""


def scale_rule(image_processor: Any) -> ScaleRule:
    """The rule that keeps the unified scale through `image_processor`: by type, else by its settings.

    Settings that identify a generic family: pixel limits (`size` with `shortest_edge` and `longest_edge`,
    and `patch_size` and `merge_size`), or a single `longest_edge`. Anything else is `Refused`.
    """
    for types, rule in SCALE_RULES:
        if types and isinstance(image_processor, types):
            return rule
    size = getattr(image_processor, "size", None) or {}
    keys = {key for key in ("shortest_edge", "longest_edge", "height", "width") if _get(size, key) is not None}
    if keys == {"shortest_edge", "longest_edge"} and hasattr(image_processor, "merge_size"):
        return PixelLimits()
    if keys == {"longest_edge"} and not hasattr(image_processor, "do_image_splitting"):
        return LongestEdge()
    return Refused(
        reason="DepthLM cannot tell how it resizes images. Register it in `depthlm_hf.models.families.SCALE_RULES`, "
        "or pass `image_scale='processor'` to accept its own resize (the model then sees another focal length)."
    )


def _get(size: Any, key: str) -> Any:
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _literal(text: str) -> str:
    """`text` as a Jinja string literal.

    >>> print(_literal("it's\\n"))
    'it\\'s\\n'
    """
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


@dataclass(frozen=True)
class ChatShape:
    """The shape of a family's chat template: what surrounds each turn and what an image renders to.

    `end_of_turn` ends the assistant's answer and is the last labelled token in SFT (`AnswerOnlyCollator`).
    """

    image: str
    user: str
    user_end: str
    assistant: str
    end_of_turn: str
    after_turn: str = ""
    system: str = ""
    default_system: str | None = None
    bos: str = ""

    def template(self) -> str:
        """The Jinja chat template of this shape: system, user and assistant turns, images rendered as `self.image`,
        the assistant's text and `self.end_of_turn` inside a `{% generation %}` block (so that
        `return_assistant_tokens_mask` marks exactly the answer and its end of turn)."""
        lit = _literal
        system = ""
        if self.default_system is not None:
            default = lit(self.system + self.default_system + self.user_end)
            system = f"{{%- if messages[0]['role'] != 'system' -%}}{{{{ {default} }}}}{{%- endif -%}}"
        return (
            "{%- macro render(content) -%}"
            "{%- if content is string -%}{{ content }}{%- else -%}{%- for part in content -%}"
            f"{{%- if part['type'] == 'image' -%}}{{{{ {lit(self.image)} }}}}"
            "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
            "{%- endfor -%}{%- endif -%}"
            "{%- endmacro -%}"
            f"{{{{ {lit(self.bos)} }}}}{system}"
            "{%- for message in messages -%}"
            f"{{%- if message['role'] == 'system' -%}}{{{{ {lit(self.system)} + render(message['content']) + "
            f"{lit(self.user_end)} }}}}"
            f"{{%- elif message['role'] == 'user' -%}}{{{{ {lit(self.user)} + render(message['content']) + "
            f"{lit(self.user_end)} }}}}"
            f"{{%- else -%}}{{{{ {lit(self.assistant)} }}}}{{%- endif -%}}"
            "{% generation %}"
            f"{{%- if message['role'] == 'assistant' -%}}{{{{ render(message['content']) + {lit(self.end_of_turn)} }}}}"
            "{%- endif -%}"
            "{% endgeneration %}"
            f"{{%- if message['role'] == 'assistant' -%}}{{{{ {lit(self.after_turn)} }}}}{{%- endif -%}}"
            "{%- endfor -%}"
            f"{{%- if add_generation_prompt -%}}{{{{ {lit(self.assistant)} }}}}{{%- endif -%}}"
        )


CHATML = ChatShape(
    image="<|vision_start|><|image_pad|><|vision_end|>",
    user="<|im_start|>user\n",
    user_end="<|im_end|>\n",
    assistant="<|im_start|>assistant\n",
    end_of_turn="<|im_end|>",
    after_turn="\n",
    system="<|im_start|>system\n",
)


@dataclass(frozen=True)
class Family:
    """What the library needs to know about one VLM family (a transformers `model_type`).

    Args:
        model_type: the transformers `model_type` (config) of the family's checkpoints.
        name: a readable name for tables and errors.
        processor_class: the stock processor class of its checkpoints.
        chat: its chat template's shape (`ChatShape`).
        marker_patches: preprocess only the patches a marker changes (`prompting.marker_patches`) at inference.
        batched_vision_attention: its vision tower takes `models.vision_attention`'s batched windows.
        needs: Python modules its processor imports beyond transformers' own requirements (tests skip without).
        tiny: the tiny offline model (`TinySpec`).
    """

    model_type: str
    name: str
    processor_class: str
    chat: ChatShape
    tiny: TinySpec
    marker_patches: bool = False
    batched_vision_attention: bool = False
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class TinySpec:
    """The tiny offline model of a family (`depthlm_hf.models.tiny_vlm`).

    Args:
        image_processor: the image-processor class (the PIL one) and its tiny settings.
        token_ids: config attribute -> special token whose id it holds (e.g. `image_token_id`).
        tokenizer_attributes: tokenizer attributes the processor reads (Gemma 3's `boi_token`, ...).
        extra_tokens: other special tokens its processor or chat template writes.
        text: text-config settings beyond the shared tiny widths (e.g. Qwen's `mrope_section`).
        vision: vision-config settings beyond the shared tiny widths.
        config: top-level config settings (e.g. `mm_tokens_per_image`).
        processor_class: the processor wrapped when the stock one cannot be built here (Mistral 3's
            `PixtralProcessor` needs torchvision; a `LlavaProcessor` counts the same image tokens).
        processor_kwargs: settings of that processor (image tokens per image, patch size, ...).
    """

    image_processor: tuple[str, dict[str, Any]]
    token_ids: dict[str, str]
    tokenizer_attributes: dict[str, str] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    vision: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    extra_tokens: tuple[str, ...] = ()
    processor_class: str | None = None
    processor_kwargs: dict[str, Any] = field(default_factory=dict)


_QWEN_TOKENS = {
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
}
_QWEN2 = replace(CHATML, default_system="You are a helpful assistant.")
_QWEN_IMAGES = ("Qwen2VLImageProcessorPil", {"min_pixels": 28 * 28, "max_pixels": 224 * 168})
_MROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}}
MISTRAL = ChatShape(image="[IMG]", user="[INST]", user_end="[/INST]", assistant="", end_of_turn="</s>", bos="<s>")
_MISTRAL_TOKENS = ("[INST]", "[/INST]", "[IMG_BREAK]", "[IMG_END]")

_IDEFICS3 = ChatShape(
    image="<image>",
    user="<|im_start|>User:",
    user_end="<end_of_utterance>\n",
    assistant="Assistant:",
    end_of_turn="<end_of_utterance>",
    after_turn="\n",
    system="<|im_start|>System:",
)
_IDEFICS3_TINY = {
    "token_ids": {"image_token_id": "<image>"},
    "extra_tokens": (
        "<fake_token_around_image>",
        "<global-img>",
        *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
    ),
    "vision": {"image_size": 56, "patch_size": 14},
    "config": {"scale_factor": 2},
    "processor_kwargs": {"image_seq_len": 4},
}

FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family(
            "qwen2_vl",
            "Qwen2-VL",
            "Qwen2VLProcessor",
            _QWEN2,
            TinySpec(_QWEN_IMAGES, _QWEN_TOKENS, text=_MROPE, vision={"hidden_size": 64, "mlp_ratio": 2}),
            marker_patches=True,
        ),
        Family(
            "qwen2_5_vl",
            "Qwen2.5-VL",
            "Qwen2_5_VLProcessor",
            _QWEN2,
            TinySpec(
                _QWEN_IMAGES, _QWEN_TOKENS, text=_MROPE, vision={"window_size": 112, "fullatt_block_indexes": [1]}
            ),
            marker_patches=True,
            batched_vision_attention=True,
        ),
        Family(
            "qwen3_vl",
            "Qwen3-VL",
            "Qwen3VLProcessor",
            CHATML,
            TinySpec(
                ("Qwen2VLImageProcessorPil", {"min_pixels": 32 * 32, "max_pixels": 224 * 160, "patch_size": 16}),
                _QWEN_TOKENS,
                text={**_MROPE, "head_dim": 16},
                vision={"deepstack_visual_indexes": [0], "num_position_embeddings": 196},
            ),
        ),
        Family(
            "llava",
            "Llava (Pixtral)",
            "LlavaProcessor",
            MISTRAL,
            TinySpec(
                ("PixtralImageProcessorPil", {"size": {"longest_edge": 224}, "patch_size": 16}),
                {"image_token_index": "[IMG]"},
                extra_tokens=_MISTRAL_TOKENS,
                vision={"model_type": "pixtral", "patch_size": 16},
                text={"model_type": "mistral"},
                config={"vision_feature_select_strategy": "full", "vision_feature_layer": -1},
                processor_kwargs={
                    "patch_size": 16,
                    "vision_feature_select_strategy": "full",
                    "num_additional_image_tokens": 0,
                    "image_token": "[IMG]",
                },
            ),
        ),
        Family(
            "mistral3",
            "Mistral 3",
            "PixtralProcessor",
            MISTRAL,
            TinySpec(
                ("PixtralImageProcessorPil", {"size": {"longest_edge": 224}, "patch_size": 32}),
                {"image_token_index": "[IMG]"},
                extra_tokens=_MISTRAL_TOKENS,
                vision={"patch_size": 16},
                config={"spatial_merge_size": 2, "vision_feature_layer": -1},
                processor_class="LlavaProcessor",
                processor_kwargs={
                    "patch_size": 32,
                    "vision_feature_select_strategy": "full",
                    "num_additional_image_tokens": 0,
                    "image_token": "[IMG]",
                },
            ),
        ),
        Family(
            "gemma3",
            "Gemma 3",
            "Gemma3Processor",
            ChatShape(
                image="<start_of_image>",
                user="<start_of_turn>user\n",
                user_end="<end_of_turn>\n",
                assistant="<start_of_turn>model\n",
                end_of_turn="<end_of_turn>",
                after_turn="\n",
                system="<start_of_turn>user\n",
                bos="<bos>",
            ),
            TinySpec(
                ("Gemma3ImageProcessorPil", {"size": {"height": 112, "width": 112}}),
                {
                    "boi_token_index": "<start_of_image>",
                    "eoi_token_index": "<end_of_image>",
                    "image_token_index": "<image_soft_token>",
                },
                tokenizer_attributes={
                    "boi_token": "<start_of_image>",
                    "eoi_token": "<end_of_image>",
                    "image_token": "<image_soft_token>",
                },
                text={"head_dim": 16, "sliding_window": 64, "query_pre_attn_scalar": 16},
                vision={"image_size": 112, "patch_size": 14},
                config={"mm_tokens_per_image": 16},
                extra_tokens=("<start_of_turn>",),
                processor_kwargs={"image_seq_length": 16},
            ),
        ),
        Family(
            "idefics3",
            "Idefics3",
            "Idefics3Processor",
            _IDEFICS3,
            TinySpec(
                ("Idefics3ImageProcessorPil", {"size": {"longest_edge": 224}, "max_image_size": {"longest_edge": 56}}),
                **_IDEFICS3_TINY,
            ),
        ),
        Family(
            "smolvlm",
            "SmolVLM",
            "SmolVLMProcessor",
            _IDEFICS3,
            TinySpec(
                ("SmolVLMImageProcessorPil", {"size": {"longest_edge": 224}, "max_image_size": {"longest_edge": 56}}),
                **_IDEFICS3_TINY,
            ),
            needs=("num2words",),
        ),
        Family(
            "internvl",
            "InternVL",
            "InternVLProcessor",
            replace(CHATML, image="<IMG_CONTEXT>"),
            TinySpec(
                (
                    "GotOcr2ImageProcessorPil",
                    {"size": {"height": 56, "width": 56}, "crop_to_patches": True, "max_patches": 16},
                ),
                {"image_token_id": "<IMG_CONTEXT>"},
                tokenizer_attributes={
                    "start_image_token": "<img>",
                    "end_image_token": "</img>",
                    "context_image_token": "<IMG_CONTEXT>",
                    "video_token": "<video>",
                },
                text={"model_type": "qwen2"},
                vision={"image_size": [56, 56], "patch_size": [14, 14]},
                config={"downsample_ratio": 0.5, "vision_feature_layer": -1},
                processor_kwargs={"image_seq_length": 4},
            ),
        ),
    )
}
"""The registered families, by transformers `model_type`."""


def get_family(model_type: str) -> Family:
    """The registered family of `model_type`; `ValueError` listing the registered ones otherwise."""
    if model_type not in FAMILIES:
        raise ValueError(
            f"`model_type` {model_type!r} is not a registered VLM family. Registered: {', '.join(FAMILIES)} "
            "(docs/families.md says how to add one)."
        )
    return FAMILIES[model_type]


def family_of(processor: Any) -> Family | None:
    """The family whose stock processor class `processor` wraps (`base_processor_class`), or None."""
    name = getattr(processor, "base_processor_class", None)
    return next((family for family in FAMILIES.values() if family.processor_class == name), None)


def end_of_turn_token(processor: Any) -> str:
    """The token that ends an answer for `processor`: its family's `ChatShape.end_of_turn` if that token
    exists in the tokenizer, else the tokenizer's end-of-sequence token."""
    tokenizer = processor.tokenizer
    family = family_of(processor)
    if family is not None and family.chat.end_of_turn in tokenizer.get_vocab():
        return family.chat.end_of_turn
    return tokenizer.eos_token


def marker_patches_apply(processor: Any) -> bool:
    """Whether the marker-patch fast path reproduces `processor`'s image processor (`MARKER_PATCH_TYPES`)."""
    return bool(MARKER_PATCH_TYPES) and isinstance(getattr(processor, "image_processor", None), MARKER_PATCH_TYPES)


def batched_vision_attention(model: Any) -> bool:
    """Whether `model`'s family takes the batched vision attention (`models.vision_attention`)."""
    family = FAMILIES.get(getattr(getattr(model, "config", None), "model_type", None))
    return family is not None and family.batched_vision_attention
