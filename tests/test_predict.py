"""`depthlm predict`: the camera (intrinsics, field of view, EXIF), per-point JSON with unfit points as null,
the point cloud PLY, depth and preview images; on a real iBims-1 image with a saved tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData

from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.inference.decoding import DepthPrediction
from depthlm_hf.inference.outputs import camera_for, colorize_depth, exif_focal_35mm, prediction_entries
from depthlm_hf.scripts.predict import PredictArguments, main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_camera_from_intrinsics_fov_or_exif(tmp_path):
    image = Image.new("RGB", (640, 480))
    assert camera_for(image, [500, 501, 320, 240]) == (CameraIntrinsics(500, 501, 320, 240, 640, 480), "intrinsics")
    camera, source = camera_for(image, fov=90)
    assert source == "fov" and camera.to_list() == [320.0, 320.0, 319.5, 239.5, 640, 480]
    exif = Image.Exif()
    exif.get_ifd(0x8769)[41989] = 26  # FocalLengthIn35mmFilm [mm]
    image.save(tmp_path / "phone.jpg", exif=exif)
    with Image.open(tmp_path / "phone.jpg") as photo:
        assert exif_focal_35mm(photo) == 26.0
        camera, source = camera_for(photo)
    assert source == "exif" and camera.fx == camera.fy == pytest.approx(26 * 800 / np.hypot(36, 24))
    with pytest.raises(ValueError, match="camera is unknown"):
        camera_for(image)
    with pytest.raises(ValueError, match="describe a 320x240 image"):
        camera_for(image, [500, 500, 160, 120, 320, 240])
    with pytest.raises(ValueError, match="`fov`"):
        camera_for(image, fov=180)


def test_entries_say_why_a_query_has_no_answer():
    answer = DepthPrediction([2.5, None, None], np.array([0.9, np.nan, np.nan]), ["2.5 m", "", "x"],
                             [None, "outside the 4x4 image", None])  # fmt: skip
    assert prediction_entries([[1, 2], [9, 9], [2.5, 3]], answer) == [
        {"x": 1, "y": 2, "value": 2.5, "confidence": 0.9, "text": "2.5 m"},
        {"x": 9, "y": 9, "value": None, "confidence": None, "reason": "outside the 4x4 image"},
        {"x": 2.5, "y": 3, "value": None, "confidence": None, "reason": "no number in the model's answer 'x'"},
    ]


def test_entries_of_two_point_queries_list_both_points():
    answer = DepthPrediction([1.5], np.array([0.8]), ["1.5 m"])
    assert prediction_entries([[1, 2], [3, 4]], answer, per_query=2) == [
        {"points": [[1, 2], [3, 4]], "value": 1.5, "confidence": 0.8, "text": "1.5 m"}
    ]


def test_colorize_depth_near_is_red_far_is_blue_nan_black():
    rgb = np.asarray(colorize_depth(np.array([[1.0, 10.0, np.nan]])))
    assert rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[0, 1, 2] > rgb[0, 1, 0] and (rgb[0, 2] == 0).all()


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="`points`"):
        PredictArguments(model="m", image="i")
    with pytest.raises(ValueError, match="`num_points`"):
        PredictArguments(model="m", image="i", num_points=10, task="z_distance")
    with pytest.raises(ValueError, match="`task`"):
        PredictArguments(model="m", image="i", points=["1,2"], task="translation")
    with pytest.raises(ValueError, match="X,Y pairs"):
        PredictArguments(model="m", image="i", points=["1;2"]).point_array()


def test_predict_on_an_ibims1_image_with_a_saved_tiny_checkpoint(ibims1_dir, trained_tiny_dir, tmp_path):
    record = json.loads((ibims1_dir / "ibims1_val.jsonl").read_text().splitlines()[0])
    fx, fy, cx, cy, w, h = record["intrinsics"]
    points = ["320,240", "0,0", "100,50"]  # (0, 0): too near the border for the arrow marker
    argv = ["--model", str(trained_tiny_dir), "--image", str(ibims1_dir / record["image"]), "--output_dir",
            str(tmp_path), "--intrinsics", *map(str, (fx, fy, cx, cy)), "--points", *points,
            "--num_points", "12"]  # fmt: skip
    result = main(argv)
    saved = json.loads((tmp_path / "predictions.json").read_text())
    assert saved["intrinsics"] == [fx, fy, cx, cy, w, h] and saved["camera_source"] == "intrinsics"
    assert [(p["x"], p["y"]) for p in saved["points"]] == [(320, 240), (0, 0), (100, 50)]
    unfit = saved["points"][1]
    assert unfit["value"] is None and unfit["confidence"] is None and unfit["reason"].startswith("too near the border")
    for entry in (saved["points"][0], saved["points"][2]):  # the taught template gives a number everywhere
        assert entry["value"] > 0 and 0 < entry["confidence"] <= 1 and entry["text"].endswith(" meters")
    assert saved["points"] == result["points"]
    vertex = PlyData.read(str(tmp_path / "point_cloud.ply"))["vertex"]
    assert len(vertex) == saved["grid"]["ply_points"] == 12 and saved["grid"]["shape"] == [3, 4]
    assert {p.name for p in vertex.properties} == {"x", "y", "z", "red", "green", "blue", "confidence"}
    assert np.all(vertex["z"] > 0) and np.all((vertex["confidence"] > 0) & (vertex["confidence"] <= 1))
    assert Image.open(tmp_path / "depth.png").size == (w, h) == Image.open(tmp_path / "preview.png").size
