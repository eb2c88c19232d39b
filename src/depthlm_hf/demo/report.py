"""Demo artifacts: learning-curve plot, held-out examples, point cloud picture, report.md / report.json."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from depthlm_hf.inference.pointcloud import PointCloud  # noqa: E402

WINDOWS = {
    "paper": "in training, principal-point crops of random size (the marker where the query is); in evaluation, the "
    "whole unified image (the paper's geometry)",
    "principal": "the unified image's window centred on the principal point, marker where the query is (the paper's)",
    "query": "the unified image's window centred on the query pixel, marker at its centre",
}
CUES = {
    "texture": "shaded checkered ground",
    "clean": "grey level = log-distance (the pixels at the marker tell the distance)",
}


def plot_learning_curve(curve: Sequence[Mapping[str, float]], constants: Mapping[str, float], path: Path) -> None:
    """delta1 on held-out scenes and the training loss against the optimizer step, with the constant baselines."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    steps = [p["step"] for p in curve]
    ax.plot(steps, [p["delta1"] for p in curve], "o-", color="tab:blue", label="model delta1")
    ax.axhline(constants["best_constant_delta1"], color="tab:gray", ls="--", label="best constant")
    ax.axhline(constants["constant_2_delta1"], color="tab:gray", ls=":", label="constant 2 m")
    ax.set(xlabel="optimizer step", ylabel="delta1 (held-out subset)", ylim=(0, 1))
    loss_ax = ax.twinx()
    loss_ax.plot(steps, [p["loss"] for p in curve], "s-", color="tab:orange", alpha=0.6, label="train loss")
    loss_ax.set_ylabel("training loss")
    lines = ax.get_legend_handles_labels()[0] + loss_ax.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + loss_ax.get_legend_handles_labels()[1]
    ax.legend(lines, labels, loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_examples(
    images: Sequence[Image.Image], truths: Sequence[float], predictions: Sequence[float | None], path: Path
) -> None:
    """A grid of held-out model images (markers drawn) titled with the true and predicted distances [m]."""
    n = len(images)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.0 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, truth, pred in zip(axes.ravel(), images, truths, predictions, strict=False):
        ax.imshow(image)
        said = "unparseable" if pred is None else f"{pred:.2f} m"
        ok = pred is not None and max(pred / truth, truth / pred) < 1.25
        ax.set_title(f"truth {truth:.2f} m\nmodel {said}", fontsize=9, color="tab:green" if ok else "tab:red")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_point_cloud(cloud: PointCloud, truth: np.ndarray, image: Image.Image, path: Path) -> None:
    """The image, and the predicted and true 3D points seen from above (x right, z forward) [m]."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    axes[0].imshow(image)
    axes[0].scatter(cloud.pixels[:, 0], cloud.pixels[:, 1], s=2, c="white")
    axes[0].set_title("queried pixels")
    axes[0].axis("off")
    ok = cloud.valid
    axes[1].scatter(truth[:, 0], truth[:, 2], s=6, c="lightgray", label="ground truth")
    axes[1].scatter(
        cloud.points[ok, 0],
        cloud.points[ok, 2],
        s=6,
        c=cloud.colors[ok] / 255.0,
        edgecolors="k",
        linewidths=0.2,
        label="model",
    )
    axes[1].set(xlabel="x [m]", ylabel="z (forward) [m]", title="point cloud, top view")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _stage_lines(report: Mapping[str, Any]) -> list[str]:
    """The localisation stage's figures, when the run had one."""
    stage = report.get("localisation")
    if not stage:
        return []
    return [
        f"Stage 1 (task `marker_row`, {stage['steps']} steps): row delta1 {stage['row_delta1']:.3f} (best constant "
        f"{stage['row_best_constant_delta1']:.3f}), {stage['wall_seconds']:.0f} s wall, {stage['cpu_seconds']:.0f} s "
        f"CPU. Stage 2 (depth, {report['depth_stage']['steps']} steps): {report['depth_stage']['wall_seconds']:.0f} s "
        f"wall, {report['depth_stage']['cpu_seconds']:.0f} s CPU.",
        "",
    ]


def write_report(output_dir: Path, report: Mapping[str, Any]) -> None:
    """`report.json` (all figures) and `report.md` (a readable summary linking the pictures)."""
    (output_dir / "report.json").write_text(json.dumps(report, indent=2))
    rows = [
        ("model", report["model_delta1"], report["model_abs_rel"], report["parse_rate"]),
        (f"best constant ({report['best_constant']:.2f} m)", report["best_constant_delta1"], None, 1.0),
        ("constant 2 m", report["constant_2_delta1"], None, 1.0),
    ]
    lines = [
        f"# depthlm demo report ({report['mode']})",
        "",
        report["description"],
        "",
        f"Held-out scenes: {report['num_eval']} (one query each). Training: {report['max_steps']} steps x "
        f"{report['batch_size']} queries from {report['num_train_scenes']} scenes. Wall time: "
        f"{report['wall_seconds']:.0f} s, process CPU time: {report['cpu_seconds']:.0f} s (the measure when the "
        f"cores are shared) on {report['machine']}.",
        "",
        *_stage_lines(report),
        f"Model window: {WINDOWS[report['scenes']['crop']]}; scenes: {CUES[report['scenes']['cue']]}.",
        "",
        "| predictor | delta1 | AbsRel | parse rate |",
        "|---|---|---|---|",
    ]
    for name, d1, absrel, parse in rows:
        lines.append(f"| {name} | {d1:.3f} | {'-' if absrel is None else f'{absrel:.3f}'} | {parse:.3f} |")
    lines += [
        "",
        f"Learning bar (delta1 >= 0.5 and >= 2x the best constant): **{'met' if report['bar_met'] else 'not met'}**.",
        "",
        "![learning curve](learning_curve.png)",
        "",
        "![held-out examples](examples.png)",
        "",
        "![point cloud](point_cloud.png)",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    (output_dir / "report.md").write_text("\n".join(lines))
