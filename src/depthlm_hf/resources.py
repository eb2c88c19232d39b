"""Where a run's model and device come from, checked before anything is loaded, and how it is loaded.

Without these checks a missing model folder surfaces as transformers' "Repo id must use alphanumeric
chars" error, a Hub id without a network as a generic connection error after about 47 s of retries, and
`--device cuda` on a machine without CUDA as a deep torch error after the model loaded.
Every load of a checkpoint goes through :func:`no_remote_code`: a checkpoint's `auto_map` never makes
transformers import a module of the checkpoint, and no prompt on stdin can allow it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import huggingface_hub
import torch

_REPO_ID = re.compile(r"^(?![.-])[\w.-]{1,96}(?<![.-])(?:/(?![.-])[\w.-]{1,96}(?<![.-]))?$")


def check_model_source(name: str, argument: str = "model") -> str:
    """`name` when it is an existing folder or could be a Hub repo id (`name` or `namespace/name`); else a
    ValueError naming `argument` (a path that does not exist is reported as such, not as a bad repo id).

    >>> check_model_source("Qwen/Qwen2.5-VL-3B-Instruct")
    'Qwen/Qwen2.5-VL-3B-Instruct'
    >>> check_model_source("./runs/missing")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `model` './runs/missing' is not an existing folder (nor a Hugging Face Hub repo id such as ...).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`{argument}` must be a folder or a Hub repo id, got {name!r}.")
    path = Path(name).expanduser()
    if path.is_dir():
        return name
    if path.exists():
        raise ValueError(f"`{argument}` {name!r} is a file; pass the checkpoint folder that holds it.")
    if ".." in name or "--" in name or not _REPO_ID.match(name):
        raise ValueError(
            f"`{argument}` {name!r} is not an existing folder (nor a Hugging Face Hub repo id such as "
            "'Qwen/Qwen2.5-VL-3B-Instruct')."
        )
    return name


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers one request within `timeout` [s] (False in offline mode)."""
    if huggingface_hub.is_offline_mode():
        return False
    try:
        huggingface_hub.utils.get_session().head(huggingface_hub.constants.ENDPOINT, timeout=timeout)
    except Exception:  # any failure to get an answer means: not reachable now
        return False
    return True


def checkpoint_source(name: str, revision: str | None = None, argument: str = "path", timeout: float = 3.0) -> str:
    """Where to load checkpoint `name` from, decided in at most `timeout` [s]: `name` itself when it is a folder
    or the Hub answers; the local cache's snapshot folder of Hub id `name` when the Hub cannot be reached (or
    `HF_HUB_OFFLINE` is set) and the cache holds it; else a ValueError naming `argument` that says how to load
    from a local folder and with `preset=`."""
    check_model_source(name, argument)
    if Path(name).expanduser().is_dir() or hub_reachable(timeout):
        return name
    cached = huggingface_hub.try_to_load_from_cache(name, "config.json", revision=revision)
    if isinstance(cached, str):
        return str(Path(cached).parent)
    why = "HF_HUB_OFFLINE is set" if huggingface_hub.is_offline_mode() else "the Hub cannot be reached"
    folder = f"./{name.rsplit('/', 1)[-1]}"
    raise ValueError(
        f"`{argument}` {name!r} is a Hugging Face Hub id that is not in the local cache, and {why}. Download it once "
        f"where the Hub is reachable (`hf download {name} --local-dir {folder}`) and pass the local folder "
        f"(`{argument}={folder!r}`), with `preset=` ('official_pixtral' or 'paper') when the folder holds neither "
        "DepthLM settings nor the official release's files."
    )


def resolve_device(device: str | torch.device | None, argument: str = "device") -> torch.device:
    """The torch device to run on: `device`, or the first GPU when there is one, else the CPU; a ValueError
    naming `argument` for a device string torch does not know or an accelerator this machine lacks.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: `device` 'gpu' is not a torch device; use 'cpu', 'cuda', 'cuda:N' or 'mps'.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        allowed = "use 'cpu', 'cuda', 'cuda:N' or 'mps'"
        raise ValueError(f"`{argument}` {device!r} is not a torch device; {allowed}.") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index is not None and resolved.index >= count):
            raise ValueError(
                f"`{argument}` {str(device)!r} asks for a CUDA GPU but this machine has {count} visible "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); use 'cpu' or leave it unset."
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"`{argument}` 'mps' is not available on this machine; use 'cpu' or leave it unset.")
    return resolved


def no_remote_code(kwargs: Mapping[str, Any] | None = None, argument: str = "trust_remote_code") -> dict[str, Any]:
    """`kwargs` for a transformers or vLLM loader with `trust_remote_code=False`; a ValueError naming `argument`
    when it asks for True.

    Left unset, transformers *asks on stdin* whether to run the code of a checkpoint whose `auto_map` names
    its own module; answering "y" imports it. With False it never asks and never imports.

    >>> no_remote_code({"revision": "main"})
    {'revision': 'main', 'trust_remote_code': False}
    >>> no_remote_code({"trust_remote_code": True})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `trust_remote_code` True is not allowed: depthlm_hf never runs code from a checkpoint; ...
    """
    kwargs = dict(kwargs or {})
    if kwargs.get("trust_remote_code") not in (None, False):
        raise ValueError(
            f"`{argument}` {kwargs['trust_remote_code']!r} is not allowed: depthlm_hf never runs code from a "
            "checkpoint; use a checkpoint of a model class that transformers ships."
        )
    kwargs["trust_remote_code"] = False
    return kwargs


def check_output_dir(
    path: str | os.PathLike, argument: str = "output_dir", inputs: Mapping[str, str | os.PathLike | None] | None = None
) -> Path:
    """`path` as a `Path` when a run can write its outputs there, checked before any model is loaded; else a
    ValueError naming `argument` and the path.

    The folder must exist, or its nearest existing parent must be a folder (it is created when the run writes);
    a temporary file is created and removed there to prove it writable (a read-only mount refuses it even to
    root). It must not be any of `inputs` ({argument name: path}) nor lie inside one of those that are folders.

    >>> check_output_dir("/dev/null/out")
    Traceback (most recent call last):
    ...
    ValueError: `output_dir` '/dev/null/out' cannot be a folder: '/dev/null' is a file in the way.
    """
    folder = Path(path).expanduser()
    resolved = folder.resolve()
    for name, value in (inputs or {}).items():
        source = None if value is None else Path(value).expanduser().resolve()
        if source is not None and (resolved == source or (source.is_dir() and source in resolved.parents)):
            raise ValueError(
                f"`{argument}` {str(path)!r} is or lies inside `{name}` {str(value)!r}: write the outputs elsewhere."
            )
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"`{argument}` {str(path)!r} cannot be a folder: {str(existing)!r} is a file in the way.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ValueError(
            f"`{argument}` {str(path)!r} is not writable: {err.strerror or err} in {str(existing)!r}."
        ) from None
    return folder


def check_weights(path: str | os.PathLike, argument: str = "model") -> None:
    """Raise a ValueError naming `argument` and the folder when `path` is a local folder whose weights are missing,
    cut short or malformed (read from the file headers: a truncated `model.safetensors` would otherwise surface as
    a Rust error naming no folder); a Hub id passes."""
    from depthlm_hf.training.checkpoints import weights_problem

    folder = Path(path).expanduser()
    problem = weights_problem(folder) if folder.is_dir() else None
    if problem:
        raise ValueError(f"`{argument}` {str(path)!r} has no usable weights: {problem}.")
