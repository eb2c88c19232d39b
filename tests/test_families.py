"""The family matrix: every registered VLM family, as a tiny offline model, through every step of DepthLM.

Rows per family: the processor saved and reloaded by stock loaders; the model's own pixels hold the unified
image unscaled (focal length f*) with the marker's tip on the mapped pixel, after the processor's own resize;
one SFT step with labels on the answer and its end of turn only; one GRPO step; generate + parse; save and
reload (same logits); `depthlm predict` and `depthlm eval` on the saved folder.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from depthlm_hf.models import families, tiny_vlm
from depthlm_hf.models.families import FAMILIES
from depthlm_hf.models.scale_rules import SquareTiles
from depthlm_hf.prompting.image_scale import keep_scale, model_size
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.prompting.wrapped import stock_processor_class, video_processor_entry

pytestmark = pytest.mark.usefixtures("one_thread")

F_STAR = 100.0
CAMERA = [50.0, 50.0, 24.5, 17.0, 50, 35]  # f* / f = 2: a 100x70 unified image, padded by most families
POINT = [[26, 18]]
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


def _image(seed: int = 0, size: tuple[int, int] = (50, 35)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(20, 200, (size[1], size[0], 3), dtype=np.uint8))


def _params():
    for model_type, family in FAMILIES.items():
        missing = [name for name in family.needs if importlib.util.find_spec(name) is None]
        marks = [pytest.mark.skip(reason=f"{family.name} needs {', '.join(missing)}")] if missing else []
        yield pytest.param(model_type, id=model_type, marks=marks)


@pytest.fixture(scope="module", params=list(_params()))
def family(request, tmp_path_factory):
    """(model_type, model, processor, saved folder) of one family, built and saved once per module."""
    model, processor = tiny_vlm(request.param, unified_focal_length=F_STAR)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return request.param, model, processor, folder


def _query(processor, **kwargs):
    return processor(images=_image(), intrinsics=CAMERA, points=POINT, **kwargs)


# ------------------------------------------------------------------------------------------ processor round trip
def test_processor_round_trip_through_stock_loaders(family):
    model_type, _, processor, folder = family
    saved = json.loads((folder / "processor_config.json").read_text())
    assert saved["processor_class"] == processor.base_processor_class
    assert type(AutoImageProcessor.from_pretrained(folder)) is type(processor.image_processor)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (
        tokenizer.get_vocab() == processor.tokenizer.get_vocab()
        and tokenizer.eos_token == processor.tokenizer.eos_token
    )
    if video_processor_entry(processor.base_processor_class, saved.get("image_processor")) and not HAS_TORCHVISION:
        stock = None  # stock AutoProcessor builds this family's video processor, which needs torchvision
    else:
        stock = AutoProcessor.from_pretrained(folder)
        assert type(stock) is stock_processor_class(processor.base_processor_class)
    reloaded = DepthLMProcessor.from_pretrained(folder)
    ours, theirs = _query(processor), _query(reloaded)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    if stock is not None:
        prompt = reloaded.base_processor.apply_chat_template(reloaded.task_messages(), add_generation_prompt=True)
        images, kwargs = keep_scale(reloaded, reloaded.query_images(_image(), CAMERA, POINT))
        plain = stock(images=images, text=[prompt], return_tensors="pt", **kwargs)
        assert torch.equal(plain["pixel_values"], ours["pixel_values"])


# ------------------------------------------------------------------------------------------ the model's pixels
def _model_image(processor, batch) -> np.ndarray:
    """The (H, W, 3) image the model receives, rebuilt from `pixel_values` (tiles reassembled) [0-255]."""
    ip = processor.image_processor
    mean, std = np.asarray(ip.image_mean)[:, None, None], np.asarray(ip.image_std)[:, None, None]
    pixels = batch["pixel_values"].float().numpy()
    rule = families.scale_rule(ip)
    if "image_grid_thw" in batch:  # Qwen: patches grouped by merge block, each (C, T, P, P)
        _, rows, cols = batch["image_grid_thw"][0].tolist()
        p, m = int(ip.patch_size), int(ip.merge_size)
        pixels = pixels.reshape(rows // m, cols // m, m, m, 3, -1, p, p)[:, :, :, :, :, 0]
        chw = pixels.transpose(4, 0, 2, 5, 1, 3, 6).reshape(3, rows * p, cols * p)
    elif isinstance(rule, SquareTiles):
        tiles = pixels.reshape(-1, *pixels.shape[-3:])
        k = int(np.sqrt(len(tiles) - 1)) if len(tiles) > 1 else 1
        grid = tiles[: k * k].reshape(k, k, *tiles.shape[1:])
        chw = grid.transpose(2, 0, 3, 1, 4).reshape(3, k * tiles.shape[-2], k * tiles.shape[-1])
    else:
        chw = pixels.reshape(-1, *pixels.shape[-3:])[0]
    return ((chw * std + mean) / ip.rescale_factor).transpose(1, 2, 0)


def test_model_pixels_hold_the_unified_image_at_f_star_with_the_marker_on_its_pixel(family):
    """After the processor's own resize the model's image is the unified image, unscaled, padded with black on
    the right and bottom: its focal length is f* exactly (the scale is 1: pixel-equal content), and the arrow's
    tip is on the pixel the mapping gives."""
    _, _, processor, _ = family
    mapping = processor.map_queries(CAMERA, POINT)
    (unified,) = processor.query_images(_image(), CAMERA, POINT)[0]
    assert unified.size == (100, 70) and mapping.intrinsics.fx == mapping.intrinsics.fy == F_STAR
    seen = _model_image(processor, _query(processor))
    width, height = model_size(processor.image_processor, unified.size)
    assert seen.shape[:2] in ((height, width), (height // 16 * 16, width // 16 * 16))  # Pixtral: whole patches
    content = seen[: unified.height, : unified.width]
    model_focal = F_STAR * content.shape[1] / unified.width
    assert abs(model_focal / F_STAR - 1) < 0.005
    np.testing.assert_allclose(content, np.asarray(unified, np.float64)[: content.shape[0]], atol=1.0)
    assert np.abs(seen[unified.height :]).max(initial=0) < 1.0 and np.abs(seen[:, unified.width :]).max(initial=0) < 1.0
    x, y = (int(v) for v in mapping.points[0])
    np.testing.assert_allclose(seen[y, x], processor.marker_style.color, atol=1.0)


# ------------------------------------------------------------------------------------------------- training
def _sft_rows(processor):
    return [processor.training_row(_image(seed), CAMERA, POINT, value) for seed, value in ((1, 3.25), (2, 12.5))]


def test_sft_step_labels_only_the_answer(family, tmp_path):
    from trl import SFTConfig

    from depthlm_hf.training.trainers import AnswerOnlyCollator, DepthLMSFTTrainer

    model_type, model, processor, folder = family
    rows = _sft_rows(processor)
    collator = AnswerOnlyCollator(processor=processor, completion_only_loss=True)
    batch = collator([dict(row) for row in rows])
    tokenizer = processor.tokenizer
    end = families.end_of_turn_token(processor)
    assert end == FAMILIES[model_type].chat.end_of_turn
    for i, row in enumerate(rows):
        labels, ids = batch["labels"][i], batch["input_ids"][i]
        labelled = torch.nonzero(labels != -100).flatten().tolist()
        assert labelled == list(range(labelled[0], labelled[-1] + 1))
        expected = tokenizer(row["completion"][0]["content"][0]["text"] + end, add_special_tokens=False)["input_ids"]
        assert labels[labelled].tolist() == ids[labelled].tolist() == expected
    trained = AutoModelForImageTextToText.from_pretrained(folder)
    before = {name: p.detach().clone() for name, p in trained.named_parameters()}
    args = SFTConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, learning_rate=1e-2, use_cpu=True,
        bf16=False, report_to="none", save_strategy="no", remove_unused_columns=False, logging_steps=1,
        dataloader_num_workers=0,
    )  # fmt: skip
    trainer = DepthLMSFTTrainer(
        model=trained, args=args, data_collator=collator, train_dataset=Dataset.from_list(rows),
        processing_class=processor,
    )  # fmt: skip
    trainer.train()
    assert np.isfinite(trainer.state.log_history[0]["loss"])
    changed = [name for name, p in trained.named_parameters() if not torch.equal(p, before[name])]
    assert any("embed_tokens" in name or "lm_head" in name for name in changed) and len(changed) >= 10


def test_grpo_step(family, tmp_path):
    from depthlm_hf.training.configs import DepthLMGRPOConfig
    from depthlm_hf.training.rewards import build_rewards
    from depthlm_hf.training.trainers import DepthLMGRPOTrainer

    _, _, processor, folder = family
    rows = [
        {**{k: row[k] for k in ("images", "prompt")}, "depth": value, "task": "distance"}
        for row, value in zip(_sft_rows(processor), (3.25, 12.5), strict=True)
    ]
    args = DepthLMGRPOConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
        max_completion_length=4, beta=0.0, use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        logging_steps=1, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = DepthLMGRPOTrainer(
        model=AutoModelForImageTextToText.from_pretrained(folder), reward_funcs=build_rewards(["neg_l1"]),
        args=args, train_dataset=Dataset.from_list(rows), processing_class=processor,
    )  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 1
    assert any("rewards/neg_l1/mean" in entry for entry in trainer.state.log_history)


# -------------------------------------------------------------------------------------------------- inference
def test_generate_and_parse(family):
    from depthlm_hf.inference.predictor import DepthLMPredictor

    _, model, processor, _ = family
    text = processor.format_answer(2.5)
    assert processor.parse_answer(processor.decode(processor.tokenizer.encode(text, add_special_tokens=False))) == 2.5
    predictor = DepthLMPredictor(model, processor, max_new_tokens=3, show_progress=False)
    answer = predictor.predict(_image(), CAMERA, POINT * 2)
    assert len(answer.values) == len(answer.texts) == 2
    assert answer.values == [processor.parse_answer(t) for t in answer.texts]
    # Prepared rows (the eval and trainer-metrics path) reach the model exactly as the same queries do.
    (marked,) = processor.query_images(_image(), CAMERA, POINT)[0]
    rows = predictor.predict_rows([{"images": [marked], "prompt": processor.task_messages()}], progress=False)
    assert rows.texts == answer.texts[:1]
    np.testing.assert_allclose(rows.confidence, answer.confidence[:1], rtol=1e-5)


def test_save_reload_same_logits(family):
    _, model, processor, folder = family
    batch = _query(processor, force_answer_prefix=True)
    reloaded = AutoModelForImageTextToText.from_pretrained(folder).eval()
    assert type(reloaded) is type(model)
    other = processor(images=_image(7), intrinsics=CAMERA, points=POINT, force_answer_prefix=True)
    with torch.no_grad():
        logits = model(**batch).logits
        np.testing.assert_allclose(reloaded(**batch).logits, logits, atol=1e-5)
        assert not torch.allclose(model(**other).logits, logits)  # the random model sees the image


def test_depthlm_predict_on_the_saved_folder(family, tmp_path):
    from depthlm_hf.scripts.predict import main

    _, _, _, folder = family
    _image(3).save(tmp_path / "image.png")
    argv = ["--model", str(folder), "--image", str(tmp_path / "image.png"), "--intrinsics", *map(str, CAMERA[:4])]
    out = main([*argv, "--points", "26,18", "10,10", "--max_new_tokens", "3", "--output_dir", str(tmp_path / "p")])
    assert [(e["x"], e["y"]) for e in out["points"]] == [(26, 18), (10, 10)]
    assert json.loads((tmp_path / "p" / "predictions.json").read_text())["intrinsics"] == CAMERA[:4] + [50, 35]


# ------------------------------------------------------------------------------------------- eval, demo, refusals
def test_depthlm_eval_zero_shot_on_a_stock_non_qwen_folder(tmp_path):
    """`depthlm eval --model FOLDER --preset paper` on a stock tiny Gemma 3 folder (no DepthLM settings, fixed
    112x112 images): the processor wraps the folder's own processor class and the family's padding applies."""
    from depthlm_hf.scripts.eval import main

    model, processor = tiny_vlm("gemma3")
    model.save_pretrained(tmp_path / "gemma3")
    processor.base_processor.save_pretrained(tmp_path / "gemma3")  # a stock Gemma3Processor folder
    assert "depthlm_processor_class" not in json.loads((tmp_path / "gemma3" / "processor_config.json").read_text())
    (tmp_path / "rgb").mkdir()
    lines = []
    for i in range(2):
        _image(i).save(tmp_path / "rgb" / f"{i}.png")
        camera = [1000.0, 1000.0, 24.5, 17.0, 50, 35]  # f = f* of the paper preset: the 50x35 image as it is
        record = {"image": f"rgb/{i}.png", "intrinsics": camera, "pixel_coords": [[26, 18], [12, 10]]}
        lines.append(json.dumps({**record, "depth": [1.5 + i, 3.0]}))
    (tmp_path / "val.jsonl").write_text("\n".join(lines) + "\n")
    argv = [
        "--model",
        str(tmp_path / "gemma3"),
        "--preset",
        "paper",
        "--data",
        f"toy={tmp_path / 'val.jsonl'}:{tmp_path}",
    ]
    argv += ["--num_samples", "all", "--plots", "false", "--tasks", "distance", "--output_dir", str(tmp_path / "out")]
    results = main(argv)
    assert results["distance"]["toy"]["num_samples"] == 4


@pytest.mark.slow
def test_demo_fast_runs_with_qwen3_vl(tmp_path):
    from depthlm_hf.scripts.demo import main

    report = main(["--fast", "--model_type", "qwen3_vl", "--output-dir", str(tmp_path)])
    assert 0.0 <= report["model_delta1"] <= 1.0 and (tmp_path / "model" / "config.json").is_file()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model_type"] == "qwen3_vl"
    assert "random init (depthlm_hf tiny Qwen3-VL, seed 0)" in (tmp_path / "model" / "README.md").read_text()


def test_unknown_model_type_and_refusals_name_the_family_and_why():
    from transformers import GotOcr2ImageProcessorPil, MllamaImageProcessorPil

    with pytest.raises(ValueError, match="`model_type` 'llama9' is not a registered VLM family. Registered: qwen2_vl"):
        tiny_vlm("llama9")
    _, gemma = tiny_vlm("gemma3", unified_focal_length=200.0)  # 200x140 unified: above the fixed 112x112
    with pytest.raises(ValueError, match="Gemma3ImageProcessorPil resizes every image to 112x112 px, which would"):
        gemma(images=_image(), intrinsics=CAMERA, points=POINT)
    gemma.image_scale = "processor"  # the user accepts the processor's own resize: nothing is padded or refused
    assert gemma(images=_image(), intrinsics=CAMERA, points=POINT)["pixel_values"].shape[-2:] == (112, 112)
    tiles = GotOcr2ImageProcessorPil(size={"height": 56, "width": 56}, crop_to_patches=True, max_patches=3)
    assert model_size(tiles, (50, 50)) == (56, 56)
    with pytest.raises(ValueError, match="would not cut a 112x112 image into 2x2 tiles"):
        model_size(tiles, (100, 70))  # 4 tiles exceed max_patches 3
    with pytest.raises(ValueError, match="MllamaImageProcessorPil cannot keep the unified scale: its tiles"):
        model_size(MllamaImageProcessorPil(), (100, 70))


def test_scale_rules_by_type_and_by_settings():
    """Registered image processors by `isinstance`; unregistered ones by their settings (pixel limits with
    patch and merge sizes, or one longest edge), anything else refused."""
    from transformers import Idefics3ImageProcessorPil, PixtralImageProcessorPil, Qwen2VLImageProcessorPil

    from depthlm_hf.models.scale_rules import LongestEdge, PixelLimits, Refused

    assert isinstance(families.scale_rule(Qwen2VLImageProcessorPil()), PixelLimits)
    assert model_size(Qwen2VLImageProcessorPil(patch_size=16), (100, 70)) == (128, 96)  # Qwen3-VL: 32 px blocks
    assert model_size(Idefics3ImageProcessorPil(max_image_size={"longest_edge": 56}), (100, 70)) == (112, 112)
    assert model_size(PixtralImageProcessorPil(), (100, 70)) == (100, 70)

    class PixelLimited:
        size, patch_size, merge_size = {"shortest_edge": 16, "longest_edge": 4096}, 16, 2

    class LongEdged:
        size = {"longest_edge": 512}

    class Squashing:
        size = {"height": 224, "width": 224}

    assert isinstance(families.scale_rule(PixelLimited()), PixelLimits)
    assert model_size(PixelLimited(), (100, 70)) == (128, 96)
    assert isinstance(families.scale_rule(LongEdged()), LongestEdge)
    assert isinstance(families.scale_rule(Squashing()), Refused)


def test_docs_table_lists_every_family_with_how_it_keeps_the_scale():
    from pathlib import Path

    import transformers

    text = (Path(__file__).resolve().parents[1] / "docs" / "families.md").read_text()
    for model_type, family in FAMILIES.items():
        name, settings = family.tiny.image_processor
        kind = families.scale_rule(getattr(transformers, name)(**settings)).kind
        (row,) = [line for line in text.splitlines() if line.startswith(f"| {family.name} | `{model_type}` |")]
        assert f"`{kind}`" in row, (model_type, kind)


@pytest.mark.parametrize(
    ("model_type", "name"),
    [("lfm2_vl", "Lfm2VlImageProcessor"), ("llama4", "Llama4ImageProcessor"), ("molmo2", "Molmo2ImageProcessor")],
)
def test_torchvision_only_families_are_kept_or_refused_where_torchvision_exists(model_type, name):
    """LFM2-VL, Llama 4 and Molmo 2 have only torchvision image processors (none here): where they build, the
    registry either classifies them or refuses them with a `ValueError` naming the processor, never passes them."""
    if not HAS_TORCHVISION:
        pytest.skip(f"{model_type} ({name}) needs torchvision, which has no CPU build here")
    import transformers

    image_processor = getattr(transformers, name)()
    try:
        padded = model_size(image_processor, (100, 70))
    except ValueError as err:
        assert name in str(err)
    else:
        assert padded[0] >= 100 and padded[1] >= 70
