"""Depth metrics: pure numpy functions and an `evaluate` module shipped inside the package.

>>> import evaluate, depthlm_hf.metrics as m  # doctest: +SKIP
>>> evaluate.load(m.metric_path()).compute(predictions=[2.0], references=[2.1])["delta1"]  # doctest: +SKIP
1.0
"""

from __future__ import annotations

from pathlib import Path

from depthlm_hf.metrics.functional import (
    COUNT_NAMES,
    METRIC_NAMES,
    RATE_NAMES,
    delta_accuracy,
    depth_metrics,
    to_metres,
)

__all__ = [
    "COUNT_NAMES",
    "METRIC_NAMES",
    "RATE_NAMES",
    "delta_accuracy",
    "depth_metrics",
    "metric_path",
    "to_metres",
]


def metric_path() -> str:
    """Folder of the `evaluate` metric module, for `evaluate.load(metric_path())` (offline).

    >>> Path(metric_path()).name
    'depthlm_depth'
    """
    return str(Path(__file__).resolve().parent / "depthlm_depth")
