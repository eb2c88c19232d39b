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
    processor_window,
    question,
    render_bank,
    window_markable,
)
from depthlm_hf.demo.learning import LocalisationRows, TrainingRows, constant_baselines, demo_processor
from depthlm_hf.demo.run import FAST, DemoArguments, held_out_scenes
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.metrics.functional import depth_metrics
from depthlm_hf.prompting.processing import DepthLMProcessor
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
        saved["scenes"]["crop"] == "paper"
        and "the whole unified image (the paper's geometry)" in (out / "report.md").read_text()
    )
    # Both stages ran and say how long they took, in wall and process CPU seconds.
    stage1 = saved["localisation"]
    assert stage1["steps"] == FAST["localisation_steps"] and stage1["learning_curve"][-1]["step"] == 30
    assert 0.0 <= stage1["row_delta1"] <= 1.0 and 0.0 <= stage1["row_best_constant_delta1"] <= 1.0
    for figures in (stage1, saved["depth_stage"], saved):
        assert figures["wall_seconds"] > 0 and 0 < figures["cpu_seconds"], figures
    assert (out / "localisation" / "config.json").is_file()
    text = (out / "report.md").read_text()
    assert f"process CPU time: {saved['cpu_seconds']:.0f} s" in text and "Stage 1 (task `marker_row`, 30 steps)" in text


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


def test_eval_predict_and_the_report_agree_on_the_held_out_canvases(fast_report, tmp_path):
    """The held-out scenes the demo writes (whole canvases, curated format) give, through `depthlm eval` and
    `depthlm predict`, the very answers of the demo's report, query by query."""
    from depthlm_hf.scripts import eval as eval_script
    from depthlm_hf.scripts import predict as predict_script

    out, report = fast_report
    jsonl = out / "heldout" / "heldout.jsonl"
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == FAST["eval_scenes"] and all(len(r["pixel_coords"]) == 1 for r in records)
    results = eval_script.main(
        ["--model", str(out / "model"), "--data", f"demo={jsonl}", "--num_samples", "all"]
        + ["--output_dir", str(tmp_path / "eval"), "--plots", "false", "--device", "cpu"]
    )
    rows = [json.loads(line) for line in (tmp_path / "eval" / "demo" / "distance" / "predictions.jsonl").open()]
    by_scene = {int(records[r["record_index"]]["scene"]): r["prediction"] for r in rows}
    assert by_scene == dict(enumerate(report["predictions"]))
    assert results["distance"]["demo"]["delta1"] == report["model_delta1"]
    scene = next(s for s, v in enumerate(report["predictions"]) if v is not None)
    record = records[scene]
    x, y = (int(v) for v in record["pixel_coords"][0])
    answer = predict_script.main(
        ["--model", str(out / "model"), "--image", str(jsonl.parent / record["image"]), "--points", f"{x},{y}"]
        + ["--intrinsics", *map(str, record["intrinsics"]), "--output_dir", str(tmp_path / "predict")]
        + ["--device", "cpu"]
    )
    assert answer["points"][0]["value"] == report["predictions"][scene]


def test_predictor_sees_the_model_images(fast_report):
    """Given whole canvases, the predictor, through the processor's saved `window`, feeds exactly the images the
    model was evaluated on in training's geometry: the whole canvas (paper), or the window it was trained on."""
    out, _ = fast_report
    predictor = DepthLMPredictor.from_pretrained(out / "model")
    processor, spec = predictor.processor, DemoScenes()
    assert processor.window is None  # the paper's geometry: the whole unified image
    pairs = [(0, 0), (0, 1), (1, 0)]
    for crop in ("paper", "query", "principal"):
        for mode in ("full", "focal"):
            processor.window = processor_window(crop, mode, (spec.width, spec.height))
            bank = render_bank(replace(spec, crop=crop), processor, 2, 2, seed=3, mode=mode)
            inputs = predictor_queries(bank, pairs, mode, processor.unified_focal_length)
            assert len(inputs) == 2 and inputs[0][0].size == (2 * spec.width, 2 * spec.height)  # canvases
            prepared = predictor.preprocess(*(list(part) for part in zip(*inputs, strict=True)))
            for seen, (s, p) in zip(prepared.marked_images(), pairs, strict=True):
                expected = model_image(bank, s, p, mode, processor.marker_style)
                np.testing.assert_array_equal(np.asarray(seen), np.asarray(expected))
    with pytest.raises(ValueError, match="`mode` 'marker'"):
        predictor_queries(bank, pairs, "marker", processor.unified_focal_length)
    marker_bank = render_bank(spec, processor, 2, 2, seed=3, mode="marker")
    rows = predictor_rows(processor, marker_bank, pairs)
    x, y = marker_bank.points[1, 0]  # the whole canvas: its own pixel coordinates
    assert rows[2]["prompt"][-1]["content"][-1]["text"].endswith(f"pixel ({x}, {y}) from the camera?")
    np.testing.assert_array_equal(
        np.asarray(rows[2]["images"][0]), np.asarray(model_image(marker_bank, 1, 0, "marker", processor.marker_style))
    )


def test_query_ablation_saves_its_window_and_skips_stage_one(tmp_path):
    args = DemoArguments(ablation="query")
    assert (args.crop, args.localisation_steps, args.mode) == ("query", 0, "full")
    assert DemoArguments(ablation="marker").localisation_steps == 0 and DemoArguments().localisation_steps > 0
    spec = DemoScenes()
    window = processor_window(args.crop, args.mode, (spec.width, spec.height))
    demo_processor(spec.width, spec.height, spec.unified_focal, {"shape": "arrow"}, window=window).save_pretrained(
        tmp_path
    )
    assert DepthLMProcessor.from_pretrained(tmp_path).window == {"centre": "query", "width": 112, "height": 84}


def test_training_rows_of_both_stages():
    spec = DemoScenes()
    processor = demo_processor(spec.width, spec.height, spec.unified_focal, {"shape": "arrow"})
    bank = render_bank(spec, processor, 3, 4, seed=2)
    sizes = {TrainingRows(bank, processor, "full").draw(i)[2] for i in range(200)}
    assert sizes == set(bank.training_sizes())  # the paper's crop: every random size is drawn
    depth_row = TrainingRows(bank, processor, "full")[7]
    scene, point, size = TrainingRows(bank, processor, "full").draw(7)
    assert depth_row["images"][0].size == size and depth_row["depth"] == bank.distance[scene, point]
    row = LocalisationRows(bank, processor, "full")[7]
    assert row["task"] == "marker_row" and row["images"][0].size == (spec.width, spec.height)
    assert row["prompt"] == processor.task_messages("marker_row")
    expected = (bank.points[scene, point, 1] - spec.height // 2) / 10  # the row in the 112x84 principal window
    assert row["depth"] == expected
    assert processor.parse_answer(row["completion"][0]["content"][0]["text"], "marker_row") == round(expected, 2)


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
    with pytest.raises(ValueError, match="`ablation` must be one of focal, marker, query"):
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
    # Full method (default crop="paper"): the whole canvas in evaluation, the arrow on the query.
    image = np.asarray(model_image(banks["full"], 0, 0, "full", processor.marker_style))
    x, y = banks["full"].points[0, 0]
    assert image.shape == (2 * spec.height, 2 * spec.width, 3) and tuple(image[y, x - 1]) == (255, 0, 0)
    # crop="query": the window is centred on the query, the arrow at its centre.
    query_bank = render_bank(replace(spec, crop="query"), processor, 3, 2, seed=7, mode="full")
    image = np.asarray(model_image(query_bank, 0, 0, "full", processor.marker_style))
    assert image.shape == (spec.height, spec.width, 3)
    assert tuple(image[spec.height // 2, spec.width // 2 - 1]) == (255, 0, 0)
    # crop="principal" (the paper's): the window is centred on the principal point, the arrow on the query.
    paper_bank = render_bank(replace(spec, crop="principal"), processor, 3, 2, seed=7, mode="full")
    np.testing.assert_array_equal(paper_bank.distance, banks["full"].distance)
    paper = np.asarray(model_image(paper_bank, 0, 0, "full", processor.marker_style))
    x, y = paper_bank.points[0, 0] - np.array(paper_bank.window())
    assert tuple(paper[y, x - 1]) == (255, 0, 0)  # the arrow's shaft ends on the query pixel
    with pytest.raises(ValueError, match="`crop` must be one of paper, principal, query"):
        DemoScenes(crop="corner")
    # Marker ablation: no arrow, the pixel is in the question, in the coordinates of the window shown.
    x, y = banks["marker"].points[0, 0] - np.array([56, 42])
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
