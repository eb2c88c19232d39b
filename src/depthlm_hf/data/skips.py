"""Skipped records, counted by reason, reported, and checked against a limit: bad data never passes silently.

Loaders and views count every record they leave out (:data:`~depthlm_hf.data.records.SKIP_REASONS`,
plus `unified_too_large`); `depthlm sft`, `depthlm grpo` and `depthlm eval` print these counts at the
start and the end of a run, write them to their outputs, and fail with a `ValueError` naming
`max_skipped_fraction` when a larger share of the data was skipped (a wrong image root, a broken copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depthlm_hf.data.curated import CuratedDataset
from depthlm_hf.data.records import SKIP_REASONS

DEFAULT_MAX_SKIPPED_FRACTION = 0.1
"""Largest share of skipped records (or samples) a run accepts by default."""


def skip_counts(stats: Mapping[str, int]) -> dict[str, int]:
    """The skip reasons of a loader's or view's `stats` (other keys, such as `ok`, are dropped), by name.

    >>> skip_counts({"ok": 7, "bad_json": 2, "no_point_in_crop": 3, "unreadable_image": 1})
    {'bad_json': 2, 'unreadable_image': 1}
    """
    return {reason: int(stats[reason]) for reason in sorted(stats) if reason in SKIP_REASONS and stats[reason]}


def skip_summary(total: int, skipped: Mapping[str, int]) -> dict[str, Any]:
    """`{"total", "skipped", "skipped_fraction", "reasons"}` of `total` items of which `skipped` (by reason)
    were left out.

    >>> skip_summary(10, {"bad_json": 1})
    {'total': 10, 'skipped': 1, 'skipped_fraction': 0.1, 'reasons': {'bad_json': 1}}
    """
    count = sum(skipped.values())
    return {
        "total": int(total),
        "skipped": int(count),
        "skipped_fraction": count / total if total else 0.0,
        "reasons": dict(skipped),
    }


def describe(what: str, summary: Mapping[str, Any], unit: str = "records") -> str:
    """One line for the log: how many of `what`'s items were skipped, and why.

    >>> describe("ibims1", skip_summary(100, {"unreadable_image": 2}))
    'ibims1: 2 of 100 records skipped (2.0%): unreadable_image 2'
    """
    reasons = ", ".join(f"{reason} {count}" for reason, count in summary["reasons"].items())
    share = f"{100 * summary['skipped_fraction']:.1f}%"
    line = f"{what}: {summary['skipped']} of {summary['total']} {unit} skipped ({share})"
    return f"{line}: {reasons}" if reasons else line


def check_skipped_fraction(what: str, summary: Mapping[str, Any], limit: float, unit: str = "records") -> None:
    """A ValueError naming `max_skipped_fraction` when more than `limit` of `what`'s items were skipped."""
    if summary["skipped_fraction"] > limit:
        raise ValueError(
            f"{describe(what, summary, unit)}, more than `max_skipped_fraction` = {limit}. Check the data (image "
            "root, paths, files), or raise `max_skipped_fraction` (0..1) to accept the loss."
        )


def check_limit(value: float) -> float:
    """`value` when it is a fraction in [0, 1]; else a ValueError naming `max_skipped_fraction`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"`max_skipped_fraction` must be a number in [0, 1], got {value!r}.")
    return float(value)


def scan_source(source: Any) -> dict[str, Any] | None:
    """The skip summary of a full pass over a curated dataset's records (JSON, schema, paths, that each image
    is an existing regular file; images are not decoded); None for sources that cannot hold bad records
    (synthetic scenes, lists)."""
    if not isinstance(source, CuratedDataset):
        return None
    paths = source.with_paths()
    for _ in paths:
        pass
    return skip_summary(sum(paths.stats.values()), skip_counts(paths.stats))
