"""Where a checkpoint is loaded from, decided fast: a Hub id without a network, a cached snapshot, a missing backend."""

from __future__ import annotations

import time

import huggingface_hub
import pytest
import transformers
from transformers.utils.import_utils import DummyObject

from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.resources import checkpoint_source


@pytest.fixture
def model_loads(monkeypatch) -> list[str]:
    """Records every model load instead of loading (a 12B model must never load before its processor is checked)."""
    loads: list[str] = []
    monkeypatch.setattr(
        transformers.AutoModelForImageTextToText, "from_pretrained", lambda path, **kw: loads.append(str(path))
    )
    return loads


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "no-connection"])
def test_a_hub_id_without_network_fails_fast_naming_a_local_folder_and_preset(monkeypatch, model_loads, offline):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # a closed port: refused at once
    start = time.perf_counter()
    with pytest.raises(ValueError) as raised:
        DepthLMPredictor.from_pretrained("facebook/DepthLM", device="cpu")
    assert time.perf_counter() - start < 3.0 and model_loads == []
    why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
    assert str(raised.value) == (
        f"`path` 'facebook/DepthLM' is a Hugging Face Hub id that is not in the local cache, and {why}. Download it "
        "once where the Hub is reachable (`hf download facebook/DepthLM --local-dir ./DepthLM`) and pass the local "
        "folder (`path='./DepthLM'`), with `preset=` ('official_pixtral' or 'paper') when the folder holds neither "
        "DepthLM settings nor the official release's files."
    )


def test_a_cached_hub_id_loads_from_its_snapshot_without_network(monkeypatch, tmp_path):
    snapshot = tmp_path / "models--facebook--DepthLM" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--facebook--DepthLM" / "refs").mkdir()
    (tmp_path / "models--facebook--DepthLM" / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert checkpoint_source("facebook/DepthLM") == str(snapshot)
    assert checkpoint_source(str(snapshot)) == str(snapshot)  # a folder is used as it is


def test_a_missing_torchvision_is_named_before_the_model_loads(monkeypatch, model_loads, tmp_path):
    """A local copy of the release wraps `PixtralProcessor`, which needs torchvision (absent here, else simulated)."""
    from depthlm_hf.testing import write_release_files

    class PixtralProcessor(metaclass=DummyObject):  # what transformers exports when torchvision is missing
        _backends = ["torchvision"]

    monkeypatch.setattr(transformers, "PixtralProcessor", PixtralProcessor)
    folder = write_release_files(tmp_path / "DepthLM")
    with pytest.raises(ImportError, match="`base_processor_class` 'PixtralProcessor' needs torchvision, which is not"):
        DepthLMPredictor.from_pretrained(folder, device="cpu")
    assert model_loads == []
