"""The window a checkpoint was trained on (`prompting/model_window.py`): a processor setting that round-trips through
`save_pretrained`, and that the predictor applies to every query (exact windows, whole image otherwise)."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.prompting.markers import draw_markers
from depthlm_hf.prompting.model_window import ModelWindow, crop, window_setting
from depthlm_hf.prompting.processing import DepthLMProcessor

pytestmark = pytest.mark.usefixtures("one_thread")

F = 100.0
CAMERA = CameraIntrinsics(F, F, 111.5, 83.5, 224, 168)  # f = f*: the unified image is the input itself
QUERY = {"centre": "query", "width": 112, "height": 84}
PRINCIPAL = {"centre": "principal", "width": 112, "height": 84}


def scene() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (168, 224, 3), dtype=np.uint8))


def windowed(processor: DepthLMProcessor, window: dict | None) -> DepthLMProcessor:
    out = copy.deepcopy(processor)
    out.unified_focal_length, out.window = F, window_setting(window)
    return out


def test_window_setting_is_checked():
    assert window_setting(None) is None
    assert window_setting({"centre": "query", "width": 112.0, "height": 84}) == QUERY
    with pytest.raises(ValueError, match="`window` centre must be one of principal, query, got 'corner'"):
        window_setting({"centre": "corner", "width": 112, "height": 84})
    with pytest.raises(ValueError, match="`window` width must be a positive integer"):
        window_setting({"centre": "query", "width": 0, "height": 84})
    with pytest.raises(ValueError, match="keys centre, width, height"):
        window_setting({"centre": "query", "width": 112})
    with pytest.raises(TypeError, match="`window` must be a dict"):
        window_setting([112, 84])


def test_boxes_and_crop_pad_black_outside_the_image():
    window = ModelWindow.from_dict(QUERY)
    assert window.box(CAMERA, (10, 160)) == (-46, 118, 112, 84)
    assert ModelWindow.from_dict(PRINCIPAL).box(CAMERA) == (56, 42, 112, 84)
    cut, camera = crop(scene(), CAMERA, (-46, 118, 112, 84))
    pixels = np.asarray(cut)
    assert cut.size == (112, 84) and (pixels[:, :46] == 0).all() and (pixels[50:] == 0).all()
    np.testing.assert_array_equal(pixels[:50, 46:], np.asarray(scene())[118:, :66])
    assert (camera.fx, camera.cx, camera.cy, camera.width, camera.height) == (F, 55.5, 41.5, 112, 84)


def test_window_round_trips_through_save_and_load(tiny_dir, tmp_path):
    path = tmp_path / "query_window_model"
    shutil.copytree(tiny_dir, path)
    processor = DepthLMProcessor.from_pretrained(path)
    assert processor.window is None
    windowed(processor, QUERY).save_pretrained(path)
    loaded = DepthLMPredictor.from_pretrained(path, show_progress=False)
    assert loaded.processor.window == QUERY and loaded.processor.unified_focal_length == F


def test_query_window_feeds_exactly_the_window_of_each_query(tiny):
    model, processor = tiny
    points = np.array([[112, 84], [30, 100], [200, 20]])
    predictor = DepthLMPredictor(model, windowed(processor, QUERY), show_progress=False)
    queries = predictor.preprocess(scene(), CAMERA, points)
    assert len(queries.images) == 3 and [p.tolist() for p in queries.points] == [[[56, 42]]] * 3
    style = predictor.processor.marker_style
    for seen, (x, y) in zip(queries.marked_images(), points, strict=True):
        expected = scene().crop((x - 56, y - 42, x + 56, y + 42))  # black where the window leaves the image
        np.testing.assert_array_equal(np.asarray(seen), np.asarray(draw_markers(expected, [[56, 42]], style)))
    # What the model is fed: the same answers as asking each marked window itself, one query per window.
    out = predictor.predict(scene(), CAMERA, points)
    rows = [{"images": [image], "prompt": processor.task_messages("distance")} for image in queries.marked_images()]
    assert out.texts == predictor.predict_rows(rows).texts
    # Without the setting the whole image is fed: one image, the points where they are.
    whole = DepthLMPredictor(model, windowed(processor, None), show_progress=False).preprocess(scene(), CAMERA, points)
    assert len(whole.images) == 1 and whole.images[0].size == (224, 168)
    np.testing.assert_array_equal(whole.points[0], points)


def test_principal_window_crops_once_and_leaves_out_points_outside_it(tiny):
    model, processor = tiny
    predictor = DepthLMPredictor(model, windowed(processor, PRINCIPAL), show_progress=False)
    queries = predictor.preprocess(scene(), CAMERA, [[112, 84], [100, 70]])
    assert len(queries.images) == 1
    np.testing.assert_array_equal(np.asarray(queries.images[0]), np.asarray(scene().crop((56, 42, 168, 126))))
    assert queries.points[0].tolist() == [[56, 42], [44, 28]]
    assert predictor.processor.markable(CAMERA, [[112, 84], [10, 10], [200, 84]]).tolist() == [True, False, False]
    out = predictor.predict(scene(), CAMERA, [[112, 84], [10, 10]])
    assert out.values[1] is None and out.reasons[1] is not None
    with pytest.raises(ValueError, match="`points`"):
        predictor.preprocess(scene(), CAMERA, [[10, 10]])


def test_query_window_refuses_two_point_tasks(tiny):
    model, processor = tiny
    predictor = DepthLMPredictor(model, windowed(processor, QUERY), show_progress=False)
    with pytest.raises(ValueError, match="a query-centred window takes one"):
        predictor.preprocess(scene(), CAMERA, [[112, 84], [100, 70]], task="two_point_distance")


def test_model_card_says_how_the_checkpoint_is_asked():
    from depthlm_hf.training.modelcard import ModelCardInfo, render_model_card

    text = render_model_card(ModelCardInfo("Qwen/Qwen2.5-VL-3B-Instruct", window=QUERY))
    assert "- asked on: a 112x84 window of the unified image centred on each query pixel (one window per query)" in text
    assert "- asked on: the whole unified image" in render_model_card(ModelCardInfo("Qwen/Qwen2.5-VL-3B-Instruct"))
