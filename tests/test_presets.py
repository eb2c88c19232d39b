"""Which preset a checkpoint loads with: saved DepthLM settings, the released facebook/DepthLM (by hub id or by its
files), or an explicit one; any other folder raises."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.prompting.presets import PRESETS, check_settings, checkpoint_preset, preset_settings


def _snapshot(folder) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def stock_pixtral_folder(tmp_path_factory):
    """A checkpoint as the release ships it: a Llava/Pixtral model and a stock processor, no DepthLM settings."""
    from depthlm_hf.models.tiny import tiny_llava_pixtral

    model, processor = tiny_llava_pixtral(seed=0)
    folder = tmp_path_factory.mktemp("hub") / "models--facebook--DepthLM" / "snapshots" / "0123abc"
    model.save_pretrained(folder)
    processor.base_processor.save_pretrained(folder)
    return folder


def test_a_copy_of_the_released_checkpoint_loads_with_the_official_preset(stock_pixtral_folder):
    before = _snapshot(stock_pixtral_folder)
    predictor = DepthLMPredictor.from_pretrained(stock_pixtral_folder, show_progress=False)
    processor = predictor.processor
    assert processor.preset == "official_pixtral" and processor.unified_focal_length == 750.0
    assert processor.pixel_map == "release" and processor.marker_style.shape == "official_arrow"
    assert processor.base_processor_kwargs["patch_size"] == 16  # the stock Llava settings survive
    out = predictor.predict(np.full((120, 160, 3), 90, np.uint8), [150.0, 150.0, 79.5, 59.5, 160, 120], [[80, 60]])
    assert len(out) == 1
    assert _snapshot(stock_pixtral_folder) == before  # loading never writes into the checkpoint


def test_an_unrecognised_folder_without_settings_raises_naming_the_presets(stock_pixtral_folder, tmp_path):
    import shutil

    plain = tmp_path / "my-vlm"
    shutil.copytree(stock_pixtral_folder, plain)
    with pytest.raises(ValueError) as raised:
        DepthLMPredictor.from_pretrained(plain, show_progress=False)
    message = str(raised.value)
    assert "holds no DepthLM processor settings" in message and "Choose a preset: paper, official_pixtral" in message
    assert "preset='paper'" in message and "--processor_preset" in message and "config.json has vocab_size" in message
    explicit = DepthLMPredictor.from_pretrained(plain, preset="official_pixtral", show_progress=False)
    assert explicit.processor.preset == "official_pixtral"


def test_depthlm_predict_takes_the_preset(stock_pixtral_folder, tmp_path):
    import shutil

    from PIL import Image

    from depthlm_hf.scripts.predict import main

    plain = tmp_path / "my-vlm"
    shutil.copytree(stock_pixtral_folder, plain)
    Image.new("RGB", (160, 120), (90, 90, 90)).save(tmp_path / "image.png")
    argv = ["--model", str(plain), "--image", str(tmp_path / "image.png"), "--intrinsics", "150", "150", "79.5"]
    argv += ["59.5", "--points", "80,60", "--device", "cpu", "--output_dir", str(tmp_path / "out")]
    with pytest.raises(ValueError, match="`--preset paper` for depthlm eval and predict"):
        main(argv)
    assert len(main([*argv, "--preset", "official_pixtral"])["points"]) == 1


def test_a_local_copy_of_the_release_picks_official_pixtral_before_any_model_load(monkeypatch, tmp_path):
    """The release's config, tokenizer, template and image settings, no weights: the preset comes from the files,
    and the processor is loaded before the model."""
    import transformers

    from depthlm_hf.inference import predictor as predictor_module
    from depthlm_hf.models.tiny import tiny_llava_pixtral
    from depthlm_hf.prompting.processing import DepthLMProcessor
    from depthlm_hf.testing import write_release_files

    folder = write_release_files(tmp_path / "models" / "DepthLM")
    tiny_model, tiny_processor = tiny_llava_pixtral(seed=0)
    calls = []

    def processor_from_pretrained(path, **settings):
        calls.append(("processor", path, settings))
        return tiny_processor

    def model_from_pretrained(path, **kwargs):
        calls.append(("model", path, kwargs))
        return tiny_model

    monkeypatch.setattr(DepthLMProcessor, "from_pretrained", processor_from_pretrained)
    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", model_from_pretrained)
    # The folder holds no weights: the weights check must come after the processor and before the model.
    monkeypatch.setattr(predictor_module, "check_weights", lambda path, argument: calls.append(("weights", path, {})))
    if importlib.util.find_spec("torchvision") is None:  # PixtralProcessor is a placeholder: a stand-in class
        monkeypatch.setattr(transformers, "PixtralProcessor", transformers.LlavaProcessor)
    DepthLMPredictor.from_pretrained(folder, device="cpu", show_progress=False)
    assert [call[0] for call in calls] == ["processor", "weights", "model"]
    settings = calls[0][2]
    assert settings["preset"] == "official_pixtral" and settings["unified_focal_length"] == 750.0
    assert settings["pixel_map"] == "release" and settings["base_processor_class"] == "PixtralProcessor"
    assert settings["base_processor_kwargs"]["image_token"] == "[IMG]"
    assert settings["base_processor_kwargs"]["patch_size"] == 16


def test_the_release_files_resaved_by_transformers_5_are_recognised(tmp_path):
    """transformers 5 nests the image settings in processor_config.json instead of preprocessor_config.json."""
    import json

    from depthlm_hf.prompting.presets import release_mismatches
    from depthlm_hf.testing import write_release_files

    folder = write_release_files(tmp_path)
    image = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").unlink()
    config = json.loads((folder / "processor_config.json").read_text())
    (folder / "processor_config.json").write_text(json.dumps({**config, "image_processor": image}))
    assert release_mismatches(folder) == [] and checkpoint_preset(folder, {}) == "official_pixtral"


@pytest.mark.parametrize(
    "change, difference",
    [
        ({"do_rescale": True}, "do_rescale True, not PixtralImageProcessor with both off"),  # a stock Pixtral-12B
        ({"template": "{{ messages }}"}, "the chat template is not a Pixtral one"),
    ],
)
def test_files_that_differ_from_the_release_are_not_recognised(tmp_path, change, difference):
    from depthlm_hf.prompting.presets import release_mismatches
    from depthlm_hf.testing import write_release_files

    folder = write_release_files(tmp_path, **change)
    differences = release_mismatches(folder)
    assert len(differences) == 1 and difference in differences[0]
    with pytest.raises(ValueError, match="Choose a preset: paper, official_pixtral"):
        checkpoint_preset(folder, {})
    assert checkpoint_preset(folder, {}, fallback="paper") == "paper"


def test_saved_settings_win_unless_a_preset_is_given(tiny_dir):
    assert DepthLMPredictor.from_pretrained(tiny_dir, show_progress=False).processor.preset == "paper"
    saved = {"depthlm_processor_class": "DepthLMProcessor", "processor_class": "Qwen2_5_VLProcessor"}
    assert checkpoint_preset(tiny_dir, saved) is None
    assert checkpoint_preset(tiny_dir, saved, "official_pixtral") == "official_pixtral"
    with pytest.raises(ValueError, match="Unknown `preset` 'nope'. Available: paper, official_pixtral"):
        checkpoint_preset("facebook/DepthLM", {}, "nope")


def test_preset_settings_wrap_the_checkpoints_own_class():
    saved = {"processor_class": "LlavaProcessor", "patch_size": 16, "vision_feature_select_strategy": "full"}
    settings = preset_settings("paper", saved)
    assert settings["base_processor_class"] == "LlavaProcessor"
    assert settings["base_processor_kwargs"] == {"patch_size": 16, "vision_feature_select_strategy": "full"}
    assert preset_settings("official_pixtral", {})["base_processor_class"] == "PixtralProcessor"
    assert set(PRESETS) == {"paper", "official_pixtral"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("yy", "exact", "keep"), "`focal_mode` must be one of xy, fx, got 'yy'"),
        (("xy", "release", "keep"), "`pixel_map` 'release' scales both axes by f\\*/fx"),
        (("fx", "exact", "shrink"), "`image_scale` must be one of keep, processor, got 'shrink'"),
    ],
)
def test_settings_are_checked(args, message):
    with pytest.raises(ValueError, match=message):
        check_settings(*args)


def test_eval_loads_a_local_copy_with_the_given_preset(stock_pixtral_folder, tmp_path):
    import shutil

    from depthlm_hf.metrics.runner import ConstantModel, EvalArguments, load_model

    copy = tmp_path / "DepthLM"
    shutil.copytree(stock_pixtral_folder, copy)
    (tmp_path / "val.jsonl").write_text("")
    data = [f"toy={tmp_path / 'val.jsonl'}:{tmp_path}"]
    model = load_model(EvalArguments(model=str(copy), data=data, preset="official_pixtral"))
    assert model.processor.preset == "official_pixtral" and model.processor.pixel_map == "release"
    with pytest.raises(ValueError, match="Choose a preset: paper, official_pixtral"):
        load_model(EvalArguments(model=str(copy), data=data))
    constant = load_model(EvalArguments(model="constant:2.0", data=data))
    assert isinstance(constant, ConstantModel) and constant.processor.pixel_map == "exact"
