"""`depthlm prepare`: synthetic and manifest sources write a curated dataset that loads back exactly."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.data import load_curated
from depthlm_hf.data.prepare import PrepareArguments
from depthlm_hf.scripts.prepare import main


def test_synthetic_source_round_trips_through_the_loader(tmp_path, capsys):
    out = tmp_path / "indoor"
    summary = main(["--output_dir", str(out), "--num_images", "4", "--num_points", "20", "--preset", "ground"])
    assert summary["images"] == 4 and summary["points"] == 80
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images"] == 4
    ds = load_curated(out / "indoor.jsonl")
    records = list(ds)
    assert len(records) == 4 and not ds.skipped and records[0]["dataset"] == "indoor"
    assert records[0]["image"].size == (224, 168) and len(records[0]["depth"]) == 20
    again = main(
        [
            "--output_dir",
            str(tmp_path / "again"),
            "--num_images",
            "4",
            "--num_points",
            "20",
            "--preset",
            "ground",
            "--dataset",
            "indoor",
        ]
    )
    assert (tmp_path / "again" / "indoor.jsonl").read_text() == (out / "indoor.jsonl").read_text()
    assert again["points"] == 80


def test_manifest_source_with_millimetre_pngs_masks_and_a_broken_line(tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    Image.new("RGB", (40, 30), (50, 60, 70)).save(src / "a.png")
    Image.fromarray(np.full((30, 40), 2000, np.uint16)).save(src / "a_depth.png")
    mask = np.zeros((30, 40), np.uint8)
    mask[10:20, 10:20] = 1
    np.save(src / "a_mask.npy", mask)
    lines = [
        {
            "rgb": "a.png",
            "depth": "a_depth.png",
            "mask": "a_mask.npy",
            "intrinsics": [40, 40, 19.5, 14.5, 40, 30],
        },
        {"rgb": "missing.png", "depth": "a_depth.png", "intrinsics": [40, 40, 19.5, 14.5, 40, 30]},
    ]
    (src / "m.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "mine"
    summary = main(
        [
            "--output_dir",
            str(out),
            "--source",
            "manifest",
            "--manifest",
            str(src / "m.jsonl"),
            "--depth_scale",
            "1000",
            "--num_points",
            "30",
        ]
    )
    assert summary["images"] == 1 and summary["skipped"] == {"unreadable_rgb": 1}
    (record,) = list(load_curated(out / "mine.jsonl"))
    xy = record["pixel_coords"]
    assert len(xy) == 30 and ((xy >= 10) & (xy < 20)).all()
    expected = 2.0 * np.sqrt(((xy[:, 0] - 19.5) / 40) ** 2 + ((xy[:, 1] - 14.5) / 40) ** 2 + 1)
    np.testing.assert_allclose(record["depth"], expected, rtol=1e-12)
    assert record["scene"] == "a"


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="`source`"):
        PrepareArguments(output_dir="x", source="kinect")
    with pytest.raises(ValueError, match="`manifest`"):
        PrepareArguments(output_dir="x", source="manifest")


def test_bad_arguments_are_refused_up_front(tmp_path):
    (tmp_path / "rgb.jsonl").write_text('{"image": "a.png", "intrinsics": [1, 1, 1, 1, 2, 2]}\n')  # a curated file
    (tmp_path / "text.jsonl").write_text("rgb,depth\n")
    os.mkfifo(tmp_path / "fifo.jsonl")  # reading it would block
    manifest = {"output_dir": "x", "source": "manifest"}
    cases = [
        ({"output_dir": "x", "depth_scale": 0.0}, r"`depth_scale` must be finite and > 0 .*got 0.0"),
        ({"output_dir": "x", "depth_scale": -1000.0}, r"`depth_scale` must be finite and > 0 .*got -1000.0"),
        ({"output_dir": "x", "min_depth": 5.0, "max_depth": 1.0}, r"0 <= min_depth < max_depth \[m\], got 5.0 and 1.0"),
        ({"output_dir": "x", "min_depth": -1.0}, r"0 <= min_depth < max_depth \[m\], got -1.0 and inf"),
        ({"output_dir": "x", "border": -2}, r"`border` must be >= 0 \[px\], got -2"),
        ({"output_dir": "x", "max_pixels": 0}, r"`max_pixels` must be > 0, got 0"),
        ({**manifest, "manifest": str(tmp_path / "none.jsonl")}, r"`manifest` .*none.jsonl' does not exist"),
        ({**manifest, "manifest": str(tmp_path / "fifo.jsonl")}, r"`manifest` .*fifo.jsonl' is not a regular file"),
        ({**manifest, "manifest": str(tmp_path)}, r"is not a regular file"),
        ({**manifest, "manifest": str(tmp_path / "text.jsonl")}, r"`manifest` .*text.jsonl' is not a readable jsonl"),
        ({**manifest, "manifest": str(tmp_path / "rgb.jsonl")}, r"does not look like an RGB-D manifest: .*rgb, depth"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            PrepareArguments(**kwargs)


def test_bad_depth_files_are_skipped_and_counted_by_reason(tmp_path, monkeypatch):
    src = tmp_path / "raw"
    src.mkdir()
    Image.new("RGB", (40, 30), (50, 60, 70)).save(src / "a.png")
    Image.fromarray(np.full((30, 40), 2000, np.uint16)).save(src / "a_depth.png")
    Image.fromarray(np.full((300, 400), 2000, np.uint16)).save(src / "big_depth.png")  # over the pixel limit
    np.save(src / "big_depth.npy", np.zeros((300, 400), np.float32))
    np.save(src / "cube_depth.npy", np.zeros((2, 30, 40), np.float32))
    (src / "cut_depth.npy").write_bytes((src / "big_depth.npy").read_bytes()[:100])
    np.save(src / "objects.npy", np.array([{"a": 1}], dtype=object))  # needs pickle: refused
    os.mkfifo(src / "fifo_depth.png")
    intrinsics = [40, 40, 19.5, 14.5, 40, 30]
    lines = [{"rgb": "a.png", "depth": "a_depth.png", "intrinsics": intrinsics}]
    for depth in ("big_depth.png", "big_depth.npy", "cube_depth.npy", "cut_depth.npy", "objects.npy", "fifo_depth.png"):
        lines.append({"rgb": "a.png", "depth": depth, "intrinsics": intrinsics})
    lines += [
        {"rgb": "a.png", "depth": "a_depth.png", "intrinsics": intrinsics, "mask": "big_depth.npy"},
        {"rgb": "a.png", "depth": 7, "intrinsics": intrinsics},
        {"rgb": "a.png", "intrinsics": intrinsics},
        {"rgb": "a.png", "depth": "a_depth.png", "intrinsics": [40, 40, 19.5, 14.5, 80, 60]},
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + "{not json\n"
    (src / "m.jsonl").write_text(text + json.dumps(lines[0]) + "\n")
    argv = ["--output_dir", str(tmp_path / "out"), "--source", "manifest", "--manifest", str(src / "m.jsonl")]
    summary = main([*argv, "--max_pixels", "100000", "--num_points", "5"])
    assert summary["images"] == 2 and summary["points"] == 10  # the first and the last line
    assert summary["skipped"] == {
        "unreadable_depth": 7,  # two too large, a 3-D map, a cut file, a pickle, a FIFO, a non-string path
        "unreadable_mask": 1,
        "missing_field": 1,
        "bad_entry": 1,
        "bad_json": 1,
    }
    # a raised limit is honoured: the large maps are read, and then refused for not matching the 40x30 image
    summary = main([*argv, "--max_pixels", "200000", "--num_points", "5"])
    assert summary["skipped"] == {"unreadable_depth": 5, "missing_field": 1, "bad_entry": 4, "bad_json": 1}
