"""Resume after a crash: incomplete checkpoints (a kill during a save) are detected and skipped with a warning."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from depthlm_hf.scripts import sft
from depthlm_hf.training.checkpoints import checkpoint_problem, last_complete_checkpoint
from depthlm_hf.training.setup import resume_checkpoint

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "sft" / "config_synthetic.yaml"
COMMON = ["--synthetic_scenes", "8", "--per_device_train_batch_size", "1", "--logging_steps", "1"]
COMMON += ["--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3"]


def _checkpoint(folder: Path, step: int, *, state: bool = True, cut: int = 0) -> Path:
    """A checkpoint folder as `Trainer` writes it (weights, optimizer, then trainer_state.json); `cut` bytes
    are removed from the end of the weights, as a kill during their write leaves them."""
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"w": torch.arange(64, dtype=torch.float32)}, path / "model.safetensors")
    if cut:
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[:-cut])
    (path / "optimizer.pt").write_bytes(b"state")
    if state:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_checkpoint_problems_name_what_a_kill_left_behind(tmp_path):
    assert checkpoint_problem(_checkpoint(tmp_path, 1)) is None
    assert "no trainer_state.json" in checkpoint_problem(_checkpoint(tmp_path, 2, state=False))
    assert "model.safetensors has" in checkpoint_problem(_checkpoint(tmp_path, 3, cut=10))
    assert "truncated" in checkpoint_problem(_checkpoint(tmp_path, 4, cut=300))  # the cut reaches the header
    broken_state = _checkpoint(tmp_path, 5)
    (broken_state / "trainer_state.json").write_text('{"global_st')
    assert "trainer_state.json is unreadable" in checkpoint_problem(broken_state)
    no_weights = _checkpoint(tmp_path, 6)
    (no_weights / "model.safetensors").unlink()
    assert checkpoint_problem(no_weights) == "no model weights"
    sharded = _checkpoint(tmp_path, 7)
    (sharded / "model.safetensors").rename(sharded / "model-00001-of-00002.safetensors")
    weight_map = {"w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert "model-00002-of-00002.safetensors is unreadable" in checkpoint_problem(sharded)


def test_last_complete_checkpoint_skips_newer_incomplete_ones_with_a_warning(tmp_path, caplog):
    _checkpoint(tmp_path, 3)
    _checkpoint(tmp_path, 10)  # numeric order, not text order: 10 > 9 > 3
    _checkpoint(tmp_path, 9, state=False)
    _checkpoint(tmp_path, 12, cut=5)
    (tmp_path / "checkpoint-20").write_text("a file, not a folder")
    with caplog.at_level(logging.WARNING, logger="depthlm_hf.training.checkpoints"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert "Skipping the incomplete checkpoint" in caplog.text and "checkpoint-12" in caplog.text
    assert "checkpoint-9" not in caplog.text  # older than the one chosen: never looked at
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_an_explicit_incomplete_checkpoint_is_refused(tmp_path):
    folder = _checkpoint(tmp_path, 4, state=False)
    args = sft.make_parser().parse_args_and_config(
        ["--config", str(RECIPE), "--output_dir", str(tmp_path), "--resume_from_checkpoint", str(folder)]
    )[1]
    with pytest.raises(ValueError, match=r"`resume_from_checkpoint` .*checkpoint-4' is not a complete checkpoint"):
        resume_checkpoint(args)


KILLED_DURING_SAVE = """
import os, signal, sys
import torch
from transformers import Trainer
from depthlm_hf.scripts import sft

torch.set_num_threads(1)
save = Trainer._save_optimizer_and_scheduler


def die_while_saving(self, output_dir):
    if self.state.global_step == 6:  # the weights of checkpoint-6 are written: die half-way through the rest
        with open(os.path.join(output_dir, "optimizer.pt"), "wb") as f:
            f.write(b"half an optimizer")
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, output_dir)


Trainer._save_optimizer_and_scheduler = die_while_saving
sft.main(sys.argv[1:])
"""


def test_kill_9_during_a_checkpoint_save_then_resume_last_works(tmp_path, caplog, one_thread):
    out = tmp_path / "run"
    argv = ["--config", str(RECIPE), "--output_dir", str(out), *COMMON]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(sft.__file__).parents[2]), *sys.path])}
    killed = subprocess.run([sys.executable, "-c", KILLED_DURING_SAVE, *argv], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert checkpoint_problem(out / "checkpoint-3") is None
    assert "no trainer_state.json" in checkpoint_problem(out / "checkpoint-6")

    with caplog.at_level(logging.WARNING, logger="depthlm_hf.training.checkpoints"):
        resumed = sft.main([*argv, "--resume_from_checkpoint", "last"])
    assert f"Skipping the incomplete checkpoint {out / 'checkpoint-6'}" in caplog.text
    saved = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
    losses = [entry for entry in resumed.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in losses] == [1, 2, 3, 4, 5, 6] and resumed.state.global_step == 6
    assert losses[:3] == saved, "steps 1-3 come from checkpoint-3: the run went on from it, not from scratch"
    assert checkpoint_problem(out / "checkpoint-6") is None and (out / "model.safetensors").is_file()
