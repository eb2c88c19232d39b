"""Which checkpoint a run resumes from: the newest *complete* one, so a kill during a save cannot break requeues.

`Trainer` writes a checkpoint in order: the weights, then the optimizer, scheduler and RNG states, and
`trainer_state.json` last. A process killed while saving leaves a `checkpoint-N` folder without a readable
`trainer_state.json`, or with weights cut short; `transformers.trainer_utils.get_last_checkpoint` would still
pick it, and every requeue would then fail on it. :func:`checkpoint_problem` says what is wrong with a folder
(reading only file headers), :func:`last_complete_checkpoint` skips such folders with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from pathlib import Path

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_SINGLE_WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")


def _safetensors_problem(path: Path) -> str | None:
    """Why the safetensors file at `path` is cut short or malformed (None when its header and size agree)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                return f"{path.name} is truncated (header of {header_len} bytes in a {size}-byte file)"
            header = json.loads(f.read(header_len))
    except (OSError, ValueError, struct.error) as err:
        return f"{path.name} is unreadable ({type(err).__name__}: {err})"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        return f"{path.name} has {size} bytes, its header says {expected}"
    return None


def weights_problem(folder: Path) -> str | None:
    """Why the model weights in `folder` are missing, cut short or malformed (None when whole; headers only)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            return f"{index.name} is unreadable ({type(err).__name__})"
        for shard in shards:
            problem = _safetensors_problem(folder / shard)
            if problem:
                return problem
        return None
    for name in _SINGLE_WEIGHTS:
        path = folder / name
        if path.is_file():
            if name.endswith(".safetensors"):
                return _safetensors_problem(path)
            return None if path.stat().st_size > 0 else f"{name} is empty"
    if any(child.is_dir() and child.name.startswith("global_step") for child in folder.iterdir()):
        return None  # DeepSpeed keeps the weights and optimizer in its own folder, written before the state
    return "no model weights"


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why `folder` is not a complete `Trainer` checkpoint, or None when it is.

    Complete: `trainer_state.json` (written last) parses and names a step, and the weights are whole
    (every safetensors file's size matches its header; sharded weights have every shard).

    >>> checkpoint_problem("/nonexistent/checkpoint-3")
    'not a folder'
    """
    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    state = folder / "trainer_state.json"
    try:
        step = json.loads(state.read_text())["global_step"]
    except FileNotFoundError:
        return "no trainer_state.json (the save did not finish)"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"trainer_state.json is unreadable ({type(err).__name__})"
    if not isinstance(step, int):
        return f"trainer_state.json has no integer global_step (got {step!r})"
    return weights_problem(folder)


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete `checkpoint-N` folder in `output_dir` (None when there is none); each newer,
    incomplete one is skipped with a warning that names it and says what is missing."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    steps = sorted(
        ((int(match.group(1)), child) for child in output_dir.iterdir() if (match := _CHECKPOINT.match(child.name))),
        reverse=True,
    )
    for _, folder in steps:
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        logger.warning("Skipping the incomplete checkpoint %s: %s.", folder, problem)
    return None
