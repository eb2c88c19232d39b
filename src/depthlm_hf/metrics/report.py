"""Reporting benchmark results: paper-style markdown tables, CSV rows and matplotlib plots.

`results` everywhere is `{dataset name: depth_metrics(...) dict}` for one model and one task. The
"Average" column is the unweighted mean over datasets, as in the paper's Table 1.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from depthlm_hf.inference.runstate import atomic_output
from depthlm_hf.metrics.functional import COUNT_NAMES, METRIC_NAMES, RATE_NAMES

LOWER_IS_BETTER = {name for name in (*METRIC_NAMES, *RATE_NAMES) if not name.startswith("delta")}
"""Errors and failure rates; the delta accuracies (shares of answers within a ratio) are the higher-is-better rest."""


def average(results: Mapping[str, Mapping[str, float]], name: str) -> float:
    """Unweighted mean of metric `name` over datasets, ignoring NaN (NaN if none).

    >>> average({"a": {"delta1": 0.5}, "b": {"delta1": 0.7}}, "delta1")
    0.6
    """
    values = [float(r[name]) for r in results.values() if not math.isnan(float(r[name]))]
    return round(sum(values) / len(values), 12) if values else math.nan


def _cell(value: float, digits: int) -> str:
    return "-" if value is None or math.isnan(float(value)) else f"{float(value):.{digits}f}"


def headline_table(
    results: Mapping[str, Mapping[str, float]], model: str, metric: str = "delta1", digits: int = 4
) -> str:
    """One row per model like the paper's Table 1: `| Model | <dataset> ... | Average |` for `metric`.

    >>> print(headline_table({"ibims1": {"delta1": 0.2819}}, "constant:2.0"))
    | Model | ibims1 | Average |
    |---|---|---|
    | constant:2.0 | 0.2819 | 0.2819 |
    """
    names = list(results)
    cells = [_cell(results[n][metric], digits) for n in names] + [_cell(average(results, metric), digits)]
    return "\n".join(
        [
            "| Model | " + " | ".join(names) + " | Average |",
            "|" + "---|" * (len(names) + 2),
            f"| {model} | " + " | ".join(cells) + " |",
        ]
    )


def metrics_table(results: Mapping[str, Mapping[str, float]], digits: int = 4) -> str:
    """Every metric (rows) for every dataset and their average (columns), as markdown."""
    names = list(results)
    lines = ["| Metric | " + " | ".join(names) + " | Average |", "|" + "---|" * (len(names) + 2)]
    for metric in (*METRIC_NAMES, *RATE_NAMES):
        arrow = " (lower is better)" if metric in LOWER_IS_BETTER else ""
        cells = [_cell(results[n][metric], digits) for n in names] + [_cell(average(results, metric), digits)]
        lines.append(f"| {metric}{arrow} | " + " | ".join(cells) + " |")
    counts = [str(int(results[n]["num_samples"])) for n in names]
    lines.append("| num_samples | " + " | ".join(counts) + f" | {sum(int(c) for c in counts)} |")
    return "\n".join(lines)


def csv_rows(model: str, task: str, results: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """Flat rows `{"model", "task", "dataset", <metrics>...}` including an "Average" row."""
    # Per-reason breakdowns (mappings) stay in results.json; a CSV cell holds one number.
    rows = [
        {"model": model, "task": task, "dataset": name, **{k: v for k, v in dict(values).items() if _scalar(v)}}
        for name, values in results.items()
    ]
    avg = {name: average(results, name) for name in (*METRIC_NAMES, *RATE_NAMES)}
    avg.update({name: sum(int(r[name]) for r in results.values()) for name in COUNT_NAMES})
    rows.append({"model": model, "task": task, "dataset": "Average", **avg})
    return rows


def _scalar(value: Any) -> bool:
    return not isinstance(value, (Mapping, list))


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write `rows` (dicts with the same keys) as CSV (atomically: `atomic_output`)."""
    if not rows:
        return
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_metric_bars(
    path: str | os.PathLike, results: Mapping[str, Mapping[str, float]], title: str, metric: str = "delta1"
) -> None:
    """A bar per dataset (and the average) of `metric`, saved as an image at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*results, "Average"]
    values = [float(results[n][metric]) for n in results] + [average(results, metric)]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    bars = ax.bar(names, np.nan_to_num(values), color=["tab:blue"] * len(results) + ["tab:gray"])
    ax.bar_label(bars, labels=[_cell(v, 3) for v in values])
    ax.set_ylim(0, 1.05 if metric.startswith("delta") else None)
    ax.set_ylabel(metric)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_predicted_vs_true(
    path: str | os.PathLike,
    predictions: Sequence[float | None],
    references: Sequence[float],
    title: str,
    unit: str = "m",
) -> None:
    """Log-log scatter of valid predictions against references, with the y = x line and the delta1 band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = np.array([np.nan if p is None else p for p in predictions], dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    ok = np.isfinite(pred) & (pred > 0)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if ok.any():
        ax.scatter(ref[ok], pred[ok], s=4, alpha=0.4, linewidths=0)
        lo = float(min(ref[ok].min(), pred[ok].min()))
        hi = float(max(ref[ok].max(), pred[ok].max()))
        line = np.geomspace(lo, hi, 50)
        ax.plot(line, line, "k-", lw=1, label="y = x")
        ax.fill_between(line, line / 1.25, line * 1.25, color="tab:green", alpha=0.15, label="delta1 band")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(loc="upper left")
    ax.set_xlabel(f"true [{unit}]")
    ax.set_ylabel(f"predicted [{unit}]")
    ax.set_title(f"{title}\n{int(ok.sum())} valid of {len(pred)}")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
