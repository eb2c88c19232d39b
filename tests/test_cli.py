"""The `depthlm` entry point: the command list, every command's --help, --version."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

import depthlm_hf
from depthlm_hf.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)
    assert {"predict", "app", "push"} <= set(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_help_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--help" in out
    assert importlib.import_module(f"depthlm_hf.scripts.{command}").make_parser  # every command has one


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"depthlm_hf {depthlm_hf.__version__}\n"


def test_unknown_command_lists_the_valid_ones(capsys):
    assert main(["dance"]) == 2
    assert (
        "unknown command 'dance'. Available: demo, prepare, sft, grpo, eval, predict_dataset, predict, app, push"
        in capsys.readouterr().err
    )


RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "sft" / "config_synthetic.yaml"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--model", "constant:2", "--data", "d.jsonl", "--seed", "-1"], "`seed` must be an integer >= 0"),
        (
            ["eval", "--model", "constant:2", "--data", "d.jsonl", "--batch_size", "0"],
            "`batch_size` must be an integer",
        ),
        (["eval", "--model", "constant:2", "--data", "d.jsonl", "--max_new_tokens", "0"], "`max_new_tokens` must be"),
        (["eval", "--model", "./runs/none", "--data", "d.jsonl"], "`model` './runs/none' is not an existing folder"),
        (["eval", "--model", "constant:2", "--data", "d.jsonl", "--device", "gpu"], "`device` 'gpu' is not a torch"),
        (["eval", "--model", "constant:2", "--data", "a=x.jsonl", "a=y.jsonl"], "`data` names must be unique"),
        (["sft", "--config", str(RECIPE), "--seed", "-1"], "`seed` must be an integer >= 0"),
        (["sft", "--config", str(RECIPE), "--per_device_train_batch_size", "0"], "`per_device_train_batch_size`"),
        (["grpo", "--model_name_or_path", "tiny", "--seed", "-3"], "SeedSequence), got -3"),
        (["sft", "--config", str(RECIPE), "--model_name_or_path", "/no/such/run"], "`model_name_or_path` '/no/such"),
        (["prepare", "--output_dir", "x", "--depth_scale", "0"], "`depth_scale` must be finite and > 0"),
        (["prepare", "--output_dir", "x", "--source", "manifest"], "`manifest` is required"),
    ],
)
def test_bad_arguments_give_one_line_naming_the_argument(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEPTHLM_TRACEBACK", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"depthlm {argv[0]}: error: " in err and message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_device_cuda_without_cuda_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--model", "constant:2", "--data", "d.jsonl", "--device", "cuda"]) == 2
    assert "`device` 'cuda' asks for a CUDA GPU but this machine has 0 visible" in capsys.readouterr().err


def test_traceback_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTHLM_TRACEBACK", "1")
    with pytest.raises(ValueError, match="`seed`"):
        main(["eval", "--model", "constant:2", "--data", "d.jsonl", "--seed", "-1"])
