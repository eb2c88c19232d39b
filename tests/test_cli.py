"""The `depthlm` entry point."""

from __future__ import annotations

from depthlm_hf.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_lists_the_valid_ones(capsys):
    assert main(["dance"]) == 2
    assert "unknown command 'dance'. Available: demo, prepare, sft, grpo, eval" in capsys.readouterr().err
