"""`depthlm demo --fast` (what CI runs): every artifact is written and the report's figures are finite."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from plyfile import PlyData

from depthlm_hf.demo.data import DemoScenes, model_image, question, render_bank
from depthlm_hf.demo.run import FAST, DemoArguments
from depthlm_hf.demo.training import TrainingRows, constant_baselines, demo_processor
from depthlm_hf.scripts import demo

ARTIFACTS = ("report.md", "report.json", "learning_curve.png", "examples.png", "point_cloud.ply", "point_cloud.png")
FIGURES = ("model_delta1", "best_constant_delta1", "constant_2_delta1", "model_abs_rel", "parse_rate", "wall_seconds")


@pytest.fixture(scope="module")
def fast_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    report = demo.main(["--output-dir", str(out), "--fast"])
    return out, report


def test_fast_demo_writes_every_artifact(fast_report):
    out, _ = fast_report
    for name in ARTIFACTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "model" / "config.json").is_file()


def test_fast_demo_model_has_a_card_with_its_figures(fast_report):
    from huggingface_hub import ModelCard

    out, report = fast_report
    card = ModelCard.load(out / "model" / "README.md")
    assert card.text.lstrip().startswith("# model") and card.data.license == "apache-2.0"
    assert card.data.base_model is None  # a random init has no Hub base model
    figures = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert figures["delta1"] == report["model_delta1"] and figures["abs_rel"] == report["model_abs_rel"]


def test_fast_demo_report_figures_are_finite(fast_report):
    out, report = fast_report
    saved = json.loads((out / "report.json").read_text())
    for key in FIGURES:
        assert isinstance(saved[key], float) and math.isfinite(saved[key]), key
        assert saved[key] == pytest.approx(report[key])
    for key in ("model_delta1", "best_constant_delta1", "constant_2_delta1", "parse_rate"):
        assert 0.0 <= saved[key] <= 1.0
    curve = saved["learning_curve"]
    assert [p["step"] for p in curve] == sorted(p["step"] for p in curve) and curve[-1]["step"] == FAST["max_steps"]
    assert all(math.isfinite(p[k]) for p in curve for k in ("step", "delta1", "loss", "seconds"))
    assert "delta1" in (out / "report.md").read_text()


def test_fast_demo_point_cloud_is_a_ply_of_finite_points(fast_report):
    out, _ = fast_report
    vertices = PlyData.read(str(out / "point_cloud.ply"))["vertex"]
    xyz = np.stack([vertices["x"], vertices["y"], vertices["z"]], -1)
    assert np.isfinite(xyz).all()


def test_ablation_must_be_known():
    with pytest.raises(ValueError, match="`ablation`"):
        DemoArguments(ablation="colour")


def test_modes_ask_about_the_same_points():
    spec = DemoScenes()
    processor = demo_processor(
        spec.width, spec.height, spec.unified_focal, {"shape": "arrow", "size": 8, "thickness": 2}
    )
    banks = {mode: render_bank(spec, processor, 3, 2, seed=7, mode=mode) for mode in ("full", "focal", "marker")}
    for bank in banks.values():
        np.testing.assert_array_equal(bank.distance, banks["full"].distance)
        assert bank.canvas.shape == (3, 2 * spec.height, 2 * spec.width, 3)
    assert ((banks["full"].distance >= spec.distance[0]) & (banks["full"].distance <= spec.distance[1])).all()
    # Full method (default crop="query"): the window is centred on the query, the arrow at its centre.
    image = np.asarray(model_image(banks["full"], 0, 0, "full", processor.marker_style))
    assert image.shape == (spec.height, spec.width, 3)
    assert tuple(image[spec.height // 2, spec.width // 2 - 1]) == (255, 0, 0)
    # crop="principal" (the paper's): the window is centred on the principal point, the arrow on the query.
    paper_bank = render_bank(replace(spec, crop="principal"), processor, 3, 2, seed=7, mode="full")
    np.testing.assert_array_equal(paper_bank.distance, banks["full"].distance)
    paper = np.asarray(model_image(paper_bank, 0, 0, "full", processor.marker_style))
    x, y = paper_bank.points[0, 0] - np.array(paper_bank.window())
    assert tuple(paper[y, x - 1]) == (255, 0, 0)  # the arrow's shaft ends on the query pixel
    with pytest.raises(ValueError, match="`crop` must be one of principal, query"):
        DemoScenes(crop="corner")
    # Marker ablation: no arrow, the pixel is in the question.
    x, y = banks["marker"].text_points[0, 0]
    assert question(processor, banks["marker"], 0, 0, "marker").endswith(f"pixel ({x}, {y}) from the camera?")
    row = TrainingRows(banks["full"], processor, "full")[5]
    assert (
        set(row) == {"images", "prompt", "completion", "depth", "task"} and row["completion"][0]["role"] == "assistant"
    )
    assert processor.parse_answer(row["completion"][0]["content"][0]["text"]) == pytest.approx(row["depth"], abs=0.01)


def test_constant_baselines_on_known_labels():
    out = constant_baselines(np.array([1.0, 1.0, 1.0, 10.0]))
    assert out["best_constant_delta1"] == 0.75 and 0.8 < out["best_constant"] < 1.25
    assert out["constant_2_delta1"] == 0.0
