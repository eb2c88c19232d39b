"""The wrapped VLM processor: resolving its class by name, and the call keywords passed through to it."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import transformers
from transformers import ProcessorMixin
from transformers.processing_utils import ProcessingKwargs
from transformers.utils.import_utils import DummyObject

from depthlm_hf.resources import no_remote_code


class DepthLMProcessorKwargs(ProcessingKwargs, total=False):
    """Call keywords of the wrapped processor (`text_kwargs`, `images_kwargs`, or flat) and their defaults.

    Visual-prompt queries are padded on the left (for generation) and returned as torch tensors.
    """

    _defaults = {
        "text_kwargs": {"padding": True, "padding_side": "left"},
        "common_kwargs": {"return_tensors": "pt"},
    }


def stock_processor_class(name: str) -> type:
    """The transformers processor class `name`, as transformers defines it.

    `name` comes from a checkpoint's `processor_config.json`, which anyone can write: it is looked up in
    transformers' own namespace only, never imported as a dotted path, so a checkpoint cannot make the
    library import (and run) a module of its choice. A class whose backend is missing (`PixtralProcessor` without
    torchvision) raises an ImportError naming that backend.
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(
            f"`base_processor_class` must be the name of a transformers processor class (e.g. "
            f"'Qwen2_5_VLProcessor'), not a dotted path or another value; got {name!r}."
        )
    cls = getattr(transformers, name, None)
    missing = getattr(cls, "_backends", None) if isinstance(cls, DummyObject) else None
    if missing:  # transformers' placeholder for a class whose backend is not installed
        raise ImportError(
            f"`base_processor_class` {name!r} needs {' and '.join(missing)}, which is not installed here: install "
            f"it (torchvision: the build that matches your torch) to load this checkpoint's processor."
        )
    if not (isinstance(cls, type) and issubclass(cls, ProcessorMixin)):
        raise ValueError(
            f"`base_processor_class` {name!r} is not a transformers processor class (e.g. 'Qwen2_5_VLProcessor', "
            f"'PixtralProcessor', 'LlavaProcessor')."
        )
    return cls


def stock_settings(name: str, saved: dict) -> dict:
    """The settings of processor class `name` found at the top level of a stock `processor_config.json`.

    >>> stock_settings("LlavaProcessor", {"patch_size": 16, "processor_class": "LlavaProcessor"})
    {'patch_size': 16}
    """
    params = inspect.signature(stock_processor_class(name).__init__).parameters
    skip = {"self", "image_processor", "tokenizer", "video_processor", "chat_template", "kwargs"}
    return {key: value for key, value in saved.items() if key in params and key not in skip}


def _takes_video_processor(cls: type) -> bool:
    return "video_processor" in inspect.signature(cls.__init__).parameters


def video_processor_entry(name: str, image_processor: dict | None) -> dict:
    """`{"video_processor": ...}`: the `processor_config.json` entry stock loaders need for processor class `name`.

    Stock `AutoProcessor` builds every sub-processor of the class (Qwen2.5-VL's includes a video processor) and
    fails without this entry. It holds the image processor's settings under the matching video processor
    type, which is what transformers itself falls back to for folders that have no video settings.
    `{}` for classes that take no video processor.

    >>> qwen = {"image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14}
    >>> video_processor_entry("Qwen2_5_VLProcessor", qwen)
    {'video_processor': {'patch_size': 14, 'video_processor_type': 'Qwen2VLVideoProcessor'}}
    >>> video_processor_entry("LlavaProcessor", {"image_processor_type": "PixtralImageProcessor"})
    {}
    """
    if image_processor is None or not _takes_video_processor(stock_processor_class(name)):
        return {}
    entry = {key: value for key, value in image_processor.items() if key != "image_processor_type"}
    entry["video_processor_type"] = image_processor["image_processor_type"].replace("ImageProcessor", "VideoProcessor")
    return {"video_processor": entry}


def resolve_processor_class(name: str) -> type:
    """The transformers processor class `name` (see :func:`stock_processor_class`), without a video processor
    argument."""
    cls = stock_processor_class(name)
    if not _takes_video_processor(cls):
        return cls

    # transformers reads a processor's sub-processors from its __init__ signature: a subclass without the video
    # argument needs no video processor (which would need torchvision) and processes images exactly as the base.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        cls.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": __name__})


def text_turns_as_strings(conversation: list) -> list:
    """`conversation` (one list of messages, or a batch of them) with the content of every system and assistant
    turn made only of text items joined into one string; user turns (which hold the images) stay as they are.

    Some chat templates concatenate those turns to strings: both Pixtral templates render a system turn as
    `"[INST]" + system_message`, and the original one an assistant turn as `message["content"] + eos_token`.

    >>> text_turns_as_strings([{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}])
    [{'role': 'system', 'content': 'Be brief.'}]
    """
    if conversation and isinstance(conversation[0], list):
        return [text_turns_as_strings(messages) for messages in conversation]
    out = []
    for message in conversation:
        content = message.get("content")
        if message.get("role") in ("system", "assistant") and isinstance(content, list):
            if all(isinstance(item, dict) and item.get("type") == "text" for item in content):
                message = {**message, "content": "".join(item.get("text", item.get("content", "")) for item in content)}
        out.append(message)
    return out


class TemplateCompatibleMixin:
    """`apply_chat_template` that also renders under templates that need string system and assistant turns.

    A conversation is rendered as given; when the template fails on it with a `TypeError` (a list concatenated to
    a string, as both Pixtral templates do with a system turn and the original one with an assistant turn), it is
    rendered again with those turns as strings (`text_turns_as_strings`). Templates that take lists are untouched.
    """

    def apply_chat_template(self, conversation, chat_template=None, **kwargs):
        try:
            return super().apply_chat_template(conversation, chat_template, **kwargs)  # type: ignore[misc]
        except TypeError:
            strings = text_turns_as_strings(conversation)
            if strings == conversation:
                raise
            return super().apply_chat_template(strings, chat_template, **kwargs)  # type: ignore[misc]


def load_checked(cls: type, load: Callable[..., Any], path: str | os.PathLike, kwargs: dict[str, Any]) -> Any:
    """`load(path, **kwargs)` with `trust_remote_code=False` (`resources.no_remote_code`), where a ValueError or
    TypeError about a setting of `cls` read from the checkpoint (not passed in `kwargs`) also names the file it
    came from: saved settings are checked like the same arguments given in code."""
    kwargs = no_remote_code(kwargs)
    try:
        return load(path, **kwargs)
    except (ValueError, TypeError) as err:
        setting = re.match(r"`(\w+)`", str(err))
        if setting is None or setting[1] in kwargs or setting[1] not in inspect.signature(cls.__init__).parameters:
            raise
        raise type(err)(f"{err} (read from {Path(path) / 'processor_config.json'})") from None
