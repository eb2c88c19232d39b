"""Depth metrics as pure numpy functions: delta thresholds, AbsRel, SqRel, RMSE, RMSE-log, log10, SILog.

How predictions that are not a usable depth enter the metrics (the policy of every function here):

- A prediction is *valid* when it is a finite number > 0 [m]. `None` (an answer that did not parse),
  NaN, +/-inf, zero and negative values are *invalid*.
- The delta accuracies count an invalid prediction as **wrong**: `delta1 = #(valid and
  max(p/g, g/p) < 1.25) / N` over all N samples. This is the headline DepthLM figure, so a model cannot
  raise it by refusing to answer.
- The error metrics (AbsRel, SqRel, RMSE, RMSE-log, log10, SILog) are undefined for invalid
  predictions (log of zero, infinite error), so they are computed over the valid predictions only;
  `num_invalid` / `invalid_rate` and `parse_failure_rate` report how many were left out. With no
  valid prediction they are NaN.
- An empty input is an error (`ValueError`): there is nothing to score, and an all-NaN table would hide it.
- References must be finite and > 0 [m]; anything else is a dataset error and raises `ValueError`.
- `predictions` and `references` are flat sequences of the same length (a string, a bool or a nested list
  is a `TypeError`/`ValueError` naming the argument); `task` must be a registered task.

SILog follows BTS/ZoeDepth: `e = ln p - ln g`, `SILog = 100 * sqrt(mean(e^2) - mean(e)^2)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

METRIC_NAMES = (
    "delta1",
    "delta2",
    "delta3",
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
)
COUNT_NAMES = ("num_samples", "num_valid", "num_invalid", "num_unparseable")
RATE_NAMES = ("invalid_rate", "parse_failure_rate")


def to_metres(predictions: Sequence[Any], task: str = "distance") -> list[float | None]:
    """Turn predictions (numbers, `None` or raw model text) into floats [m], `None` where text does not parse.

    Text is read by `depthlm_hf.tasks.text.parse_answer(text, task)`; numbers pass through unchanged
    (NaN, inf and negative values included: :func:`depth_metrics` treats them as invalid).

    >>> to_metres([1.5, None, 2])
    [1.5, None, 2.0]
    """
    out: list[float | None] = []
    for p in predictions:
        if p is None:
            out.append(None)
        elif isinstance(p, str):
            from depthlm_hf.tasks.text import parse_answer

            value = parse_answer(p, task)
            out.append(None if value is None else float(value))
        elif isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"`predictions` must hold numbers, None or answer text, got {type(p).__name__} {p!r}.")
        else:
            out.append(float(p))
    return out


def _as_arrays(predictions: Sequence[Any], references: Sequence[float], task: str) -> tuple[np.ndarray, ...]:
    from depthlm_hf.tasks.text import get_task

    get_task(task)  # an unknown task is an error even when no answer text needs its parser
    for name, value in (("predictions", predictions), ("references", references)):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise TypeError(f"`{name}` must be a sequence of values, got {type(value).__name__} {value!r:.80}.")
    values = to_metres(predictions, task)
    try:
        refs = np.asarray(references)
        if refs.dtype == bool or not (np.issubdtype(refs.dtype, np.number) or refs.size == 0):
            raise TypeError
        refs = refs.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`references` must be numbers [m], got {list(references)[:5]!r}.") from None
    if refs.ndim != 1:
        raise ValueError(f"`references` must be a flat (N,) sequence, got shape {refs.shape}.")
    if len(values) != refs.shape[0]:
        raise ValueError(f"`predictions` has {len(values)} items and `references` {refs.shape[0]}; they must match.")
    if not values:
        raise ValueError("`predictions` and `references` are empty: there is nothing to score.")
    bad = ~(np.isfinite(refs) & (refs > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"`references` must be finite and > 0 [m]; {int(bad.sum())} are not (first: index {i}, value {refs[i]!r})."
        )
    unparseable = np.array([v is None for v in values], dtype=bool)
    preds = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return preds, refs, unparseable


def depth_metrics(
    predictions: Sequence[Any], references: Sequence[float], task: str = "distance"
) -> dict[str, float | int]:
    """All depth metrics of (N,) predictions against (N,) references [m] (see the module policy).

    Returns a dict with `delta1`, `delta2`, `delta3`, `abs_rel`, `sq_rel`, `rmse`, `rmse_log`,
    `log10`, `silog` (floats), `num_samples`, `num_valid`, `num_invalid`, `num_unparseable` (ints),
    `invalid_rate` and `parse_failure_rate` (floats in [0, 1]).

    >>> m = depth_metrics([2.0, 2.0, None, -1.0], [2.0, 4.0, 1.0, 1.0])
    >>> m["delta1"], m["abs_rel"], m["num_invalid"], m["parse_failure_rate"]
    (0.25, 0.25, 2, 0.25)
    """
    preds, refs, unparseable = _as_arrays(predictions, references, task)
    n = preds.shape[0]
    valid = np.isfinite(preds) & (preds > 0)
    out: dict[str, float | int] = {
        "num_samples": n,
        "num_valid": int(valid.sum()),
        "num_invalid": int(n - valid.sum()),
        "num_unparseable": int(unparseable.sum()),
        "invalid_rate": float(n - valid.sum()) / n,
        "parse_failure_rate": float(unparseable.sum()) / n,
    }
    p, g = preds[valid], refs[valid]
    ratio = np.maximum(p / g, g / p)
    for k in (1, 2, 3):
        out[f"delta{k}"] = float((ratio < 1.25**k).sum()) / n
    if p.size == 0:
        out.update({name: math.nan for name in METRIC_NAMES[3:]})
        return {key: out[key] for key in (*METRIC_NAMES, *COUNT_NAMES, *RATE_NAMES)}
    err = p - g
    log_err = np.log(p / g)  # one rounding: equal ratios give equal log ratios
    out["abs_rel"] = float(np.mean(np.abs(err) / g))
    out["sq_rel"] = float(np.mean(err**2 / g))
    out["rmse"] = float(np.sqrt(np.mean(err**2)))
    out["rmse_log"] = float(np.sqrt(np.mean(log_err**2)))
    out["log10"] = float(np.mean(np.abs(np.log10(p) - np.log10(g))))
    # SILog = 100 sqrt(E[d^2] - E[d]^2), d the log ratio, computed as the variance of d shifted by its first value:
    # the same number, without the cancellation of E[d^2] - E[d]^2 (a constant ratio gives exactly 0).
    shifted = log_err - log_err[0]
    out["silog"] = float(100.0 * np.sqrt(np.mean((shifted - shifted.mean()) ** 2)))
    return {key: out[key] for key in (*METRIC_NAMES, *COUNT_NAMES, *RATE_NAMES)}


def delta_accuracy(
    predictions: Sequence[Any], references: Sequence[float], threshold: float = 1.25, task: str = "distance"
) -> float:
    """Fraction of all N samples with a valid prediction and `max(p/g, g/p) < threshold`.

    >>> delta_accuracy([2.0] * 4, [1.0, 1.7, 2.4, 3.0])
    0.5
    """
    preds, refs, _ = _as_arrays(predictions, references, task)
    valid = np.isfinite(preds) & (preds > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.maximum(preds / refs, refs / preds)
    return float((valid & (ratio < threshold)).sum()) / preds.size


def release_delta1(predictions: Sequence[float | None], references: Sequence[float]) -> float:
    """delta1 as the official release scores it (`utils/metrics.py::delta1_metric`): a sample is a hit when
    `max(p/g, g/p) < 1.25`, so a **negative** prediction is a hit (both ratios are negative), while `None` and
    0 (a division by zero) are misses. `depth_metrics` counts negative predictions as misses instead.

    >>> release_delta1([-3.14, 3.0, None, 0.0, 4.0], [3.14, 3.14, 3.14, 3.14, 3.14])
    0.4
    """
    if len(predictions) != len(references) or not references:
        raise ValueError(f"`predictions` ({len(predictions)}) and `references` ({len(references)}) must match, > 0.")
    hits = 0
    for p, g in zip(predictions, references, strict=True):
        if p is not None and p != 0:
            hits += max(p / g, g / p) < 1.25
    return hits / len(references)
