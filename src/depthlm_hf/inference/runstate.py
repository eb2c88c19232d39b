"""What lets a long run over many inputs stop and resume safely: the identity of the model that answers, a
record of the run's settings that a rerun must match, and writes that a kill cannot leave half done.

- `model_fingerprint(model)`: the checkpoint's path, a hash of its config and processor files, and the size and
  modification time of every weights file (not a hash of gigabytes), so replaced weights at the same path count as
  another model.
- `check_run_info(path, info, overwrite)`: refuse to resume when the saved run info differs (naming the keys).
- `atomic_output(path)`: write to a temporary file beside `path`, then `os.replace` it into place; a failure
  leaves `path` as it was and raises `OutputError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
SETTINGS_FILES = (
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "chat_template.jinja",
    "chat_template.json",
)
"""Files whose content decides how a checkpoint answers, hashed whole (they are small)."""


def model_fingerprint(model: str | os.PathLike) -> dict[str, Any]:
    """The identity of a checkpoint folder (or of a Hub id / `constant:VALUE`, which is the string itself).

    Returns `{"model", "settings_sha256", "weights"}`: the resolved folder, one SHA-256 over the settings files
    present (name and content), and `[name, bytes, mtime_ns]` of each weights file.
    """
    path = Path(model)
    if not path.is_dir():
        return {"model": str(model)}
    digest = hashlib.sha256()
    for name in SETTINGS_FILES:
        file = path / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    weights = []
    for file in sorted(path.iterdir()):
        if file.suffix in WEIGHT_SUFFIXES and file.is_file():
            stat = file.stat()
            weights.append([file.name, stat.st_size, stat.st_mtime_ns])
    return {"model": str(path.resolve()), "settings_sha256": digest.hexdigest(), "weights": weights}


def json_digest(value: Any) -> str:
    """SHA-256 of `value`'s canonical JSON (sorted keys): a short name for a list of samples or settings.

    >>> json_digest({"b": 1, "a": [1.5]}) == json_digest({"a": [1.5], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def check_run_info(path: str | os.PathLike, info: Mapping[str, Any], overwrite: bool = False) -> None:
    """Raise `ValueError` when `path` holds the info of a different run (unless `overwrite`).

    `info` must be JSON-like; the comparison is on its JSON form. A missing file is a fresh run.
    """
    path = Path(path)
    if overwrite or not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    current = json.loads(json.dumps(info))
    if not isinstance(saved, dict) or saved != current:
        saved = saved if isinstance(saved, dict) else {}
        keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in keys)
        raise ValueError(
            f"{path.parent} holds the outputs of another run ({details}); pass `--overwrite` to discard them, "
            "or choose another `--output_dir`."
        )


class OutputError(OSError):
    """An output file could not be written (full disk, read-only folder); the message names the file."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` only when the block succeeds.

    The file gets the mode any new file gets (0o666 less the umask; `mkstemp` alone makes it 0o600, unreadable
    to a shared results folder's group). On any error the temporary file is removed and `path` is left as it
    was; an `OSError` (full disk, read-only folder) names `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(name, 0o666 & ~_umask())
    except OSError as err:
        raise OutputError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
    try:
        yield Path(name)
        os.replace(name, path)
    except OutputError:
        raise  # named by the atomic output it came from (several can be open at once)
    except OSError as err:
        raise OutputError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
    finally:
        if os.path.exists(name):
            os.unlink(name)


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through `atomic_output` (readers see the old file or the whole new one)."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
