"""`depthlm prepare`: synthetic and manifest sources write a curated dataset that loads back exactly."""

import json

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
    assert summary["images"] == 1 and summary["skipped"] == {"unreadable": 1}
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
