"""Training/evaluation views and mixtures: crops, markers, labels, ratios, determinism, TRL row format."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.data import (
    EvaluationView,
    MixtureView,
    TrainingView,
    TrainingViewConfig,
    load_curated,
    mixture_weights,
    views,
)
from depthlm_hf.data.synthetic.scenes import SyntheticDataset
from depthlm_hf.data.views import index_dataset
from depthlm_hf.prompting.markers import marker_fits
from depthlm_hf.tasks import TASKS, parse_answer

SHARED = Path(os.environ.get("DEPTHLM_SHARED_DATA", Path(__file__).parents[1].parent / "shared" / "data"))
IBIMS = SHARED / "ibims1"
ALL_TASKS = ["distance", "z_distance", "speed", "time", "two_point_distance", "translation"]


@pytest.fixture
def recorded(processor, monkeypatch):
    """Every (points, crop, PreparedImage) the processor prepares."""
    calls = []
    original = type(processor).prepare

    def prepare(image, intrinsics, points, crop=None):
        out = original(processor, image, intrinsics, points, crop=crop)
        calls.append((None if points is None else np.asarray(points), crop, intrinsics, out))
        return out

    monkeypatch.setattr(processor, "prepare", prepare)
    return calls


def label_of(record, point):
    index = np.flatnonzero((record["pixel_coords"] == point).all(axis=1))[0]
    return record["depth"][index]


def test_training_view_crops_in_range_markers_inside_labels_unchanged(source, processor, recorded):
    config = TrainingViewConfig(crop_width=(150, 260), crop_height=(110, 200))
    view = TrainingView(source, processor, config, seed=0, num_samples=40, row_format="grpo")
    by_camera = {tuple(r["intrinsics"]): r for r in source}
    for index in range(40):
        row = view[index]
        points, crop, intr, prepared = recorded[-1]
        unified = processor.focal_transform(intr)
        left, top, width, height = crop
        assert width <= 260 and (width >= 150 or width == unified.out_width)
        assert height <= 200 and (height >= 110 or height == unified.out_height)
        assert prepared.image.size == (width, height) == row["images"][0].size
        assert marker_fits(prepared.points, width, height, processor.marker_style).all()
        # centred on the principal point (synthetic cameras have it at the image centre)
        assert abs(prepared.intrinsics.cx - (width - 1) / 2) <= 0.5 + 1e-9
        record = by_camera[tuple(intr.to_list())]
        assert row["depth"] == label_of(record, points[0]) and row["task"] == "distance"


def test_random_crop_position_and_aspect_jitter_keep_markers_inside(source, processor, recorded):
    config = TrainingViewConfig(
        crop_width=(100, 150), crop_height=(80, 120), crop_position="random", aspect_jitter=(1.0, 1.3)
    )
    view = TrainingView(source, processor, config, seed=1, num_samples=30, row_format="grpo")
    lefts = set()
    for index in range(30):
        view[index]
        _, crop, intr, prepared = recorded[-1]
        lefts.add(crop[0])
        assert marker_fits(prepared.points, crop[2], crop[3], processor.marker_style).all()
        ratio = prepared.intrinsics.fy / prepared.intrinsics.fx
        assert 1.0 - 1e-9 <= ratio <= 1.3 + 1e-9
    assert len(lefts) > 5


def test_sft_rows_are_trl_prompt_completion_rows_and_parse_back(source, processor):
    view = TrainingView(source, processor, TrainingViewConfig(crop=False), seed=0, num_samples=5)
    for row in view:
        assert set(row) == {"images", "prompt", "completion", "depth", "task"} and row["task"] == "distance"
        assert isinstance(row["images"][0], Image.Image)
        assert row["prompt"][0]["role"] == "user" and row["prompt"][0]["content"][0] == {"type": "image"}
        assert row["completion"][0]["role"] == "assistant"
        assert processor.parse_answer(row["completion"][0]["content"][0]["text"]) == pytest.approx(
            row["depth"], abs=0.01
        )


# Every task's rows have the same columns: the trainers' datasets select them by name (a two-view SFT row without
# `depth` stopped the multi-task recipe at step 0).
ROW_COLUMNS = {
    "sft": {"images", "prompt", "completion", "depth", "task"},
    "grpo": {"images", "prompt", "depth", "task"},
}


@pytest.mark.parametrize("row_format", sorted(ROW_COLUMNS))
def test_all_six_tasks_build_rows_with_the_same_columns(processor, row_format):
    pairs = SyntheticDataset("indoor", num_scenes=6, num_points=30, two_view=True, width=(96, 96), height=(72, 72))
    config = TrainingViewConfig(tasks={t: 1.0 for t in ALL_TASKS}, crop_width=(100, 300), crop_height=(80, 200))
    view = TrainingView(pairs, processor, config, seed=0, num_samples=60, row_format=row_format)
    rows = list(view)
    assert {r["task"] for r in rows} == set(ALL_TASKS)
    for row in rows:
        assert set(row) == ROW_COLUMNS[row_format] and row["depth"] > 0
        num_images = TASKS[row["task"]].num_images
        assert len(row["images"]) == num_images
        assert [c["type"] for c in row["prompt"][0]["content"]] == ["image"] * num_images + ["text"]
        if num_images == 2:
            assert row["images"][0].size == row["images"][1].size
        if row_format == "sft":
            answer = row["completion"][0]["content"][0]["text"]
            assert parse_answer(answer, row["task"]) == pytest.approx(row["depth"], abs=0.005)


def test_marker_row_rows_answer_the_row_of_the_marker_in_the_cropped_image(source, processor, recorded):
    """The localisation warm start (task "marker_row") is labelled in the model image: after unification and crop."""
    config = TrainingViewConfig(tasks={"marker_row": 1.0}, crop_width=(150, 260), crop_height=(110, 200))
    view = TrainingView(source, processor, config, seed=0, num_samples=12, row_format="sft")
    for index in range(12):
        row = view[index]
        points, crop, intr, prepared = recorded[-1]
        assert row["task"] == "marker_row" and row["prompt"] == processor.task_messages("marker_row")
        assert (
            row["depth"]
            == prepared.points[0][1] / 10  # tens of pixels
            == processor.map_queries(intr, points, crop).points[0][1] / 10
        )
        assert processor.parse_answer(row["completion"][0]["content"][0]["text"], "marker_row") == round(
            row["depth"], 2
        )


def test_rows_are_deterministic_in_seed_and_index(source, processor):
    a = TrainingView(source, processor, seed=5, num_samples=4, row_format="grpo")
    b = TrainingView(source, processor, seed=5, num_samples=4, row_format="grpo")
    c = TrainingView(source, processor, seed=6, num_samples=4, row_format="grpo")
    assert [r["depth"] for r in a] == [b[i]["depth"] for i in (0, 1, 2, 3)] != [r["depth"] for r in c]
    assert np.array_equal(np.asarray(a[2]["images"][0]), np.asarray(b[2]["images"][0]))


def test_mixture_ratios_follow_the_weights():
    class Dummy:
        def sample(self, index):
            return {}

    names = ["hypersim", "scannetpp", "matterport3d"]
    mix = MixtureView(dict.fromkeys(names, Dummy()), seed=0)
    assert mix.probabilities.round(4).tolist() == [0.4762, 0.4762, 0.0476]
    counts = np.bincount([mix.choose(i) for i in range(10_000)], minlength=3) / 10_000
    assert np.abs(counts - mix.probabilities).max() < 0.02
    assert mixture_weights(names, {"hypersim": 3}) == [3.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="`weights`"):
        MixtureView([Dummy()], weights=[1.0, 2.0])


def test_mixture_rows_come_from_the_chosen_view(source, processor):
    indoor = TrainingView(source, processor, TrainingViewConfig(crop=False), row_format="grpo")
    ground = TrainingView(
        SyntheticDataset("ground", num_scenes=3, num_points=10),
        processor,
        TrainingViewConfig(crop=False),
        row_format="grpo",
    )
    mix = MixtureView({"indoor": indoor, "ground": ground}, weights=[1, 1], num_samples=6)
    for i, row in enumerate(mix):
        expected = (indoor, ground)[mix.choose(i)].sample(i)
        assert row["depth"] == expected["depth"]


def _eval_fingerprint(processor, source):
    view = EvaluationView(source, processor, num_samples=50, seed=0)
    rows = [view[i] for i in (0, 17, 49)]
    digest = hashlib.sha256()
    for row in rows:
        digest.update(np.asarray(row["images"][0]).tobytes())
        digest.update(json.dumps([row["depth"], row["point"], row["record_index"], row["point_index"]]).encode())
    return view.pairs.tolist(), digest.hexdigest()


EVAL_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from test_data_views import _eval_fingerprint
from depthlm_hf.models.tiny import tiny_processor
from depthlm_hf.data.synthetic.scenes import SyntheticDataset
from depthlm_hf.data import views
from depthlm_hf.data.views import index_dataset
src = SyntheticDataset("ground", num_scenes=8, num_points=20, seed=9)
print(json.dumps(_eval_fingerprint(tiny_processor(), src)))
"""


def test_evaluation_view_is_identical_across_runs_and_processes(processor):
    src = SyntheticDataset("ground", num_scenes=8, num_points=20, seed=9)
    pairs, digest = _eval_fingerprint(processor, src)
    assert len(pairs) == 50 and pairs == sorted(pairs) and len({tuple(p) for p in pairs}) == 50
    assert _eval_fingerprint(processor, src) == (pairs, digest)
    script = EVAL_SCRIPT.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [pairs, digest]


def test_evaluation_rows_keep_ids_and_labels(processor):
    src = SyntheticDataset("ground", num_scenes=4, num_points=10, seed=2)
    view = EvaluationView(src, processor, num_samples=None)
    assert len(view) + view.stats["marker_does_not_fit"] == 40
    row = view[3]
    record = src[row["record_index"]]
    assert row["point"] == record["pixel_coords"][row["point_index"]].tolist()
    assert row["depth"] == record["depth"][row["point_index"]] and row["dataset"] == "synthetic_ground"
    unified = processor.focal_transform(record["intrinsics"])
    assert row["images"][0].size == (unified.out_width, unified.out_height)


@pytest.mark.skipif(not IBIMS.is_dir(), reason="needs ../shared/data/ibims1")
def test_ibims1_evaluation_view_has_8192_fixed_samples(processor):
    src = load_curated(IBIMS / "ibims1_val.jsonl", IBIMS)
    a, b = EvaluationView(src, processor), EvaluationView(src, processor)
    assert len(a) == 8192 and a.pairs.tolist() == b.pairs.tolist()
    row = a[0]
    assert row["dataset"] == "ibims1_val" and row["images"][0].size == (1143, 859)


def test_bad_records_in_the_source_are_skipped_and_counted(tmp_path, processor):
    Image.new("RGB", (64, 48), (90, 90, 90)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rec = {
        "intrinsics": [60, 60, 31.5, 23.5, 64, 48],
        "pixel_coords": [[32, 24], [40, 30]],
        "depth": [2.0, 3.0],
    }
    with open(tmp_path / "d.jsonl", "w") as f:
        for image in ("ok.png", "bad.png", "ok.png"):
            f.write(json.dumps({**rec, "image": image}) + "\n")
    view = TrainingView(
        load_curated(tmp_path / "d.jsonl"),
        processor,
        TrainingViewConfig(crop=False),
        num_samples=20,
        row_format="grpo",
    )
    assert {row["depth"] for row in view} <= {2.0, 3.0}
    assert view.stats["unreadable_image"] > 0


def test_iterable_dataset_shards_cover_the_rows(source, processor):
    view = TrainingView(source, processor, TrainingViewConfig(crop=False), num_samples=6, row_format="grpo")
    ds = view.to_iterable_dataset(num_shards=3)
    assert ds.num_shards == 3
    assert sorted(r["depth"] for r in ds) == sorted(r["depth"] for r in view)


def test_trl_collator_takes_sft_rows(source, processor):
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    view = TrainingView(source, processor, TrainingViewConfig(crop=False), num_samples=2)
    batch = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)(list(view))
    labels = batch["labels"][0]
    answer = processor.tokenizer.decode(labels[labels != -100])
    assert "meters away from the camera" in answer and "How many" not in answer


def test_config_errors_name_the_argument(source, processor):
    with pytest.raises(ValueError, match="`crop_width`"):
        TrainingViewConfig(crop_width=(500, 100))
    with pytest.raises(ValueError, match="`crop_position`"):
        TrainingViewConfig(crop_position="corner")
    with pytest.raises(ValueError, match="Unknown task"):
        TrainingViewConfig(tasks={"depth": 1.0})
    with pytest.raises(ValueError, match="`row_format`"):
        TrainingView(source, processor, row_format="dpo")
    with pytest.raises(TypeError, match="endless"):
        len(TrainingView(source, processor))


def test_sft_trainer_trains_on_a_view_stream(tmp_path):
    import torch
    from trl import SFTConfig, SFTTrainer

    from depthlm_hf.models.tiny import tiny_processor, tiny_qwen2_5_vl

    model, _ = tiny_qwen2_5_vl(seed=0)
    processor = tiny_processor(unified_focal_length=200.0)
    view = TrainingView(
        SyntheticDataset("ground", num_scenes=8, num_points=10),
        processor,
        TrainingViewConfig(crop=False),
        seed=0,
    )
    before = [p.detach().clone() for p in model.parameters()]
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=1,
        max_length=None,
        save_strategy="no",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=view.to_iterable_dataset(),
        processing_class=processor.base_processor,
    )
    trainer.train()
    assert any("loss" in log for log in trainer.state.log_history)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_map_style_dataset_renders_rows_on_access(source, processor):
    view = TrainingView(source, processor, TrainingViewConfig(crop=False), num_samples=5, row_format="grpo")
    table = index_dataset(5, view, "grpo")
    assert len(table) == 5 and table[3]["depth"] == view[3]["depth"] and table[3]["index"] == 3
    assert isinstance(table[3]["images"][0], Image.Image) and set(table[3]) == set(views.ROW_COLUMNS["grpo"])
    assert [r["depth"] for r in table.select([1, 2])] == [view[1]["depth"], view[2]["depth"]]
    sft = index_dataset(7, TrainingView(source, processor), "sft")
    assert len(sft) == 7 and set(sft[0]) == set(views.ROW_COLUMNS["sft"])
    with pytest.raises(ValueError, match="`row_format` must be one of sft, grpo, got 'dpo'"):
        index_dataset(2, view, "dpo")


def test_records_whose_unified_image_is_too_large_are_skipped_and_counted(tmp_path, processor):
    Image.new("RGB", (64, 48), (90, 90, 90)).save(tmp_path / "ok.png")
    rec = {"image": "ok.png", "pixel_coords": [[32, 24], [40, 30]], "depth": [2.0, 3.0]}
    tiny_focal = {**rec, "intrinsics": [0.001, 0.001, 31.5, 23.5, 64, 48]}  # 6.4e7 x 4.8e7 px once unified
    with open(tmp_path / "d.jsonl", "w") as f:
        for record in ({**rec, "intrinsics": [60, 60, 31.5, 23.5, 64, 48]}, tiny_focal):
            f.write(json.dumps(record) + "\n")
    source = load_curated(tmp_path / "d.jsonl")
    view = TrainingView(source, processor, TrainingViewConfig(crop=False), num_samples=20, row_format="grpo")
    assert {row["depth"] for row in view} <= {2.0, 3.0}
    assert view.stats["unified_too_large"] > 0 and view.stats["ok"] >= 20
    evaluation = EvaluationView(source, processor, num_samples=None)
    assert evaluation.stats == {"ok": 1, "unified_too_large": 1} and len(evaluation) == 2
