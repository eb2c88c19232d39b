"""Lazy loader for the curated DepthLM format: a jsonl file of records plus a folder of images.

The file is streamed line by line and never held in memory, so a jsonl of 16 million lines costs
no more than one of ten. Random access (`dataset[i]`) uses an index of byte offsets built on first
use (8 bytes per line). Image paths are resolved under `image_root` and refused when they leave it.
Invalid records are skipped and counted in :attr:`CuratedDataset.skipped`, or raise, as the caller
chooses with `on_error`.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from depthlm_hf.choices import check_choice
from depthlm_hf.data.records import VIEWS, InvalidRecordError, validate_record
from depthlm_hf.prompting.imaging import DEFAULT_MAX_PIXELS, load_image

OnError = Literal["skip", "raise"]

MAX_PATH_CHARS = 4096
"""Longest image path accepted in a record (the usual PATH_MAX)."""

MAX_LINE_BYTES = 64 * 2**20
"""Longest jsonl line read (64 MiB); a longer one is skipped as `line_too_long` without being held in memory."""


def resolve_image_path(relative: Any, image_root: str | os.PathLike) -> Path:
    """The absolute path of `relative` inside `image_root`; :class:`InvalidRecordError` when it escapes.

    A leading `/` is ignored (the official release joins paths that way), `..` and symbolic links
    are resolved before the check.

    >>> resolve_image_path("rgb/a.png", "/data/ibims1").as_posix()
    '/data/ibims1/rgb/a.png'
    >>> resolve_image_path("../../etc/passwd", "/data/ibims1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    depthlm_hf.data.records.InvalidRecordError: [unsafe_path] `image` '../../etc/passwd' points outside ...
    """
    if not isinstance(relative, str) or not relative.strip("/ ") or len(relative) > MAX_PATH_CHARS:
        shown = relative[:80] + "..." if isinstance(relative, str) and len(relative) > 80 else relative
        raise InvalidRecordError(
            "bad_path", f"`image` must be a non-empty relative path of <= {MAX_PATH_CHARS} characters, got {shown!r}."
        )
    # Plain strings and os.path: this runs once per record of files with millions of lines.
    root = image_root if isinstance(image_root, _ResolvedRoot) else _ResolvedRoot(image_root)
    try:
        path = os.path.realpath(os.path.join(root, relative.lstrip("/")))
    except (OSError, ValueError) as err:  # NUL bytes, a symbolic-link loop, a name too long for the system
        raise InvalidRecordError("bad_path", f"`image` {relative[:80]!r} is not a usable path: {err}") from None
    if not path.startswith(root.prefix):
        raise InvalidRecordError("unsafe_path", f"`image` {relative!r} points outside the image root {str(root)!r}.")
    return Path(path)


class _ResolvedRoot(str):
    """An image root resolved once (symbolic links followed), with its `prefix` for containment checks."""

    def __new__(cls, root: str | os.PathLike) -> _ResolvedRoot:
        value = super().__new__(cls, os.path.realpath(root))
        value.prefix = value.rstrip(os.sep) + os.sep
        return value


class CuratedDataset:
    """Records of one curated jsonl file, streamed lazily.

    Args:
        jsonl_path: the jsonl file (one record per line, see :mod:`depthlm_hf.data.records`).
        image_root: folder that image paths are relative to; records pointing outside it are rejected.
        on_error: "skip" (count the bad record in :attr:`skipped` and go on) or "raise"
            (:class:`~depthlm_hf.data.records.InvalidRecordError` naming the line).
        decode_images: open each image while iterating (corrupt files are then caught here) and put
            the RGB PIL image in the record; with `False` records carry the checked absolute path.
        dataset: name stored in records that have none (default: the file's stem).
        max_pixels: decompression-bomb guard passed to :func:`depthlm_hf.prompting.imaging.load_image`.

    Iterating yields valid records (dicts with numpy `pixel_coords` (N, 2) [px] and `depth` (N,) [m],
    plus `index`, the 0-based record number in the file). :attr:`stats` counts `"ok"` and every
    skip reason of the last pass; :attr:`skipped` only the reasons.
    """

    def __init__(
        self,
        jsonl_path: str | os.PathLike,
        image_root: str | os.PathLike,
        on_error: OnError = "skip",
        decode_images: bool = True,
        dataset: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        check_choice("on_error", on_error, OnError)
        self.jsonl_path = Path(jsonl_path)
        if not self.jsonl_path.is_file():
            raise ValueError(f"`jsonl_path` {str(self.jsonl_path)!r} is not a file.")
        self.image_root = Path(image_root)
        if not self.image_root.is_dir():
            raise ValueError(f"`image_root` {str(self.image_root)!r} is not a folder.")
        self._root = _ResolvedRoot(self.image_root)
        self.on_error = on_error
        self.decode_images = decode_images
        self.dataset = dataset if dataset is not None else self.jsonl_path.stem
        self.max_pixels = max_pixels
        self.stats: Counter[str] = Counter()
        self._offsets: np.ndarray | None = None

    @property
    def skipped(self) -> Counter[str]:
        """Skipped records by reason (see :data:`~depthlm_hf.data.records.SKIP_REASONS`)."""
        return Counter({k: v for k, v in self.stats.items() if k != "ok"})

    def __repr__(self) -> str:
        root, path = str(self.image_root), str(self.jsonl_path)
        return f"CuratedDataset({path!r}, image_root={root!r}, on_error={self.on_error!r})"

    def with_paths(self) -> CuratedDataset:
        """A view of the same file whose records carry checked image paths instead of decoded images.

        Cheap (shares the offset index): for scans that only need coordinates and labels.
        """
        other = CuratedDataset.__new__(CuratedDataset)
        other.__dict__.update(self.__dict__, decode_images=False, stats=Counter())
        return other

    # -- streaming ----------------------------------------------------------------------------
    def _lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(record number, line) of every non-blank line; the line is None when it is too long to read."""
        index = 0
        with open(self.jsonl_path, "rb") as f:
            for _, line in _bounded_lines(f):
                if line is None or line.strip():
                    yield index, line
                    index += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.stats = Counter()
        for index, line in self._lines():
            record = self._parse_or_skip(index, line)
            if record is not None:
                yield record

    def _parse_or_skip(self, index: int, line: bytes) -> dict[str, Any] | None:
        try:
            record = self.parse(index, line)
        except InvalidRecordError as err:
            self.stats[err.reason] += 1
            if self.on_error == "raise":
                raise InvalidRecordError(err.reason, f"{self.jsonl_path}, record {index}: {err}") from None
            return None
        self.stats["ok"] += 1
        return record

    def parse(self, index: int, line: bytes | str | None) -> dict[str, Any]:
        """Validate one jsonl line (record number `index`; None: a line over :data:`MAX_LINE_BYTES`);
        raises :class:`InvalidRecordError`, whatever the line holds."""
        if line is None:
            raise InvalidRecordError("line_too_long", f"the line is longer than {MAX_LINE_BYTES} bytes.")
        try:
            raw = json.loads(line)
        # ValueError covers JSONDecodeError, bad UTF-8 and integers over Python's digit limit; deep nesting
        # exhausts the recursion limit.
        except (ValueError, RecursionError) as err:
            raise InvalidRecordError("bad_json", f"not valid JSON: {str(err)[:200]}") from None
        try:
            record = validate_record(raw)
        except InvalidRecordError:
            raise
        # Schema-shaped but hostile values (numbers beyond float range, odd nesting) end here, never in a crash.
        except (TypeError, ValueError, OverflowError, RecursionError) as err:
            raise InvalidRecordError("bad_value", f"{type(err).__name__}: {str(err)[:200]}") from None
        record["index"] = index
        record["dataset"] = record["dataset"] or self.dataset
        for key, intr_key in VIEWS:
            if key in record and record[key] is not None:
                record[key] = self._image(record[key], record[intr_key])
        return record

    def _image(self, relative: Any, intrinsics: list[float]) -> Any:
        path = resolve_image_path(relative, self._root)
        try:
            is_file = stat.S_ISREG(os.stat(path).st_mode)
        except OSError:
            raise InvalidRecordError("unreadable_image", f"`image` {str(path)!r} does not exist.") from None
        if not is_file:  # a FIFO would block the loader, a device would read forever: never opened
            raise InvalidRecordError("not_a_file", f"`image` {str(path)!r} is not a regular file.")
        if not self.decode_images:
            return str(path)
        try:
            image = load_image(path, max_pixels=self.max_pixels, exif_orientation=False)
        except ValueError as err:
            raise InvalidRecordError("unreadable_image", str(err)) from None
        if image.size != (intrinsics[4], intrinsics[5]):
            raise InvalidRecordError(
                "size_mismatch",
                f"image {str(path)!r} is {image.width}x{image.height} but its intrinsics say "
                f"{intrinsics[4]}x{intrinsics[5]}.",
            )
        return image

    # -- random access ------------------------------------------------------------------------
    def _index(self) -> np.ndarray:
        if self._offsets is None:
            with open(self.jsonl_path, "rb") as f:
                offsets = [position for position, line in _bounded_lines(f) if line is None or line.strip()]
            self._offsets = np.asarray(offsets, dtype=np.int64)
        return self._offsets

    def __len__(self) -> int:
        """Number of (non-blank) lines, valid or not; builds the offset index on first use."""
        return len(self._index())

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Record `index` (0-based line number); raises :class:`InvalidRecordError` when it is invalid.

        Random access always raises on a bad record (whatever `on_error`): the views catch it,
        count it in :attr:`stats` and draw another.
        """
        offsets = self._index()
        if not -len(offsets) <= index < len(offsets):
            raise IndexError(f"record {index} out of range for {len(offsets)} records.")
        index %= len(offsets)
        with open(self.jsonl_path, "rb") as f:
            f.seek(int(offsets[index]))
            line = next(_bounded_lines(f))[1]
        try:
            record = self.parse(index, line)
        except InvalidRecordError as err:
            self.stats[err.reason] += 1
            raise
        return record


def _bounded_lines(f: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(byte offset, line) of every line of `f` from its position; None for a line over :data:`MAX_LINE_BYTES`,
    which is read past in bounded chunks, never held whole."""
    position = f.tell()
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        start, position = position, position + len(line)
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = f.readline(MAX_LINE_BYTES)
                position += len(line)
            yield start, None
            continue
        yield start, line


def load_curated(
    jsonl_path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    on_error: OnError = "skip",
    decode_images: bool = True,
    dataset: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> CuratedDataset:
    """Open a curated jsonl lazily (see :class:`CuratedDataset`); `image_root` defaults to its folder."""
    root = Path(jsonl_path).parent if image_root is None else image_root
    return CuratedDataset(jsonl_path, root, on_error, decode_images, dataset, max_pixels)
