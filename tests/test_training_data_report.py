"""Training never drops data silently: skipped records are printed at start and end, written to
data_skips.json, and a run fails above `max_skipped_fraction`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.cli import main as cli
from depthlm_hf.scripts import grpo, sft

pytestmark = pytest.mark.usefixtures("one_thread")

SFT_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "sft" / "config_synthetic.yaml"
CAMERA = [200.0, 200.0, 111.5, 83.5, 224, 168]  # the tiny recipe's focal length: no resize


def _curated(root: Path, images: list[str], extra_lines: list[str] = ()) -> str:
    """A curated dataset of 224x168 images; names starting with "corrupt" get a broken PNG, "missing" none."""
    (root / "rgb").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, name in enumerate(images):
        if name.startswith("corrupt"):
            (root / "rgb" / name).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
        elif not name.startswith("missing"):
            Image.fromarray(rng.integers(0, 255, (168, 224, 3), dtype=np.uint8)).save(root / "rgb" / name)
        record = {"image": f"rgb/{name}", "intrinsics": CAMERA, "pixel_coords": [[100, 80], [60, 40]]}
        lines.append(json.dumps({**record, "depth": [1.0 + i, 2.0]}))
    (root / "train.jsonl").write_text("\n".join([*lines, *extra_lines]) + "\n")
    return f"toy={root / 'train.jsonl'}:{root}"


def _argv(out: Path, data: str, *extra: str) -> list[str]:
    return ["--config", str(SFT_RECIPE), "--output_dir", str(out), "--dataset", data, "--max_steps", "3",
            "--per_device_train_batch_size", "2", *extra]  # fmt: skip


def test_skips_are_printed_written_and_within_the_limit_the_run_trains(tmp_path, capsys):
    images = [f"{i}.png" for i in range(8)] + ["corrupt.png", "missing.png"]
    data = _curated(tmp_path / "data", images, ['{"image": "rgb/0.png", "depth": [1.0]'])
    out = tmp_path / "run"
    trainer = sft.main(_argv(out, data, "--max_skipped_fraction", "0.5"))
    assert trainer.state.global_step == 3
    printed = capsys.readouterr().out
    assert "data at start: toy: 2 of 11 records skipped (18.2%): bad_json 1, unreadable_image 1" in printed
    assert "data at end: toy: " in printed
    report = json.loads((out / "data_skips.json").read_text())
    assert report["max_skipped_fraction"] == 0.5
    assert report["start"]["toy"] == {
        "total": 11,
        "skipped": 2,
        "skipped_fraction": 2 / 11,
        "reasons": {"bad_json": 1, "unreadable_image": 1},
    }
    end = report["end"]["toy"]
    # draws are a pure function of the seed; every unusable record drawn is counted, unreadable images included
    # (a corrupt one is found only when decoded, in training)
    reasons = {"bad_json": 1, "unreadable_image": 2}
    assert end == {"total": 10, "skipped": 3, "skipped_fraction": 0.3, "reasons": reasons}


def test_too_many_skips_at_the_start_scan_fail_before_training(tmp_path, capsys):
    data = _curated(tmp_path / "data", ["0.png", "missing1.png", "missing2.png"])
    assert cli(["sft", *_argv(tmp_path / "run", data)]) == 2
    err = capsys.readouterr().err
    assert "depthlm sft: error: toy: 2 of 3 records skipped (66.7%): unreadable_image 2" in err
    assert "more than `max_skipped_fraction` = 0.1" in err and not (tmp_path / "run" / "model.safetensors").exists()


def test_unreadable_images_found_in_training_fail_the_run_instead_of_exit_0(tmp_path):
    data = _curated(tmp_path / "data", ["0.png", "corrupt1.png", "corrupt2.png", "corrupt3.png"])
    with pytest.raises(ValueError, match=r"toy \(records drawn in training\): .*unreadable_image .*`max_skipped_frac"):
        sft.main(_argv(tmp_path / "run", data))
    report = json.loads((tmp_path / "run" / "data_skips.json").read_text())
    assert report["start"]["toy"]["skipped"] == 0 and report["end"]["toy"]["reasons"]["unreadable_image"] > 0


def test_the_limit_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"`max_skipped_fraction` must be a number in \[0, 1\], got 1.5"):
        grpo.make_parser().parse_args_and_config(["--model_name_or_path", "tiny", "--max_skipped_fraction", "1.5"])
