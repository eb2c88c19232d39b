"""Every script in examples/ runs, parametrized by its path (a rename or a refactor that breaks one fails CI), each
with the arguments its docstring shows, shrunk to a few CPU steps; what it prints and saves is checked."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
RECIPES = ROOT / "recipes" / "tiny"

# Example: its command-line arguments ({out}: the test's output folder), or the test that already runs it.
ARGV: dict[str, list[str] | str] = {
    "quickstart.py": [],
    "train_sft.py": ["--config", str(RECIPES / "sft" / "config_synthetic.yaml"), "--max_steps", "2",
                     "--output_dir", "{out}"],
    "train_grpo.py": "tests/test_grpo.py::test_example_script_runs",
    "train_tiny_sft_then_grpo.py": ["{out}"],  # as shipped: 30 SFT steps, 4 GRPO steps, then an answer
}  # fmt: skip


def test_every_example_has_an_entry():
    assert sorted(ARGV) == [path.name for path in EXAMPLES]


def _run(path: Path, argv: list[str], monkeypatch) -> None:
    """Run `path` as `python path argv...` in this process (its imports are already loaded)."""
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    runpy.run_path(str(path), run_name="__main__")


@pytest.mark.parametrize(
    "example",
    [pytest.param(path, marks=pytest.mark.slow) if path.name.startswith("train_tiny") else path for path in EXAMPLES],
    ids=lambda path: path.name,
)
def test_example_runs(example, tmp_path, monkeypatch, capsys, one_thread):
    argv = ARGV[example.name]
    if isinstance(argv, str):
        assert (ROOT / argv.split("::")[0]).is_file()
        pytest.skip(f"run by {argv}")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    _run(example, [arg.replace("{out}", str(out)) for arg in argv], monkeypatch)
    printed = capsys.readouterr().out
    if example.name == "quickstart.py":
        assert "model image (" in printed and "marker at [[" in printed
        assert (
            printed.count("answer '") == 2
            and "The point is around 3.14 meters away from the camera. -> 3.14" in printed
        )
    elif example.name == "train_sft.py":
        assert (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()
    else:
        assert (out / "sft" / "model.safetensors").is_file() and (out / "grpo" / "model.safetensors").is_file()
        assert "label " in printed and " m, answer " in printed
