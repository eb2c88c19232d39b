"""No code from a checkpoint runs, whatever is typed on stdin (issue 24, problem 1).

A checkpoint whose `auto_map` names a module of its own makes transformers *ask* on stdin whether to import it
when `trust_remote_code` is left unset; "y" imports it. The folders below carry such a module, `evil.py`, which
appends to a sentinel file when imported: every load path (model, processor, image processor, tokenizer) and every
command that loads a checkpoint is fed "y" and the sentinel must never appear.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "tiny"

# Which loader each folder makes ask: an unknown model type, image processor type or tokenizer class with an
# `auto_map` entry pointing at evil.py (the first loader that asks is the one a command reaches first).
KINDS = ("model", "image_processor", "tokenizer")


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def evil_checkpoint(source: Path, folder: Path, kind: str, sentinel: Path) -> Path:
    shutil.copytree(source, folder)
    (folder / "evil.py").write_text(f"open({str(sentinel)!r}, 'a').write('imported\\n')\n")
    if kind == "model":
        auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModelForImageTextToText": "evil.EvilModel"}
        _edit(folder / "config.json", lambda d: d.update(model_type="evil_vlm", auto_map=auto_map))
    if kind == "image_processor":
        auto_map = {"AutoImageProcessor": "evil.EvilImageProcessor"}
        _edit(
            folder / "processor_config.json",
            lambda d: d["image_processor"].update(image_processor_type="EvilImageProcessor", auto_map=auto_map),
        )
    if kind == "tokenizer":
        auto_map = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
        _edit(folder / "tokenizer_config.json", lambda d: d.update(tokenizer_class="EvilTokenizer", auto_map=auto_map))
    return folder


@pytest.fixture(scope="module")
def evil(tiny_dir, tmp_path_factory):
    """`(folders by kind, sentinel path)`: the tiny checkpoint three times, each with one loader asking."""
    root = tmp_path_factory.mktemp("evil")
    sentinel = root / "SENTINEL"
    folders = {kind: evil_checkpoint(tiny_dir, root / kind, kind, sentinel) for kind in KINDS}
    return folders, sentinel


@pytest.fixture
def answer_yes(monkeypatch, evil):
    """Every `input()` prompt answered "y", as a user with the habit would (and no sentinel from an earlier test)."""
    evil[1].unlink(missing_ok=True)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "y")
    return asked


@pytest.mark.parametrize("kind", KINDS)
def test_predictor_never_imports_checkpoint_code(evil, kind, answer_yes):
    from depthlm_hf.inference.predictor import DepthLMPredictor

    folders, sentinel = evil
    try:  # transformers refuses an unknown model or image processor class; a tokenizer falls back to the stock one
        DepthLMPredictor.from_pretrained(folders[kind], device="cpu")
    except ValueError as err:
        assert kind != "tokenizer" and "custom code" in str(err) or "Evil" in str(err), err
    assert not sentinel.exists() and answer_yes == []


@pytest.mark.parametrize("kind", KINDS)
def test_training_loaders_never_import_checkpoint_code(evil, kind, answer_yes):
    from trl import ModelConfig, SFTConfig

    from depthlm_hf.training.configs import DepthLMScriptArguments
    from depthlm_hf.training.setup import load_model, load_processor

    folders, sentinel = evil
    model_args = ModelConfig(model_name_or_path=str(folders[kind]))
    training_args = SFTConfig(output_dir=str(folders[kind] / "out"), use_cpu=True, report_to="none")
    try:
        (load_model if kind == "model" else load_processor)(
            model_args, training_args if kind == "model" else DepthLMScriptArguments()
        )
    except ValueError as err:
        assert "custom code" in str(err) or "Evil" in str(err), err
    assert not sentinel.exists() and answer_yes == []


def test_asking_for_remote_code_is_refused(tiny_dir):
    from trl import ModelConfig, SFTConfig

    from depthlm_hf.inference.vllm import VLLMPredictor
    from depthlm_hf.prompting.processing import DepthLMProcessor
    from depthlm_hf.training.setup import load_model

    with pytest.raises(ValueError, match="`trust_remote_code` True is not allowed"):
        DepthLMProcessor.from_pretrained(tiny_dir, trust_remote_code=True)
    with pytest.raises(ValueError, match="`trust_remote_code` True is not allowed"):
        VLLMPredictor.from_pretrained(tiny_dir, trust_remote_code=True)  # refused before vLLM is needed
    args = SFTConfig(output_dir=str(tiny_dir / "out"), use_cpu=True, report_to="none", trust_remote_code=True)
    with pytest.raises(ValueError, match="`trust_remote_code` True is not allowed"):
        load_model(ModelConfig(model_name_or_path=str(tiny_dir)), args)


def _commands(model: Path, work: Path) -> dict[str, list[str]]:
    """The argv of every command that loads a checkpoint, on `model` (the app's is its session's load)."""
    image = work / "img.png"
    Image.new("RGB", (112, 84), (90, 90, 90)).save(image)
    record = {"image": "img.png", "intrinsics": [100, 100, 55.5, 41.5, 112, 84], "pixel_coords": [[50, 40]],
              "depth": [2.0]}  # fmt: skip
    (work / "val.jsonl").write_text(json.dumps(record) + "\n")
    out = str(work / f"out-{model.name}")
    recipe = {name: str(RECIPES / name / "config_synthetic.yaml") for name in ("sft", "grpo")}
    return {
        "predict": ["predict", "--model", str(model), "--image", str(image), "--intrinsics", "100", "100", "55.5",
                    "41.5", "--points", "50,40", "--output_dir", out, "--device", "cpu"],
        "eval": ["eval", "--model", str(model), "--data", f"toy={work / 'val.jsonl'}:{work}", "--output_dir", out,
                 "--device", "cpu"],
        "predict_dataset": ["predict_dataset", "--model", str(model), "--data", f"{work / 'val.jsonl'}:{work}",
                            "--output_dir", out, "--num_points", "4", "--device", "cpu"],
        "sft": ["sft", "--config", recipe["sft"], "--model_name_or_path", str(model), "--max_steps", "1",
                "--output_dir", out],
        "grpo": ["grpo", "--config", recipe["grpo"], "--model_name_or_path", str(model), "--max_steps", "1",
                 "--output_dir", out],
        "app": ["app-session", str(model)],
    }  # fmt: skip


# One interpreter per checkpoint runs every command through `depthlm`'s own entry point (an interpreter start
# per command would take minutes on a small machine); stdin is the process's real stdin, full of "y".
DRIVER = """
import json, sys
from depthlm_hf.cli import main
codes = {}
for name, argv in json.loads(sys.argv[1]).items():
    if name == "app":
        from depthlm_hf.app.session import AppSession
        try:
            AppSession(argv[1], "cpu")
            codes[name] = 0
        except ValueError as err:
            codes[name] = 2
    else:
        codes[name] = main(argv)
print("EXIT CODES", json.dumps(codes))
"""


@pytest.mark.slow
def test_no_command_imports_checkpoint_code_whatever_is_typed(evil, tmp_path):
    """Real processes with "y" on stdin (transformers reads its prompt's answer with `input()`)."""
    folders, sentinel = evil
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env |= {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    running = {
        kind: subprocess.Popen(
            [sys.executable, "-c", DRIVER, json.dumps(_commands(folders[kind], tmp_path))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )  # fmt: skip
        for kind in ("model", "image_processor")
    }
    outputs = {
        kind: process.communicate(b"y\n" * 50, timeout=600)[0].decode(errors="replace")
        for kind, process in running.items()
    }
    assert not sentinel.exists(), {kind: out[-3000:] for kind, out in outputs.items()}
    for kind, out in outputs.items():
        codes = json.loads(out.split("EXIT CODES", 1)[1])  # every command ran and refused the checkpoint
        assert codes == dict.fromkeys(["predict", "eval", "predict_dataset", "sft", "grpo", "app"], 2), (
            kind,
            out[-3000:],
        )
        assert "Do you wish to run the custom code" not in out
