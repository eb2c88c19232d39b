"""The wrapped VLM processor: resolving its class by name, and the call keywords passed through to it."""

from __future__ import annotations

import importlib
import inspect

from transformers import ProcessorMixin
from transformers.processing_utils import ProcessingKwargs


class DepthLMProcessorKwargs(ProcessingKwargs, total=False):
    """Call keywords of the wrapped processor (`text_kwargs`, `images_kwargs`, or flat) and their defaults.

    Visual-prompt queries are padded on the left (for generation) and returned as torch tensors.
    """

    _defaults = {
        "text_kwargs": {"padding": True, "padding_side": "left"},
        "common_kwargs": {"return_tensors": "pt"},
    }


def resolve_processor_class(name: str) -> type:
    """The transformers processor class `name` (or a dotted path), without a video processor argument."""
    transformers = importlib.import_module("transformers")
    cls = getattr(transformers, name, None)
    if cls is None and "." in name:
        module, _, attr = name.rpartition(".")
        cls = getattr(importlib.import_module(module), attr, None)
    if not (isinstance(cls, type) and issubclass(cls, ProcessorMixin)):
        raise ValueError(
            f"`base_processor_class` {name!r} is not a transformers processor class (e.g. 'Qwen2_5_VLProcessor', "
            f"'PixtralProcessor', 'LlavaProcessor')."
        )
    if "video_processor" not in inspect.signature(cls.__init__).parameters:
        return cls

    # transformers reads a processor's sub-processors from its __init__ signature: a subclass without the video
    # argument needs no video processor (which would need torchvision) and processes images exactly as the base.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        cls.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": __name__})
