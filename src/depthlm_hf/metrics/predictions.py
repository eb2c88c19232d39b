"""The predictions files of `depthlm eval`, safe to kill, resume and shard.

In one folder per dataset and task, each rank `r` of `w` appends its answers to
`predictions.rank{r}-of-{w}.jsonl`; when all ranks are done, rank 0 merges every file into `predictions.jsonl`
(one line per sample, in evaluation-set order) and removes the rank files. Rows are keyed by the sample's `id`, so
a rerun, with any number of ranks, reuses every finished sample found in any of these files. A line that a kill
cut short (no final newline) or that is not a JSON object with an `id` is ignored and its sample is asked again;
a rank cuts such a tail off its own file before appending.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from depthlm_hf.inference.ranks import Ranks
from depthlm_hf.inference.runstate import OutputError, write_atomic

MERGED = "predictions.jsonl"
PATTERN = "predictions*.jsonl"


def rank_file(folder: str | os.PathLike, ranks: Ranks) -> Path:
    """The file that rank `ranks.rank` of `ranks.world_size` appends to."""
    return Path(folder) / f"predictions.{ranks.name()}.jsonl"


def prediction_files(folder: str | os.PathLike) -> list[Path]:
    """Every predictions file of `folder` (merged and per rank), sorted by name."""
    return sorted(Path(folder).glob(PATTERN))


def parse_rows(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The complete rows of one predictions file's bytes, and how many lines were ignored.

    >>> parse_rows(b'{"id": 0, "prediction": 2.0}\\nnot json\\n{"id": 1, "predic')
    ([{'id': 0, 'prediction': 2.0}], 2)
    """
    rows, ignored = [], 0
    lines = data.split(b"\n")
    for position, line in enumerate(lines):
        if not line.strip():
            continue
        if position == len(lines) - 1:  # no newline after it: a write cut short
            ignored += 1
            continue
        try:
            row = json.loads(line)
        except ValueError:
            ignored += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("id"), int) and not isinstance(row["id"], bool):
            rows.append(row)
        else:
            ignored += 1
    return rows, ignored


def read_predictions(folder: str | os.PathLike) -> tuple[dict[int, dict[str, Any]], int]:
    """`({id: row}, ignored_lines)` over every predictions file of `folder` (a later row of an id wins)."""
    done: dict[int, dict[str, Any]] = {}
    ignored = 0
    for path in prediction_files(folder):
        rows, bad = parse_rows(path.read_bytes())
        ignored += bad
        done.update((row["id"], row) for row in rows)
    return done, ignored


def remove_predictions(folder: str | os.PathLike) -> None:
    """Delete every predictions file of `folder` (`--overwrite`)."""
    for path in prediction_files(folder):
        path.unlink(missing_ok=True)


@contextmanager
def append_rows(folder: str | os.PathLike, ranks: Ranks) -> Iterator[IO[str]]:
    """This rank's file opened for appending, after cutting off a partial last line a kill left there."""
    path = rank_file(folder, ranks)
    if path.exists():
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with open(path, "r+b") as f:
                f.truncate(end)
    with open(path, "a") as f:
        yield f


def write_rows(f: IO[str], rows: Sequence[dict[str, Any]]) -> None:
    """Append `rows` as JSON lines and flush them to the operating system.

    When the write fails (a full disk) the rows written in part are cut off again, so the file holds only
    whole rows, and the `OutputError` names the file."""
    start = os.fstat(f.fileno()).st_size
    try:
        f.write("".join(json.dumps(row) + "\n" for row in rows))
        f.flush()
    except OSError as err:
        os.truncate(f.fileno(), start)
        raise OutputError(err.errno, f"cannot write {f.name}: {err.strerror or err}") from err


def merge_predictions(folder: str | os.PathLike, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Rows of `ids` (in that order) from every file; write them to `predictions.jsonl`; drop the rank files.

    Raises `ValueError` naming the missing ids when some sample has no answer.
    """
    done, _ = read_predictions(folder)
    missing = [i for i in ids if i not in done]
    if missing:
        raise ValueError(f"{folder}: no prediction for sample ids {missing[:10]} ({len(missing)} missing).")
    rows = [done[i] for i in ids]
    write_atomic(Path(folder) / MERGED, "".join(json.dumps(row) + "\n" for row in rows))
    for path in prediction_files(folder):
        if path.name != MERGED:
            path.unlink()
    return rows
