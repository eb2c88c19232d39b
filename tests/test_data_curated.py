"""Curated-format loader: the real iBims-1 sample, path confinement, skip-and-count of bad records."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.data import CuratedDataset, InvalidRecordError, load_curated, record_features, validate_record

SHARED = Path(os.environ.get("DEPTHLM_SHARED_DATA", Path(__file__).parents[1].parent / "shared" / "data"))
IBIMS = SHARED / "ibims1"


def delta1(pred: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of points with max(pred / gt, gt / pred) < 1.25."""
    return float(np.mean(np.maximum(pred / gt, gt / pred) < 1.25))


def good(image="rgb/a.png", **over):
    rec = {
        "image": image,
        "intrinsics": [50.0, 50.0, 15.5, 11.5, 32, 24],
        "pixel_coords": [[1, 2], [30, 20]],
        "depth": [1.5, 2.5],
    }
    rec.update(over)
    return rec


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    (root / "rgb").mkdir(parents=True)
    Image.new("RGB", (32, 24), (10, 20, 30)).save(root / "rgb" / "a.png")
    (root / "rgb" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    noise = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "rgb" / "full.png")
    data = (root / "rgb" / "full.png").read_bytes()
    (root / "rgb" / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "secret.png").write_bytes((root / "rgb" / "a.png").read_bytes())
    return root


def write(path, records):
    with open(path, "w") as f:
        for rec in records:
            f.write((rec if isinstance(rec, str) else json.dumps(rec)) + "\n")
    return path


@pytest.mark.skipif(not IBIMS.is_dir(), reason="needs ../shared/data/ibims1")
def test_ibims1_sample_loads_unchanged_and_constant_2m_scores_0_2819():
    ds = load_curated(IBIMS / "ibims1_val.jsonl", IBIMS)
    records = list(ds)
    assert len(records) == 100 and len(ds) == 100
    assert sum(len(r["depth"]) for r in records) == 10_000
    assert ds.stats == {"ok": 100} and not ds.skipped
    first = json.loads((IBIMS / "ibims1_val.jsonl").open().readline())
    assert records[0]["intrinsics"] == first["intrinsics"]
    assert records[0]["pixel_coords"].tolist() == first["pixel_coords"]
    assert records[0]["depth"].tolist() == first["depth"]
    assert records[0]["image"].size == (640, 480)
    depth = np.concatenate([r["depth"] for r in records])
    assert round(delta1(np.full_like(depth, 2.0), depth), 4) == 0.2819


def test_bad_records_are_skipped_and_counted(folder):
    nan = json.dumps(good()).replace("2.5", "NaN")
    records = [
        good(),
        good(image="../../etc/passwd"),
        good(image="../secret.png"),
        good(image="rgb/corrupt.png"),
        good(image="rgb/truncated.png"),
        good(image="rgb/missing.png"),
        nan,
        good(depth=[1.0, -2.0]),
        good(depth=[1.0]),
        good(pixel_coords=[[1, 2], [30]]),
        good(pixel_coords=[[1, 2], [32, 20]]),
        good(intrinsics=[50, 50, 15.5, 11.5, 64, 48]),
        good(intrinsics=[0, 50, 15.5, 11.5, 32, 24]),
        {"image": "rgb/a.png", "depth": [1.0]},
        "{not json",
        "",
        good(dataset="mine", scene="s1"),
    ]
    ds = load_curated(write(folder / "d.jsonl", records), folder)
    out = list(ds)
    assert [r["index"] for r in out] == [0, 15]
    assert out[1]["dataset"] == "mine" and out[0]["dataset"] == "d"
    assert ds.skipped == {
        "unsafe_path": 2,
        "unreadable_image": 3,
        "bad_depth": 2,
        "length_mismatch": 1,
        "bad_coords": 1,
        "coords_outside_image": 1,
        "size_mismatch": 1,
        "bad_intrinsics": 1,
        "missing_field": 1,
        "bad_json": 1,
    }
    assert ds.stats["ok"] == 2 and len(ds) == 16


def test_raise_mode_names_the_line_and_reason(folder):
    ds = load_curated(write(folder / "d.jsonl", [good(), good(image="../../etc/passwd")]), folder, on_error="raise")
    with pytest.raises(InvalidRecordError, match=r"record 1.*unsafe_path") as info:
        list(ds)
    assert info.value.reason == "unsafe_path"


def test_random_access_by_byte_offset(folder):
    ds = load_curated(write(folder / "d.jsonl", [good(depth=[1.0, d]) for d in (2.0, 3.0, 4.0)]), folder)
    assert ds[2]["depth"].tolist() == [1.0, 4.0] and ds[-3]["index"] == 0
    with pytest.raises(IndexError):
        ds[3]


def test_random_access_raises_on_bad_record_and_counts_it(folder):
    ds = load_curated(write(folder / "d.jsonl", [good(), good(image="rgb/corrupt.png")]), folder)
    with pytest.raises(InvalidRecordError):
        ds[1]
    assert ds.skipped == {"unreadable_image": 1}


def test_paths_mode_keeps_checked_absolute_paths(folder):
    ds = load_curated(write(folder / "d.jsonl", [good(image="/rgb/a.png")]), folder, decode_images=False)
    (rec,) = list(ds)
    assert rec["image"] == str((folder / "rgb" / "a.png").resolve())


def test_symlink_leaving_the_root_is_rejected(folder, tmp_path):
    (folder / "rgb" / "link.png").symlink_to(tmp_path / "secret.png")
    ds = load_curated(write(folder / "d.jsonl", [good(image="rgb/link.png")]), folder)
    assert list(ds) == [] and ds.skipped == {"unsafe_path": 1}


def test_argument_errors(folder):
    with pytest.raises(ValueError, match="`on_error`"):
        CuratedDataset(write(folder / "d.jsonl", []), folder, on_error="ignore")
    with pytest.raises(ValueError, match="`jsonl_path`"):
        load_curated(folder / "nope.jsonl")
    with pytest.raises(ValueError, match="`image_root`"):
        load_curated(write(folder / "d.jsonl", []), folder / "nope")


def test_two_view_records_validate_pose():
    rec = good(
        image2="rgb/a.png",
        intrinsics2=[50.0, 50.0, 15.5, 11.5, 32, 24],
        rotation=np.eye(3).tolist(),
        translation=[0.3, 0.0, 0.4],
    )
    assert validate_record(rec)["translation"].tolist() == [0.3, 0.0, 0.4]
    with pytest.raises(InvalidRecordError, match="bad_pose"):
        validate_record({**rec, "rotation": (2 * np.eye(3)).tolist()})
    with pytest.raises(InvalidRecordError, match="missing_field"):
        validate_record({**rec, "translation": None}, two_view=True)


def test_features_build_a_datasets_table():
    import datasets

    rows = {
        "image": [Image.new("RGB", (4, 3))],
        "intrinsics": [[5.0, 5.0, 1.5, 1.0, 4, 3]],
        "pixel_coords": [[[1.0, 2.0]]],
        "depth": [[2.0]],
        "dataset": ["x"],
        "scene": ["y"],
    }
    table = datasets.Dataset.from_dict(rows, features=record_features())
    assert table[0]["depth"] == [2.0] and table[0]["image"].size == (4, 3)


def test_two_view_records_load_both_images_and_confine_the_second(folder):
    pose = {"intrinsics2": [50.0, 50.0, 15.5, 11.5, 32, 24], "rotation": np.eye(3).tolist()}
    pose["translation"] = [0, 0, 1]
    records = [good(image2="rgb/a.png", **pose), good(image2="../../etc/passwd", **pose)]
    ds = load_curated(write(folder / "pairs.jsonl", records), folder)
    (rec,) = list(ds)
    assert rec["image2"].size == (32, 24) and rec["translation"].tolist() == [0.0, 0.0, 1.0]
    assert ds.skipped == {"unsafe_path": 1}


def test_hostile_lines_and_paths_are_skipped_by_reason_and_valid_records_kept(folder, monkeypatch):
    import depthlm_hf.data.curated as curated

    monkeypatch.setattr(curated, "MAX_LINE_BYTES", 200_000)
    os.mkfifo(folder / "rgb" / "fifo.png")  # opening it would block until a writer appears
    (folder / "rgb" / "dir.png").mkdir()
    lines = [
        good(),
        "[" * 100_000,  # nesting beyond the recursion limit
        '{"image": "rgb/a.png", "depth": [' + "9" * 5000 + "]}",  # an integer over Python's digit limit
        json.dumps(good(depth=[10**400, 2.0])),  # beyond float range
        good(image="rgb/a\x00.png"),
        good(image="a/" * 5000),
        good(image=["rgb/a.png"]),
        good(image="rgb/fifo.png"),
        good(image="rgb/dir.png"),
        good(image="rgb/missing.png"),
        '{"image": "rgb/a.png", "pad": "' + "x" * 300_000 + '"}',  # over the (patched) line limit
        good(intrinsics={"fx": 1}),
        good(pixel_coords=[[1, 2, 3]], depth=[1.0]),
        '"just a string"',
        good(),
    ]
    path = folder / "hostile.jsonl"
    with open(path, "wb") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n")
        f.write(b"\xff\xfe not utf-8\n")
    for decode in (True, False):
        ds = load_curated(path, folder, decode_images=decode)
        kept = list(ds)
        assert [r["index"] for r in kept] == [0, 14]
        assert ds.skipped == {
            "bad_json": 4,  # nesting, digit limit, a bare string, bad UTF-8
            "bad_value": 1,
            "bad_path": 3,
            "not_a_file": 2,
            "unreadable_image": 1,
            "line_too_long": 1,
            "bad_intrinsics": 1,
            "bad_coords": 1,
        }
        assert len(ds) == 16 and [ds[0]["index"], ds[14]["index"]] == [0, 14]
        with pytest.raises(InvalidRecordError, match="line_too_long"):
            ds[10]


def test_two_view_images_are_unified_and_cropped_per_view_in_order():
    from depthlm_hf.data.records import two_view_images
    from depthlm_hf.models.tiny import tiny_processor

    processor = tiny_processor(unified_focal_length=100.0)
    record = {
        "image": Image.new("RGB", (64, 48), (255, 0, 0)),
        "intrinsics": [50.0, 50.0, 31.5, 23.5, 64, 48],
        "image2": Image.new("RGB", (32, 24), (0, 0, 255)),
        "intrinsics2": [25.0, 25.0, 15.5, 11.5, 32, 24],
    }
    asked = []

    def window(camera):
        asked.append(camera.width)
        return None if len(asked) == 1 else (4, 2, 50, 40)

    first, second = two_view_images(processor, record, window)
    assert asked == [64, 32]  # one call per view, first view first
    assert first.size == (128, 96) and first.getpixel((0, 0)) == (255, 0, 0)
    assert second.size == (50, 40) and second.getpixel((0, 0)) == (0, 0, 255)
    assert [image.size for image in two_view_images(processor, record)] == [(128, 96), (128, 96)]
