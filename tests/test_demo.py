"""`depthlm demo --fast` (what CI runs, once per module): every artifact is written, the report's figures are
finite, and the saved checkpoint reproduces them through the public predictor."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from plyfile import PlyData

from depthlm_hf.demo.data import (
    DemoScenes,
    clean_image,
    model_image,
    model_window,
    predictor_queries,
    predictor_rows,
    question,
    render_bank,
    window_markable,
)
from depthlm_hf.demo.learning import TrainingRows, constant_baselines, demo_processor
from depthlm_hf.demo.run import FAST, DemoArguments, held_out_scenes
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.metrics.functional import depth_metrics
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
    assert (
        saved["scenes"]["crop"] == "query"
        and "Model window: the unified image's window centred on the query pixel" in (out / "report.md").read_text()
    )


def test_fast_demo_point_cloud_is_a_ply_of_finite_points(fast_report):
    out, _ = fast_report
    vertices = PlyData.read(str(out / "point_cloud.ply"))["vertex"]
    xyz = np.stack([vertices["x"], vertices["y"], vertices["z"]], -1)
    assert np.isfinite(xyz).all()


def test_saved_checkpoint_reproduces_the_report_through_the_public_predictor(fast_report):
    out, report = fast_report
    predictor = DepthLMPredictor.from_pretrained(out / "model")
    bank = held_out_scenes(DemoArguments(**report["arguments"]), predictor.processor)
    assert constant_baselines(bank.distance[:, 0])["best_constant_delta1"] == report["best_constant_delta1"]
    f = predictor.processor.unified_focal_length
    answers = predictor.predict_batch(predictor_queries(bank, [(s, 0) for s in range(FAST["eval_scenes"])], "full", f))
    metrics = depth_metrics(answers.values, bank.distance[:, 0])
    assert metrics == report["metrics"]


def test_predictor_sees_the_model_images(fast_report):
    """The windows and cameras given to the predictor make its processor draw exactly the training images."""
    out, _ = fast_report
    predictor = DepthLMPredictor.from_pretrained(out / "model")
    processor, spec = predictor.processor, DemoScenes()
    pairs = [(0, 0), (0, 1), (1, 0)]
    for crop in ("query", "principal"):
        for mode in ("full", "focal"):
            bank = render_bank(replace(spec, crop=crop), processor, 2, 2, seed=3, mode=mode)
            inputs = predictor_queries(bank, pairs, mode, processor.unified_focal_length)
            assert len(inputs) == (2 if crop == "principal" else 3)  # one window per scene in the paper's crop
            prepared = predictor.preprocess(*(list(part) for part in zip(*inputs, strict=True)))
            for seen, (s, p) in zip(prepared.marked_images(), pairs, strict=True):
                expected = model_image(bank, s, p, mode, processor.marker_style)
                np.testing.assert_array_equal(np.asarray(seen), np.asarray(expected))
    with pytest.raises(ValueError, match="`mode` 'marker'"):
        predictor_queries(bank, pairs, "marker", processor.unified_focal_length)
    marker_bank = render_bank(spec, processor, 2, 2, seed=3, mode="marker")
    rows = predictor_rows(processor, marker_bank, pairs)
    x, y = marker_bank.text_points[1, 0]
    assert rows[2]["prompt"][-1]["content"][-1]["text"].endswith(f"pixel ({x}, {y}) from the camera?")
    np.testing.assert_array_equal(
        np.asarray(rows[2]["images"][0]), np.asarray(model_image(marker_bank, 1, 0, "marker", processor.marker_style))
    )


def test_window_markable_is_the_processor_rule_on_the_principal_window():
    spec = DemoScenes()
    w, h = spec.width, spec.height
    processor = demo_processor(w, h, spec.unified_focal, {"shape": "arrow", "size": 8, "thickness": 2})
    mask = window_markable(processor, w, h)
    assert mask.shape == (2 * h, 2 * w)
    # The arrow (shaft 8 px, thickness 2) needs 9 px left of its tip, 5 above and below, 1 to the right:
    # inside the window at (w // 2, h // 2), exactly the pixels with that much room are markable.
    expected = np.zeros_like(mask)
    expected[h // 2 + 5 : h // 2 + h - 5, w // 2 + 9 : w // 2 + w - 1] = True
    assert processor.marker_style.extent == (9, 5, 1, 5)
    np.testing.assert_array_equal(mask, expected)


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


def test_clean_cue_writes_the_distance_in_the_grey_level_at_the_query():
    spec = DemoScenes(crop="principal", cue="clean")
    processor = demo_processor(spec.width, spec.height, spec.unified_focal, {"shape": "circle", "size": 6})
    bank = render_bank(spec, processor, 3, 4, seed=5, mode="full")
    for scene in range(3):
        for point in range(4):
            window, (left, top) = model_window(bank, scene, point, "full")
            x, y = bank.points[scene, point] - [left, top]
            expected = clean_image(bank.distance[scene, point], spec.distance)
            assert abs(int(np.asarray(window)[y, x, 0]) - int(expected[0])) <= 3  # after the bicubic unification
    with pytest.raises(ValueError, match="`cue` must be one of texture, clean"):
        DemoScenes(cue="fog")


def test_constant_baselines_on_known_labels():
    out = constant_baselines(np.array([1.0, 1.0, 1.0, 10.0]))
    assert out["best_constant_delta1"] == 0.75 and 0.8 < out["best_constant"] < 1.25
    assert out["constant_2_delta1"] == 0.0
