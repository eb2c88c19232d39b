"""`depthlm eval`: data specs, constant baseline, model runs on all tasks, resume, outputs, iBims-1 figure."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.data.eval_view import build_samples
from depthlm_hf.metrics.runner import EvalArguments
from depthlm_hf.models.tiny import tiny_processor
from depthlm_hf.scripts.eval import main

pytestmark = pytest.mark.usefixtures("one_thread")

W, H = 112, 84
CAMERA = [100.0, 100.0, 55.5, 41.5, W, H]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three two-view 112x84 images, 6 labelled pixels each (one too close to the border for a marker)."""
    root = tmp_path_factory.mktemp("curated")
    (root / "rgb").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "rgb" / f"{i}.png")
        coords = [[10, 10], [50, 40], [90, 70], [30, 60], [70, 20], [0, 0]]
        lines.append(
            {
                "image": f"rgb/{i}.png",
                "intrinsics": CAMERA,
                "pixel_coords": coords,
                "depth": [1.0 + i, 2.0, 3.5, 1.6 + i, 5.0, 2.0],
                "image2": f"rgb/{(i + 1) % 3}.png",
                "intrinsics2": CAMERA,
                "rotation": np.eye(3).tolist(),
                "translation": [0.3 * (i + 1), 0.0, 0.4],
            }
        )
    (root / "val.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return root


def spec(root: Path, name: str = "toy") -> str:
    return f"{name}={root / 'val.jsonl'}:{root}"


def test_data_entries_are_checked_before_anything_runs(dataset, tmp_path):
    with pytest.raises(ValueError, match="`data` names must be unique, got 'toy' more than once"):
        main(["--model", "constant:2.0", "--data", spec(dataset), spec(dataset), "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="`data` entries must look like"):
        main(["--model", "constant:2.0", "--data", "toy=val.json", "--output_dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_constant_baseline_outputs_and_resume(dataset, tmp_path, capsys):
    args = [
        "--model",
        "constant:2.0",
        "--data",
        spec(dataset),
        "--num_samples",
        "all",
        "--output_dir",
        str(tmp_path),
    ]
    results = main(args)
    metrics = results["distance"]["toy"]
    # 15 markable pixels (the [0, 0] ones are excluded); only the four 2.0 labels are within 25 % of 2.0
    # (1.6 is exactly 1.25 away, and delta1 is a strict inequality).
    assert metrics["num_samples"] == 15 and metrics["delta1"] == pytest.approx(4 / 15)
    printed = capsys.readouterr().out
    assert "| constant:2.0 | 0.2667 | 0.2667 |" in printed
    for name in (
        "results.json",
        "results.csv",
        "results.md",
        "delta1_distance.png",
        "toy/distance/pred_vs_true.png",
    ):
        assert (tmp_path / name).exists(), name
    assert len((tmp_path / "toy/distance/predictions.jsonl").read_text().splitlines()) == 15
    again = main(args)["distance"]["toy"]
    assert again["resumed_samples"] == 15 and again["delta1"] == metrics["delta1"]
    with pytest.raises(ValueError, match="another run"):
        main(
            [
                "--model",
                "constant:3.0",
                "--data",
                spec(dataset),
                "--num_samples",
                "all",
                "--output_dir",
                str(tmp_path),
            ]
        )
    assert (
        main([*args[:1], "constant:3.0", *args[2:], "--overwrite", "true"])["distance"]["toy"]["resumed_samples"] == 0
    )


def test_evaluation_set_is_fixed_and_subsampled(dataset):
    from depthlm_hf.data import load_curated

    source = load_curated(dataset / "val.jsonl", dataset)
    processor = tiny_processor()
    a = build_samples(source, processor, "distance", 7, seed=0)
    b = build_samples(source, processor, "distance", 7, seed=0)
    assert a == b and len(a) == 7 and build_samples(source, processor, "distance", 7, seed=1) != a
    two = build_samples(source, processor, "two_point_distance", None, seed=0)
    assert all(len(s["point_indices"]) == 2 and 5 not in s["point_indices"] for s in two)
    speed = build_samples(source, processor, "speed", None, seed=0)
    assert all(
        s["label"] == pytest.approx(source[s["record_index"]]["depth"][s["point_indices"][0]] / s["fields"]["time"])
        for s in speed
    )
    trans = build_samples(source, processor, "translation", None, seed=0)
    assert [s["label"] for s in trans] == pytest.approx([0.5, math.hypot(0.6, 0.4), math.hypot(0.9, 0.4)])


def test_a_task_added_to_the_registry_is_evaluated_by_its_fields_not_its_name(dataset, monkeypatch):
    """Copies of registered tasks under new names get the evaluation sets and work units of the originals."""
    from depthlm_hf.data import load_curated
    from depthlm_hf.metrics.runner import work_units
    from depthlm_hf.tasks.text import TASKS

    for new, old in (("pose", "translation"), ("depth_z", "z_distance"), ("pair", "two_point_distance")):
        monkeypatch.setitem(TASKS, new, replace(TASKS[old], name=new))
    source, processor = load_curated(dataset / "val.jsonl", dataset), tiny_processor()
    for new, old in (("pose", "translation"), ("depth_z", "z_distance")):
        assert build_samples(source, processor, new, None, seed=0) == build_samples(source, processor, old, None, 0)
    pairs, points = (
        build_samples(source, processor, "pair", None, 0),
        build_samples(source, processor, "distance", None, 0),
    )
    assert len(pairs) == len(points) and all(len(s["point_indices"]) == 2 for s in pairs)
    assert all(one["point_indices"][0] in two["point_indices"] for one, two in zip(points, pairs, strict=True))
    rows = [{"record_index": r} for r in (0, 0, 1, 2, 2)]
    assert [len(u) for u in work_units(rows, "depth_z", 4)] == [2, 1, 2]  # per record, as the distance task
    assert [len(u) for u in work_units(rows, "pair", 4)] == [4, 1]


def test_model_run_on_all_tasks_and_interrupted_resume(dataset, tiny_dir, tmp_path):
    tasks = ["distance", "z_distance", "speed", "time", "two_point_distance", "translation"]
    args = [
        "--model",
        str(tiny_dir),
        "--data",
        spec(dataset),
        "--num_samples",
        "6",
        "--batch_size",
        "4",
        "--output_dir",
        str(tmp_path),
        "--plots",
        "false",
        "--tasks",
        *tasks,
    ]
    results = main(args)
    for task in tasks:
        metrics = results[task]["toy"]
        assert metrics["num_samples"] == (3 if task == "translation" else 6), task
        rows = [json.loads(x) for x in (tmp_path / "toy" / task / "predictions.jsonl").read_text().splitlines()]
        assert all(r["prediction"] is None or isinstance(r["prediction"], float) for r in rows)
        assert all(isinstance(r["text"], str) for r in rows)
    # Interrupt: keep 2 of 6 saved answers and half of a third (a kill during a write). The rerun redoes the
    # cut line and every record (work unit) that is not complete, and gives the same rows and metrics.
    path = tmp_path / "toy" / "distance" / "predictions.jsonl"
    full = path.read_text()
    lines = full.splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    kept = [json.loads(line)["record_index"] for line in lines[:2]]
    records = [json.loads(line)["record_index"] for line in lines]
    complete = sum(records.count(r) for r in set(kept) if kept.count(r) == records.count(r))
    again = main(args[: -len(tasks)] + ["distance"])["distance"]["toy"]
    assert again["resumed_samples"] == complete < 6
    assert path.read_text() == full and again["delta1"] == results["distance"]["toy"]["delta1"]
    assert sorted(p.name for p in path.parent.glob("predictions*")) == ["predictions.jsonl"]


def test_ibims1_constant_two_metres_gives_0_2819(ibims1_dir, tmp_path, capsys):
    results = main(
        [
            "--model",
            "constant:2.0",
            "--data",
            f"ibims1={ibims1_dir / 'ibims1_val.jsonl'}:{ibims1_dir}",
            "--num_samples",
            "all",
            "--output_dir",
            str(tmp_path),
            "--plots",
            "false",
        ]
    )
    assert results["distance"]["ibims1"]["num_samples"] == 10_000
    assert results["distance"]["ibims1"]["delta1"] == pytest.approx(0.2819, abs=1e-12)
    assert "| constant:2.0 | 0.2819 | 0.2819 |" in capsys.readouterr().out


def test_unreadable_image_is_skipped_and_counted(dataset, tiny_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    (broken / "rgb" / "1.png").write_bytes(b"not a png")
    argv = ["--model", str(tiny_dir), "--data", spec(broken), "--num_samples", "all", "--plots", "false",
            "--output_dir", str(tmp_path / "out")]  # fmt: skip
    # rgb/1.png is record 1's image and record 0's second view: both records become unreadable.
    message = r"toy/distance at end: 10 of 15 samples skipped \(66.7%\): unreadable_image 10, more than `max_skipped"
    with pytest.raises(ValueError, match=message):
        main(argv)
    results = main([*argv, "--max_skipped_fraction", "1"])  # resumes the saved predictions, then accepts the loss
    metrics = results["distance"]["toy"]
    assert metrics["skipped_samples"] == 10 and metrics["num_samples"] == 5
    assert metrics["skipped_sample_reasons"] == {"unreadable_image": 10}
    assert metrics["skipped_records"] == {"total": 3, "skipped": 0, "skipped_fraction": 0.0, "reasons": {}}
    lines = (tmp_path / "out/toy/distance/predictions.jsonl").read_text().splitlines()
    assert sum('"skipped": "unreadable_image"' in line for line in lines) == 10
    saved = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["distance"]["toy"]
    assert saved["skipped_sample_reasons"] == {"unreadable_image": 10}


def test_records_left_out_of_the_evaluation_set_are_reported(dataset, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    record = {"intrinsics": CAMERA, "pixel_coords": [[50, 40]], "depth": [2.0]}
    with open(broken / "val.jsonl", "a") as f:
        f.write(json.dumps({**record, "image": "rgb/missing.png"}) + "\n")  # leaves the evaluation set
        f.write(json.dumps({**record, "image": "rgb/0.png", "intrinsics": [1, 2]}) + "\n")
    argv = ["--model", "constant:2.0", "--data", spec(broken), "--num_samples", "all", "--plots", "false",
            "--output_dir", str(tmp_path / "out")]  # fmt: skip
    message = r"toy/distance at start: 2 of 5 records skipped \(40.0%\): bad_intrinsics 1, unreadable_image 1, more"
    with pytest.raises(ValueError, match=message):
        main(argv)
    results = main([*argv, "--max_skipped_fraction", "0.5"])
    printed = capsys.readouterr().out
    assert "toy/distance at start: 2 of 5 records skipped (40.0%): bad_intrinsics 1, unreadable_image 1" in printed
    assert "toy/distance at end: 0 of 15 samples skipped (0.0%)" in printed
    skipped = results["distance"]["toy"]["skipped_records"]
    assert skipped == {"total": 5, "skipped": 2, "skipped_fraction": 0.4,
                       "reasons": {"bad_intrinsics": 1, "unreadable_image": 1}}  # fmt: skip
    assert results["distance"]["toy"]["num_samples"] == 15  # the three readable records, as before


def test_official_pixtral_format_through_the_runner(dataset, tmp_path):
    from depthlm_hf.models.tiny import tiny_llava_pixtral

    model, processor = tiny_llava_pixtral(seed=0)
    model.save_pretrained(tmp_path / "pixtral")
    processor.save_pretrained(tmp_path / "pixtral")
    results = main(
        ["--model", str(tmp_path / "pixtral"), "--data", spec(dataset), "--num_samples", "4",
         "--plots", "false", "--tasks", "distance", "speed", "--output_dir", str(tmp_path / "out")]
    )  # fmt: skip
    assert results["distance"]["toy"]["num_samples"] == 4 and results["speed"]["toy"]["num_samples"] == 4


def test_resume_refuses_replaced_weights_or_changed_evaluation_set(dataset, tiny_dir, tmp_path):
    import os
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_dir, model)
    args = ["--model", str(model), "--data", spec(dataset), "--num_samples", "3", "--plots", "false",
            "--output_dir", str(tmp_path / "out")]  # fmt: skip
    main(args)
    weights = model / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # new weights, same path
    with pytest.raises(ValueError, match=r"another run \(fingerprint: saved"):
        main(args)
    assert main([*args, "--overwrite", "true"])["distance"]["toy"]["resumed_samples"] == 0
    # The same jsonl path with other labels: another evaluation set, refused rather than silently mixed.
    changed = tmp_path / "changed"
    shutil.copytree(dataset, changed)
    text = (changed / "val.jsonl").read_text().replace('"depth": [1.0,', '"depth": [1.5,')
    (changed / "val.jsonl").write_text(text)
    constant = ["--model", "constant:2.0", "--num_samples", "all", "--output_dir", str(tmp_path / "c")]
    main([*constant, "--data", f"toy={changed / 'val.jsonl'}:{changed}"])
    (changed / "val.jsonl").write_text((dataset / "val.jsonl").read_text())
    with pytest.raises(ValueError, match=r"evaluation_set: saved"):
        main([*constant, "--data", f"toy={changed / 'val.jsonl'}:{changed}"])


def test_ibims1_official_protocol_constant_two_metres_gives_0_2891(ibims1_dir, tmp_path):
    """The release's own sampling (128 samples, image k mod N, pixels from random.seed(42)): 37 of 128 hit."""
    results = main(
        [
            "--model",
            "constant:2.0",
            "--data",
            f"ibims1={ibims1_dir / 'ibims1_val.jsonl'}:{ibims1_dir}",
            "--protocol",
            "official",
            "--preset",
            "official_pixtral",
            "--output_dir",
            str(tmp_path),
            "--plots",
            "false",
        ]
    )
    assert results["distance"]["ibims1"]["num_samples"] == 128
    assert results["distance"]["ibims1"]["delta1"] == pytest.approx(37 / 128, abs=1e-12)
    assert round(results["distance"]["ibims1"]["delta1"], 4) == 0.2891


def test_official_protocol_walks_to_the_next_slot_past_unmarkable_pixels(dataset, capsys):
    """Slot k: record k mod N, pixel drawn by random.seed(42); an unmarkable pixel takes slot k + 1's sample."""
    import random

    from depthlm_hf.data.curated import CuratedDataset
    from depthlm_hf.data.eval_view import official_pairs

    source = CuratedDataset(dataset / "val.jsonl", dataset)
    processor = tiny_processor()
    pairs = official_pairs(source, processor).tolist()
    draw = random.Random(42)
    slots = [draw.sample(range(6), 1)[0] for _ in range(18)]
    expected = []
    for k in range(18):
        slot = k
        while slots[slot] == 5:  # pixel 5 is [0, 0]: no marker fits there
            slot = (slot + 1) % 18
        expected.append([slot % 3, slots[slot]])
    assert pairs == expected and len(pairs) == 18  # min(128, N * P)
    assert any(slot == 5 for slot in slots)  # the walk is exercised
    with pytest.raises(ValueError, match="`protocol` 'official' evaluates the distance task only"):
        build_samples(source, processor, "time", None, 0, "official")
    with pytest.raises(ValueError, match="`protocol` must be one of fixed, official, got 'paper'"):
        EvalArguments(model="constant:2.0", data=[spec(dataset)], protocol="paper")
    with pytest.raises(SystemExit):  # the command line's choices come from the same `Protocol` literal
        main(["--model", "constant:2.0", "--data", spec(dataset), "--protocol", "paper"])
    assert "invalid choice: 'paper' (choose from 'fixed', 'official')" in capsys.readouterr().err
