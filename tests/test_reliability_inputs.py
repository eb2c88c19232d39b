"""Hostile or odd inputs (issue 24, problems 4-8): checkpoint settings checked like arguments in code, finite
rewards, strict types in records and CLI tuples, and the smaller cases of the probe, each with its exact outcome.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.cli import main

W, H = 112, 84


def error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"depthlm {command}: error: "), err[-3000:]
    return line


@pytest.fixture
def checkpoint_copy(tiny_dir, tmp_path):
    """`edit(**settings)` -> a copy of the tiny checkpoint whose processor_config.json holds `settings`."""

    def edit(**settings) -> Path:
        folder = tmp_path / "ckpt"
        shutil.copytree(tiny_dir, folder, dirs_exist_ok=True)
        config = json.loads((folder / "processor_config.json").read_text())
        (folder / "processor_config.json").write_text(json.dumps({**config, **settings}))
        return folder

    return edit


# ---------------------------------------------------------------------------------------- checkpoint settings
def test_a_checkpoint_cannot_switch_the_pixel_guard_off(checkpoint_copy):
    from depthlm_hf.models.tiny import tiny_processor
    from depthlm_hf.prompting.imaging import load_image
    from depthlm_hf.prompting.processing import DepthLMProcessor

    folder = checkpoint_copy(max_image_pixels=1e30)
    with pytest.raises(ValueError) as err:
        DepthLMProcessor.from_pretrained(folder)
    assert str(err.value) == (
        "`max_image_pixels` must be a whole number of pixels in [1, 1000000000], got 1e+30. "
        f"(read from {folder / 'processor_config.json'})"
    )
    with pytest.raises(ValueError, match=r"`max_image_pixels` must be a whole number of pixels in \[1, 1000000000\]"):
        tiny_processor(max_image_pixels=1e30)  # the same rule in code
    with pytest.raises(ValueError, match=r"`max_pixels` must be a whole number of pixels"):
        load_image(Image.new("RGB", (4, 4)), max_pixels=1e30)
    assert DepthLMProcessor.from_pretrained(checkpoint_copy(max_image_pixels=1e6)).max_image_pixels == 1_000_000


def test_a_bad_unified_focal_length_is_reported_as_such(checkpoint_copy):
    from depthlm_hf.prompting.processing import DepthLMProcessor

    folder = checkpoint_copy(unified_focal_length=-5)
    with pytest.raises(ValueError) as err:
        DepthLMProcessor.from_pretrained(folder)
    assert str(err.value) == (
        f"`unified_focal_length` must be finite and > 0, got -5.0. (read from {folder / 'processor_config.json'})"
    )
    with pytest.raises(TypeError, match="`unified_focal_length` must be a real number, got bool True"):
        DepthLMProcessor.from_pretrained(checkpoint_copy(unified_focal_length=True))
    # An argument given in code is not blamed on the file.
    with pytest.raises(ValueError, match=r"^`unified_focal_length` must be finite and > 0, got -1.0.$"):
        DepthLMProcessor.from_pretrained(checkpoint_copy(), unified_focal_length=-1)


# -------------------------------------------------------------------------------------------- rewards, metric
def test_rewards_are_finite_for_every_parseable_answer():
    from depthlm_hf.training.rewards import REWARD_FLOOR, get_reward

    l2, absrel, l1 = get_reward("neg_l2"), get_reward("neg_absrel"), get_reward("neg_l1")
    assert l2(["1e160", "3"], depth=[2.0, 2.0]) == [REWARD_FLOOR, -1.0]
    assert absrel(["2"], depth=[5e-324]) == [REWARD_FLOOR]
    assert l1(["-1e308"], depth=[1e308]) == [REWARD_FLOOR]
    assert all(math.isfinite(r) for r in l2(["1e308", "0", "1e-300"], depth=[1e-300, 1e300, 1e300]))


def test_reward_and_metric_errors_name_the_argument():
    import evaluate

    from depthlm_hf import metric_path
    from depthlm_hf.training.rewards import get_reward

    with pytest.raises(TypeError, match=r"^`depth` must hold numbers \(or None\) in the task's unit, got str '2.0' at"):
        get_reward("neg_l1")(["2", "3"], depth=[2.0, "2.0"])
    with pytest.raises(TypeError, match="`depth` must hold numbers"):
        get_reward("neg_l1")(["2"], depth=[True])
    metric = evaluate.load(metric_path())
    with pytest.raises(TypeError, match=r"^`references` is required with the other"):
        metric.compute(predictions=[1.0], references=None)
    with pytest.raises(TypeError, match=r"^`predictions` is required with the other"):
        metric.compute(predictions=None, references=[1.0])


# ------------------------------------------------------------------------------------------------ strict types
RECORD = {"image": "a.png", "intrinsics": [100, 100, 55.5, 41.5, W, H], "pixel_coords": [[10, 20]], "depth": [2.5]}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("depth", [True], "bad_depth"),
        ("pixel_coords", [[True, 20]], "bad_coords"),
        ("pixel_coords", [[10, False]], "bad_coords"),
        ("depth", ["2.5"], "bad_depth"),
        ("pixel_coords", [["10", 20]], "bad_coords"),
        ("z_depth", [True], "bad_depth"),
        ("intrinsics", [100, 100, 55.5, 41.5, True, H], "bad_intrinsics"),
        ("intrinsics", ["100", 100, 55.5, 41.5, W, H], "bad_intrinsics"),
    ],
)
def test_records_take_json_numbers_only(field, value, reason, tmp_path):
    """Booleans are not numbers and numeric strings are refused in every field, as `intrinsics` always did."""
    from depthlm_hf.data import InvalidRecordError, load_curated, validate_record

    with pytest.raises(InvalidRecordError) as err:
        validate_record({**RECORD, field: value})
    assert err.value.reason == reason
    Image.new("RGB", (W, H)).save(tmp_path / "a.png")
    (tmp_path / "d.jsonl").write_text(json.dumps({**RECORD, field: value}) + "\n" + json.dumps(RECORD) + "\n")
    data = load_curated(tmp_path / "d.jsonl", tmp_path)
    assert [record["index"] for record in data] == [1] and data.skipped == {reason: 1}


def test_cli_points_are_pairs(tiny_dir, tmp_path, capsys):
    Image.new("RGB", (W, H)).save(tmp_path / "img.png")
    base = ["predict", "--model", str(tiny_dir), "--image", str(tmp_path / "img.png"), "--intrinsics", "100", "100",
            "55.5", "41.5", "--output_dir", str(tmp_path / "out"), "--points"]  # fmt: skip
    for points in (["1,2,3", "4,5,6"], ["1,2", "3"], ["nan,2"], ["1,inf"]):
        assert main([*base, *points]) == 2
        assert "`points` must be X,Y pairs of finite numbers" in error_line(capsys, "predict")
    assert not (tmp_path / "out").exists()


def test_non_finite_points_raise_as_documented():
    from depthlm_hf.models.tiny import tiny_processor

    processor = tiny_processor()
    camera = [100.0, 100.0, 55.5, 41.5, W, H]
    for points in ([[float("nan"), 10]], [[10, float("inf")]]):
        with pytest.raises(ValueError, match=r"^`points` must be finite pixels"):
            processor.map_queries(camera, points)
    with pytest.raises(ValueError, match="`points` must be an"):
        processor.map_queries(camera, [[True, 10]])


# ---------------------------------------------------------------------------------------------------- smaller
def test_a_truncated_safetensors_names_the_folder(tiny_dir, tmp_path, capsys):
    folder = tmp_path / "cut"
    shutil.copytree(tiny_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    Image.new("RGB", (W, H)).save(tmp_path / "img.png")
    argv = ["predict", "--model", str(folder), "--image", str(tmp_path / "img.png"), "--intrinsics", "100", "100",
            "55.5", "41.5", "--points", "50,40", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    line = error_line(capsys, "predict")
    assert f"`path` {str(folder)!r} has no usable weights: model.safetensors has " in line, line


def test_app_port_out_of_range_is_one_line(capsys):
    assert main(["app", "--port", "99999"]) == 2
    assert error_line(capsys, "app") == "depthlm app: error: `port` must be a TCP port number in [1, 65535], got 99999."


@pytest.mark.parametrize("value", ["nan", "inf", "-2", "0", "x"])
def test_eval_constant_must_be_a_finite_positive_number(value, tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text("")
    argv = [
        "eval",
        "--model",
        f"constant:{value}",
        "--data",
        str(tmp_path / "d.jsonl"),
        "--output_dir",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    assert "`model` constant must be a finite number > 0" in error_line(capsys, "eval")
    assert not (tmp_path / "o").exists()


def test_a_float_tiff_with_an_inf_pixel_keeps_its_contrast(tmp_path):
    from depthlm_hf.prompting.imaging import load_image

    array = np.arange(16, dtype=np.float32).reshape(4, 4)
    array[0, 0], array[0, 1] = np.inf, np.nan
    Image.fromarray(array, mode="F").save(tmp_path / "depth.tif")
    gray = np.asarray(load_image(tmp_path / "depth.tif"))[..., 0]
    # Finite pixels 2..15 span 0..255; inf and NaN are black.
    expected = np.where(np.isfinite(array), (np.nan_to_num(array) - 2) / 13 * 255, 0).astype(np.uint8)
    assert gray.tolist() == expected.tolist() and gray.max() == 255


# ------------------------------------------------------------------------------------------------------- EXIF
@pytest.fixture
def rotated_jpeg(tmp_path) -> Path:
    """A 40x30 stored JPEG with EXIF orientation 6 (displayed rotated 90 degrees clockwise, 30x40) and a 35 mm focal
    length; a white block sits at the stored top-left corner, so the displayed picture has it top-right."""
    stored = np.zeros((30, 40, 3), np.uint8)
    stored[:8, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[41989] = 28
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    return path


def test_images_are_read_as_displayed(rotated_jpeg):
    from depthlm_hf.inference.outputs import camera_for
    from depthlm_hf.prompting.imaging import load_image

    shown = load_image(rotated_jpeg)
    assert shown.size == (30, 40)
    pixels = np.asarray(shown)[..., 0]
    assert pixels[:6, -6:].min() > 200 and pixels[-6:, :6].max() < 50  # the block is top-right as displayed
    assert load_image(rotated_jpeg, exif_orientation=False).size == (40, 30)
    camera, source = camera_for(shown)  # the EXIF focal length survives the rotation
    assert source == "exif" and (camera.width, camera.height) == (30, 40)


def test_predict_asks_the_pixels_as_displayed(rotated_jpeg, tiny_dir, tmp_path):
    argv = ["predict", "--model", str(tiny_dir), "--image", str(rotated_jpeg), "--intrinsics", "30", "30", "14.5",
            "19.5", "--points", "15,20", "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--output_dir", str(tmp_path / "shown")]) == 0
    assert json.loads((tmp_path / "shown" / "predictions.json").read_text())["intrinsics"][4:] == [30, 40]
    with Image.open(tmp_path / "shown" / "preview.png") as preview:
        assert preview.size == (30, 40)
    stored = [*argv[:6], "40", "30", "19.5", "14.5", *argv[10:], "--exif_orientation", "false"]
    assert main([*stored, "--output_dir", str(tmp_path / "stored")]) == 0
    assert json.loads((tmp_path / "stored" / "predictions.json").read_text())["intrinsics"][4:] == [40, 30]
