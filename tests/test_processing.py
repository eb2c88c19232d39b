"""DepthLMProcessor: exact visual prompts, model inputs the tiny model accepts, settings that round-trip."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from depthlm_hf.geometry import CameraIntrinsics
from depthlm_hf.prompting.processing import PRESETS, DepthLMProcessor

IBIMS = [559.62, 558.14, 361.87, 241.99, 640, 480]
SMALL = [150.0, 150.0, 79.5, 59.5, 160, 120]


def _image(width=160, height=120, seed=0) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 200, (height, width, 3), dtype=np.uint8))


def _red(image: Image.Image) -> set[tuple[int, int]]:
    ys, xs = np.nonzero((np.asarray(image) == (255, 0, 0)).all(axis=-1))
    return set(zip(xs.tolist(), ys.tolist(), strict=True))


def test_ibims_camera_prepare_is_exact(tiny):
    _, processor = tiny
    prepared = processor.prepare(_image(640, 480), IBIMS, [[519, 129]])
    assert prepared.image.size == (1143, 859)
    assert prepared.points.tolist() == [[928, 232]]
    assert prepared.intrinsics.fx == pytest.approx(1000.0) and prepared.intrinsics.fy == pytest.approx(1000.0)
    red = _red(prepared.image)
    assert (928, 232) in red and max(red) == (928, 232)  # the arrow's tip is the mapped query pixel
    assert {(923 + i, 232) for i in range(6)} <= red


def test_prepare_with_crop_keeps_3d_point(tiny):
    _, processor = tiny
    full = processor.prepare(_image(640, 480), IBIMS, [[519, 129]])
    cropped = processor.prepare(_image(640, 480), IBIMS, [[519, 129]], crop=(100, 50, 1000, 700))
    assert cropped.image.size == (1000, 700)
    assert cropped.points.tolist() == [[828, 182]]
    assert cropped.intrinsics.cx == pytest.approx(full.intrinsics.cx - 100)
    assert np.asarray(cropped.image)[182, 828].tolist() == [255, 0, 0]


def test_inputs_work_with_forward_and_generate(tiny):
    model, processor = tiny
    image = _image()
    batch = processor(images=[image, image], intrinsics=[SMALL, SMALL], points=[[[80, 60]], [[40, 30], [100, 90]]])
    assert batch["input_ids"].shape[0] == 3  # one query per point
    assert (batch["attention_mask"][:, -1] == 1).all()  # left padding
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss
        generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert torch.isfinite(loss)
    assert generated.shape == (3, batch["input_ids"].shape[1] + 3)
    texts = processor.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert all(
        processor.parse_answer(text) is None or isinstance(processor.parse_answer(text), float) for text in texts
    )


def test_forced_answer_prefix_and_messages(tiny):
    _, processor = tiny
    batch = processor(images=_image(), intrinsics=SMALL, points=[[80, 60]], force_answer_prefix=True)
    text = processor.decode(batch["input_ids"][0])
    assert text.endswith(
        "How many meters is this point from the camera?<|im_end|>\n<|im_start|>assistant\nThe point is around "
    )
    row = processor.training_row(_image(), SMALL, [[80, 60]], 3.217)
    assert row["completion"][0]["content"][0]["text"] == "The point is around 3.22 meters away from the camera."
    assert row["prompt"][0]["content"][0] == {"type": "image"} and len(row["images"]) == 1
    assert processor.question("time", speed=2.0).endswith("at 2.00 meters per second?")


def test_forced_prefix_drops_a_space_the_tokenizer_glues_to_digits(monkeypatch):
    import re

    from depthlm_hf.models.tiny import tiny_processor

    processor = tiny_processor()
    assert processor.forced_prefix() == "The point is around "  # digits stand alone here: "Ġ", "3"
    glue = lambda text, add_special_tokens=False: re.findall(r" ?\d|[^\d ]+| ", text)  # noqa: E731
    monkeypatch.setattr(processor.tokenizer, "encode", glue)  # a Llama-style tokenizer: " 3" is one token
    assert processor.forced_prefix() == "The point is around"


def test_two_point_task_draws_two_markers(tiny):
    _, processor = tiny
    images = processor.query_images(_image(), SMALL, [[60, 60], [120, 60]], points_per_query=2)
    assert len(images) == 1
    batch = processor(images=_image(), intrinsics=SMALL, points=[[60, 60], [120, 60]], task="two_point_distance")
    assert batch["input_ids"].shape[0] == 1


def test_plain_text_call_passes_through(tiny):
    _, processor = tiny
    plain = processor(text=["hello"], return_tensors="pt")
    assert plain["input_ids"].tolist() == processor.tokenizer(["hello"], return_tensors="pt")["input_ids"].tolist()


SAVE_AND_RUN = r"""
import json, sys, torch, numpy as np
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration
from depthlm_hf import DepthLMProcessor
path = sys.argv[1]
processor = DepthLMProcessor.from_pretrained(path)
model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path)
image = Image.fromarray(np.random.RandomState(0).randint(0, 200, (120, 160, 3), dtype=np.uint8))
batch = processor(images=image, intrinsics=[150.0, 150.0, 79.5, 59.5, 160, 120], points=[[80, 60]])
with torch.no_grad():
    logits = model(**batch).logits[0, -1, :8].tolist()
print(json.dumps({"settings": {k: v for k, v in processor.to_dict().items() if k != "image_processor"},
                  "ids": batch["input_ids"][0].tolist(), "logits": logits}))
"""


def test_save_and_reload_in_fresh_process(tiny, tmp_path):
    from depthlm_hf.models.tiny import tiny_qwen2_5_vl

    model, processor = tiny_qwen2_5_vl(unified_focal_length=640.0, marker={"shape": "cross", "size": 4})
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    assert config["processor_class"] == "Qwen2_5_VLProcessor"  # stock loaders see the stock processor
    assert config["unified_focal_length"] == 640.0 and config["marker"]["shape"] == "cross"
    out = subprocess.run(
        [sys.executable, "-c", SAVE_AND_RUN, str(tmp_path)], capture_output=True, text=True, check=True
    )
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    image = Image.fromarray(np.random.RandomState(0).randint(0, 200, (120, 160, 3), dtype=np.uint8))
    batch = processor(images=image, intrinsics=SMALL, points=[[80, 60]])
    with torch.no_grad():
        logits = model(**batch).logits[0, -1, :8].tolist()
    expected = {k: v for k, v in processor.to_dict().items() if k != "image_processor"}
    assert reloaded["settings"] == json.loads(json.dumps(expected))
    assert reloaded["ids"] == batch["input_ids"][0].tolist()
    np.testing.assert_allclose(reloaded["logits"], logits, rtol=1e-5, atol=1e-6)


def test_auto_processor_gives_the_stock_processor(tmp_path):
    from transformers import AutoProcessor, LlavaProcessor

    from depthlm_hf.models.tiny import tiny_llava_pixtral

    _, processor = tiny_llava_pixtral()
    processor.save_pretrained(tmp_path)
    stock = AutoProcessor.from_pretrained(tmp_path)
    assert type(stock) is LlavaProcessor and stock.patch_size == 16
    reloaded = DepthLMProcessor.from_pretrained(tmp_path)
    assert reloaded.unified_focal_length == 750.0 and reloaded.focal_mode == "fx"
    assert reloaded.question_template == PRESETS["official_pixtral"]["question_template"]
    image = _image()
    assert (
        reloaded(images=image, intrinsics=SMALL, points=[[80, 60]])["input_ids"].tolist()
        == processor(images=image, intrinsics=SMALL, points=[[80, 60]])["input_ids"].tolist()
    )


def test_official_preset_text_and_parser(tmp_path):
    from depthlm_hf.models.tiny import tiny_llava_pixtral

    _, processor = tiny_llava_pixtral()
    assert processor.format_answer(2.5) == (
        "<think> The point is around 2.50 meters away from the camera. </think>\n\n<answer> 2.50 </answer>"
    )
    assert processor.answer_prefix() == "<think> The point is around "
    assert processor.parse_answer(processor.format_answer(2.5)) == 2.5
    prepared = processor.prepare(_image(640, 480), IBIMS, [[519, 129]])
    assert prepared.image.size == (857, 643)  # floor(640 * 750 / 559.62), floor(480 * 750 / 559.62)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"intrinsics": [0.0, 150, 80, 60, 160, 120], "points": [[80, 60]]}, ValueError, "`fx` must be finite and > 0"),
        (
            {"intrinsics": [150, 150, float("nan"), 60, 160, 120], "points": [[80, 60]]},
            ValueError,
            "`cx` must be finite",
        ),
        (
            {"intrinsics": SMALL, "points": [[160, 60]]},
            ValueError,
            r"`points` \[\[160.0, 60.0\]\] lie outside the 160x120",
        ),
        ({"intrinsics": SMALL, "points": [[0, 60]]}, ValueError, "too close to its border for a arrow marker"),
        ({"intrinsics": SMALL, "points": []}, ValueError, r"non-empty \(N, 2\) array"),
        ({"intrinsics": SMALL, "points": [[1, 2, 3]]}, ValueError, r"shape \(N, 2\)"),
        ({"intrinsics": SMALL, "points": [[80, 60], [1]]}, ValueError, "ragged or non-numeric"),
        ({"intrinsics": [150, 150, 80, 60, 320, 240], "points": [[80, 60]]}, ValueError, "describe a 320x240 image"),
        ({"intrinsics": [SMALL, SMALL], "points": [[80, 60]]}, ValueError, "2 cameras for 1 images"),
        ({"intrinsics": SMALL, "points": [[80, 60]], "task": "depthiness"}, ValueError, "Unknown task 'depthiness'"),
    ],
)
def test_bad_inputs_name_the_argument(tiny, kwargs, error, message):
    _, processor = tiny
    with pytest.raises(error, match=message):
        processor(images=_image(), **kwargs)


def test_bad_images_and_settings(tiny):
    from depthlm_hf.models.tiny import tiny_processor

    _, processor = tiny
    for mode in ("L", "RGBA", "P", "I;16"):
        prepared = processor.prepare(Image.new(mode, (160, 120)), SMALL, [[80, 60]])
        assert prepared.image.mode == "RGB"
    with pytest.raises(ValueError, match="more than `max_pixels`"):
        tiny_processor(max_image_pixels=1000).prepare(_image(), SMALL, [[80, 60]])
    with pytest.raises(ValueError, match="`focal_mode` must be one of xy, fx, got 'yy'"):
        tiny_processor(focal_mode="yy")
    with pytest.raises(ValueError, match="`unified_focal_length` must be finite and > 0"):
        tiny_processor(unified_focal_length=-5)
    with pytest.raises(ValueError, match="Unknown marker shape"):
        tiny_processor(marker={"shape": "star"})
    with pytest.raises(ValueError, match="`base_processor_class` 'NoSuchProcessor'"):
        tiny_processor(base_processor_class="NoSuchProcessor")
    with pytest.raises(ValueError, match="Unknown preset 'nope'. Available: paper, official_pixtral"):
        DepthLMProcessor.from_preset("nope", processor.image_processor, processor.tokenizer)
    assert CameraIntrinsics.from_list(SMALL).width == 160


def test_markable_is_the_rule_prepare_enforces(tiny):
    _, processor = tiny
    camera = CameraIntrinsics.from_list(SMALL)
    crop = (10, 5, 60, 50)
    mask = processor.markable(camera, crop=crop)
    assert mask.shape == (120, 160) and 0 < mask.sum() < mask.size
    grid = np.stack(np.meshgrid(np.arange(160), np.arange(120)), -1).reshape(-1, 2)
    np.testing.assert_array_equal(processor.markable(camera, grid, crop), mask.ravel())
    ys, xs = np.nonzero(mask)
    inner, outer = [[xs[0], ys[0]]], [[xs[0] - 1, ys[0]]]
    processor.prepare(_image(), camera, inner, crop=crop)  # fits: no error
    with pytest.raises(ValueError, match="too close to its border"):
        processor.prepare(_image(), camera, outer, crop=crop)
    assert processor.markable(camera, [[-1, 0], [160, 60], [np.nan, 3]]).tolist() == [False, False, False]
    mapping = processor.map_queries(camera, inner + outer, crop, require_fit=False)
    assert mapping.fits.tolist() == [True, False]


@pytest.mark.parametrize(
    ("points", "shapes"),
    [
        ([[80, 60]], [(1, 2)]),  # bare (N, 2) for one image
        (np.array([[80, 60], [70, 50]]), [(2, 2)]),
        ([np.array([[80, 60], [70, 50]])], [(2, 2)]),  # a list with one array per image
    ],
)
def test_points_nesting_for_one_image(tiny, points, shapes):
    _, processor = tiny
    images = processor.query_images(_image(), SMALL, points)
    assert len(images) == shapes[0][0]


def test_points_nesting_for_two_images_and_bad_shapes(tiny):
    _, processor = tiny
    images = processor.query_images([_image(), _image(seed=1)], [SMALL, SMALL], [[[80, 60]], [[70, 50], [60, 40]]])
    assert len(images) == 3
    with pytest.raises(ValueError, match=r"`points` must have shape \(N, 2\).*\(2, 3\)"):
        processor.query_images(_image(), SMALL, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="`points` holds 1 arrays for 2 images"):
        processor.query_images([_image(), _image()], [SMALL, SMALL], [[80, 60]])
    for bad in ([[True, False]], [["80", "60"]], [[80, None]], [[1 + 2j, 3]]):
        with pytest.raises(ValueError, match=r"`points` must be an \(N, 2\) array of \[x, y\] pixels \(real numbers\)"):
            processor.query_images(_image(), SMALL, bad)
    with pytest.raises(ValueError, match=r"`points` must be finite pixels, got \[\[inf, 60.0\]\]"):
        processor.query_images(_image(), SMALL, [[np.inf, 60]])


def test_base_processor_is_built_once_and_rebuilt_on_reassignment(tiny):
    _, processor = tiny
    base = processor.base_processor
    assert processor.base_processor is base
    tokenizer = processor.tokenizer
    try:
        processor.tokenizer = copy.copy(tokenizer)
        assert processor.base_processor is not base and processor.base_processor.tokenizer is processor.tokenizer
    finally:
        processor.tokenizer = tokenizer
    assert processor.model_input_names == list(base.model_input_names)
    assert "pixel_values" in processor.model_input_names and "image_grid_thw" in processor.model_input_names


def test_call_kwargs_are_merged_with_the_defaults(tiny):
    _, processor = tiny
    left = processor(images=_image(), intrinsics=SMALL, points=[[80, 60], [70, 50]], task="two_point_distance")
    assert isinstance(left["input_ids"], torch.Tensor)
    right = processor(images=_image(), intrinsics=SMALL, points=[[80, 60]], return_tensors="np")
    assert isinstance(right["input_ids"], np.ndarray)


def test_a_visual_prompt_subclass_works_on_its_own(tiny):
    from depthlm_hf.prompting.processing import VisualPromptProcessor

    _, processor = tiny

    class PointingProcessor(VisualPromptProcessor):
        pass

    pointing = PointingProcessor(
        processor.image_processor, processor.tokenizer, chat_template=processor.chat_template, image_scale="processor"
    )
    inputs = pointing(images=_image(), intrinsics=SMALL, points=[[80, 60]], question="What is here?")
    reference = processor(images=_image(), intrinsics=SMALL, points=[[80, 60]])
    assert torch.equal(inputs["pixel_values"], reference["pixel_values"])
    assert "What is here?" in processor.tokenizer.decode(inputs["input_ids"][0])


def test_post_process_depth_gives_one_dict_per_image(tiny):
    _, processor = tiny
    texts = ["2.35 meters away", "no idea", "The point is around 120 cm away from the camera."]
    ids = processor.tokenizer(texts, add_special_tokens=False)["input_ids"]
    points = [np.array([[10, 20]]), np.array([[30, 40], [50, 60]])]
    for generated in (texts, ids):
        first, second = processor.post_process_depth(generated, points)
        assert first["values"] == [2.35] and first["points"].tolist() == [[10.0, 20.0]]
        np.testing.assert_array_equal(first["depth"], [2.35])
        assert second["values"] == [None, 1.2] and second["depth"].shape == (2,)
        assert np.isnan(second["depth"][0]) and second["depth"][1] == pytest.approx(1.2)
    (pair,) = processor.post_process_depth(["3.5 meters"], [[1, 2], [3, 4]], task="two_point_distance")
    assert pair["values"] == [3.5] and pair["points"].shape == (2, 2)
    with pytest.raises(ValueError, match="`generated` holds 2 answers"):
        processor.post_process_depth(texts[:2], points)
    with pytest.raises(TypeError, match="`generated`"):
        processor.post_process_depth("2.35", [[1, 2]])


@pytest.mark.parametrize("name", ["os.system", "depthlm_planted_module.Evil", "builtins.eval", "Qwen2_5_VLProcessor "])
def test_a_checkpoint_cannot_make_the_processor_import_a_module(tiny, tmp_path, monkeypatch, name):
    # A module on the path that would announce its import; the checkpoint names it as the wrapped class.
    (tmp_path / "depthlm_planted_module.py").write_text("import sys\nsys.PLANTED = True\nclass Evil: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, processor = tiny
    folder = tmp_path / "ckpt"
    processor.save_pretrained(folder)
    config = json.loads((folder / "processor_config.json").read_text())
    config.update(base_processor_class=name)
    (folder / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="`base_processor_class` must be the name of a transformers processor class"):
        DepthLMProcessor.from_pretrained(folder)
    assert "depthlm_planted_module" not in sys.modules and not hasattr(sys, "PLANTED")


def test_a_tiny_focal_length_is_refused_before_allocation_and_a_raised_limit_honoured(tiny):
    from depthlm_hf.models.tiny import tiny_processor

    _, processor = tiny
    tiny_focal = [0.01, 0.01, 80.0, 60.0, 160, 120]
    with pytest.raises(ValueError, match=r"`intrinsics` \[0.01, 0.01, 80.0, 60.0, 160, 120\] .* unified image"):
        processor.focal_transform(tiny_focal)
    with pytest.raises(ValueError, match="unified image"):
        processor.prepare(_image(), tiny_focal, [[80, 60]])
    unified = processor.focal_transform([50.0, 50.0, 80.0, 60.0, 160, 120])  # 3200 x 2400 px: under the default limit
    assert unified.out_width * unified.out_height > 1000
    with pytest.raises(ValueError, match="more than `max_pixels` = 1000"):
        tiny_processor(max_image_pixels=1000).focal_transform([50.0, 50.0, 80.0, 60.0, 160, 120])


def test_preset_templates_replace_the_text_of_the_preset_prompt_tasks_only(monkeypatch):
    from dataclasses import replace

    from depthlm_hf.models.tiny import tiny_processor
    from depthlm_hf.tasks.text import TASKS

    processor = tiny_processor(question_template="Q?", answer_template="<a> {value} </a>")
    monkeypatch.setitem(TASKS, "far", replace(TASKS["distance"], name="far"))
    monkeypatch.setitem(TASKS, "plain", replace(TASKS["distance"], name="plain", preset_prompt=False))
    assert (processor.question("far"), processor.format_answer(2, "far"), processor.answer_prefix("far")) == (
        "Q?",
        "<a> 2.00 </a>",
        "<a> ",
    )
    assert processor.question("plain") == TASKS["distance"].question
    assert processor.format_answer(2, "plain") == "The point is around 2.00 meters away from the camera."
