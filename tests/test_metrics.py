"""Depth metrics: the pure functions and the `evaluate` module against an independent numpy reference.

Reference maths (written out here, independently of the package):
  valid = finite and > 0; delta_k = #(valid & max(p/g, g/p) < 1.25^k) / N over all N samples;
  the error metrics over the valid samples only; SILog = 100 * sqrt(mean(e^2) - mean(e)^2), e = ln p - ln g.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depthlm_hf.metrics import delta_accuracy, depth_metrics, metric_path, to_metres


def reference_metrics(pred, gt):
    pred = np.array([np.nan if p is None else p for p in pred], dtype=float)
    gt = np.asarray(gt, dtype=float)
    n = len(gt)
    ok = np.isfinite(pred) & (pred > 0)
    p, g = pred[ok], gt[ok]
    out = {}
    for k, thr in ((1, 1.25), (2, 1.5625), (3, 1.953125)):
        hits = sum(1 for a, b in zip(p, g, strict=True) if max(a / b, b / a) < thr)
        out[f"delta{k}"] = hits / n if n else math.nan
    if len(p) == 0:
        for name in ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"):
            out[name] = math.nan
        return out
    out["abs_rel"] = np.sum(np.abs(p - g) / g) / len(p)
    out["sq_rel"] = np.sum((p - g) ** 2 / g) / len(p)
    out["rmse"] = math.sqrt(np.sum((p - g) ** 2) / len(p))
    out["rmse_log"] = math.sqrt(np.sum((np.log(p) - np.log(g)) ** 2) / len(p))
    out["log10"] = np.sum(np.abs(np.log(p) / np.log(10) - np.log(g) / np.log(10))) / len(p)
    e = np.log(p / g)
    var = np.var(e)  # population variance = mean(e^2) - mean(e)^2
    out["silog"] = 100 * math.sqrt(var)
    return out


def assert_matches(got, want):
    for key, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.fixture(scope="module")
def metric(tmp_path_factory):
    os.environ["HF_HOME"] = str(tmp_path_factory.mktemp("hf_home"))
    import evaluate

    return evaluate.load(metric_path())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_data_matches_reference(seed):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.3, 30.0, size=500)
    pred = gt * np.exp(rng.normal(0, 0.4, size=500))
    got = depth_metrics(pred.tolist(), gt.tolist())
    assert_matches(got, reference_metrics(pred.tolist(), gt))
    assert got["num_valid"] == 500 and got["invalid_rate"] == 0.0


def test_edge_cases_zero_negative_nan_inf_none():
    pred = [0.0, -1.0, math.nan, math.inf, -math.inf, None, 2.0, 3.1]
    gt = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.2, 3.0]
    got = depth_metrics(pred, gt)
    assert_matches(got, reference_metrics(pred, gt))
    assert got["delta1"] == 2 / 8
    assert (got["num_samples"], got["num_valid"], got["num_invalid"], got["num_unparseable"]) == (8, 2, 6, 1)
    assert got["parse_failure_rate"] == 1 / 8 and got["invalid_rate"] == 6 / 8


def test_bad_metric_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="`predictions` and `references` are empty"):
        depth_metrics([], [])
    with pytest.raises(ValueError, match="`predictions` and `references` are empty"):
        delta_accuracy([], [])
    with pytest.raises(ValueError, match="`predictions` has 0 items and `references` 2"):
        depth_metrics([], [1.0, 2.0])
    with pytest.raises(TypeError, match="`predictions` must be a sequence"):
        depth_metrics("3.5 m", [3.5])
    with pytest.raises(TypeError, match="`predictions` must hold numbers"):
        depth_metrics([True], [1.0])
    with pytest.raises(TypeError, match="`references` must be numbers"):
        depth_metrics([1.0], [True])
    with pytest.raises(TypeError, match="`references` must be numbers"):
        depth_metrics([1.0], ["2 m"])
    with pytest.raises(ValueError, match=r"`references` must be a flat \(N,\) sequence"):
        depth_metrics([1.0, 2.0], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="Unknown task 'depth'"):
        depth_metrics([1.0], [1.0], task="depth")


def test_all_unparseable_text():
    got = depth_metrics(["no idea", "", "far away"], [1.0, 2.0, 3.0])
    assert got["delta1"] == 0.0 and got["parse_failure_rate"] == 1.0 and got["num_valid"] == 0
    assert math.isnan(got["rmse"])


def test_text_predictions_are_parsed():
    text = ["The point is around 2.00 meters away from the camera.", "<answer> 4.5 </answer>", "150 cm", "?"]
    assert to_metres(text) == [2.0, 4.5, 1.5, None]
    assert depth_metrics(text, [2.0, 4.5, 1.5, 1.0])["delta1"] == 0.75


def test_exact_delta_threshold_is_excluded():
    # max(p/g, g/p) == 1.25 exactly is not < 1.25.
    assert delta_accuracy([1.25, 1.0, 1.2], [1.0, 1.25, 1.0]) == pytest.approx(1 / 3)


def test_constant_log_ratio_has_zero_silog():
    got = depth_metrics([2.0, 4.0, 8.0], [1.0, 2.0, 4.0])
    assert got["silog"] == 0.0 and got["delta1"] == 0.0 and got["rmse_log"] == pytest.approx(math.log(2))


@pytest.mark.parametrize("bad", [[0.0], [-1.0], [math.nan], [math.inf]])
def test_bad_references_raise(bad):
    with pytest.raises(ValueError, match="`references`"):
        depth_metrics([1.0], bad)


def test_length_mismatch_and_bad_types_raise():
    with pytest.raises(ValueError, match="must match"):
        depth_metrics([1.0, 2.0], [1.0])
    with pytest.raises(TypeError, match="`predictions`"):
        depth_metrics([[1.0]], [1.0])


def test_evaluate_module_matches_functional(metric):
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.5, 10.0, size=64)
    pred = (gt * rng.uniform(0.6, 1.5, size=64)).tolist()
    pred[5] = None
    pred[7] = -2.0
    got = metric.compute(predictions=pred, references=gt.tolist())
    assert got == pytest.approx(depth_metrics(pred, gt.tolist()), nan_ok=True)


def test_evaluate_module_mixed_text_empty_and_task(metric):
    got = metric.compute(predictions=[2.0, "around 4.1 meters", "no idea"], references=[2.1, 4.0, 3.0])
    assert got["delta1"] == pytest.approx(2 / 3) and got["num_unparseable"] == 1
    with pytest.raises(ValueError, match="`predictions` and `references` are empty"):
        metric.compute(predictions=[], references=[])
    with pytest.raises(ValueError, match="`predictions` has 0 items and `references` 1"):
        metric.compute(predictions=[], references=[1.0])
    assert metric.compute(predictions=["about 12 seconds"], references=[12.0], task="time")["delta1"] == 1.0
    metric.add_batch(predictions=["12 cm", "3 m"], references=[0.12, 3.0])
    assert metric.compute()["abs_rel"] == pytest.approx(0.0, abs=1e-12)


def test_metric_card_follows_evaluate_convention():
    card = (Path(metric_path()) / "README.md").read_text()
    assert card.startswith("---\n") and "# Metric Card for" in card
    sections = ("## Metric Description", "## How to Use", "### Inputs", "### Output Values", "## Citation")
    for section in sections:
        assert section in card


def _ibims1():
    root = Path(os.environ.get("DEPTHLM_SHARED_DATA", Path(__file__).parents[1].parent / "shared" / "data"))
    return root / "ibims1" / "ibims1_val.jsonl"


@pytest.mark.skipif(not _ibims1().exists(), reason="../shared/data/ibims1 not present")
def test_constant_two_metres_on_ibims1_sample():
    gt = [d for line in _ibims1().open() for d in json.loads(line)["depth"]]
    assert len(gt) == 10_000
    assert depth_metrics([2.0] * len(gt), gt)["delta1"] == pytest.approx(0.2819, abs=1e-12)


positive = st.floats(min_value=0.05, max_value=200.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(positive, positive), min_size=1, max_size=40), st.floats(min_value=0.1, max_value=10.0))
def test_scale_properties(pairs, scale):
    """Scaling predictions and references together keeps relative metrics; SILog ignores a global scale."""
    pred, gt = [p for p, _ in pairs], [g for _, g in pairs]
    base = depth_metrics(pred, gt)
    both = depth_metrics([p * scale for p in pred], [g * scale for g in gt])
    for name in ("abs_rel", "rmse_log", "log10", "silog"):
        assert both[name] == pytest.approx(base[name], rel=1e-6, abs=1e-9)
    assert abs(both["delta1"] - base["delta1"]) <= 1 / len(pairs) + 1e-12  # a ratio exactly at 1.25 may flip
    only_pred = depth_metrics([p * scale for p in pred], gt)
    assert only_pred["silog"] == pytest.approx(base["silog"], rel=1e-6, abs=1e-6)


def test_silog_of_a_global_scale_is_zero_without_cancellation():
    """Predictions that are one global scale of the references: SILog 0 up to rounding of the logs (was ~4e-6)."""
    gt = [0.05, 0.07, 199.0, 3.3, 0.5]
    base = depth_metrics(gt, gt)["silog"]
    scaled = depth_metrics([g * 7.3 for g in gt], gt)["silog"]
    assert base == 0.0 and scaled < 1e-9


def test_lower_is_better_holds_every_error_and_rate_and_no_accuracy():
    from depthlm_hf.metrics.report import LOWER_IS_BETTER

    assert LOWER_IS_BETTER == {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "invalid_rate"} | {
        "parse_failure_rate"
    }
