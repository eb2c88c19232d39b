"""Shared fixtures: one tiny offline Qwen2.5-VL + DepthLMProcessor per session, caches in a temporary HF_HOME."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="depthlm-hf-home-")
os.environ.setdefault("HF_HOME", _HF_HOME)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

SHARED_DATA = Path(
    os.environ.get("DEPTHLM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread; several threads thrash on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny():
    """(model, processor): the tiny random Qwen2.5-VL and its DepthLMProcessor (do not train it in place)."""
    from depthlm_hf.models.tiny import tiny_qwen2_5_vl

    return tiny_qwen2_5_vl(seed=0)


@pytest.fixture(scope="session")
def tiny_dir(tiny, tmp_path_factory) -> Path:
    """A folder holding the tiny model and processor, saved with `save_pretrained`."""
    model, processor = tiny
    path = tmp_path_factory.mktemp("tiny-qwen2_5_vl")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def trained_tiny_dir(tmp_path_factory) -> Path:
    """A saved tiny checkpoint taught the answer template (`depthlm_hf.testing.fit_answer_template`): on 112x84
    flat grey images (camera fx = fy = 100) it answers 1.25, 2.5, 4.75, 8.0 m for grey 40, 90, 140, 190."""
    import torch

    from depthlm_hf.models.tiny import tiny_qwen2_5_vl
    from depthlm_hf.testing import fit_answer_template

    torch.manual_seed(0)
    model, processor = tiny_qwen2_5_vl(seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fit_answer_template(model, processor)
    torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("trained-tiny")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def ibims1_dir() -> Path:
    """The real iBims-1 sample in ../shared/data/ibims1 (tests using it are skipped when it is absent)."""
    path = SHARED_DATA / "ibims1"
    if not (path / "ibims1_val.jsonl").exists():
        pytest.skip("../shared/data/ibims1 is not available")
    return path


@pytest.fixture(scope="module")
def processor():
    """A fresh tiny `DepthLMProcessor` per test module (the data-view tests)."""
    from depthlm_hf.models.tiny import tiny_processor

    return tiny_processor()


@pytest.fixture(scope="module")
def source():
    """Twelve small synthetic indoor scenes of 40 labelled points each (the data-view tests)."""
    from depthlm_hf.data.synthetic.scenes import SyntheticDataset

    return SyntheticDataset("indoor", num_scenes=12, num_points=40, seed=3, width=(96, 128), height=(72, 96))
