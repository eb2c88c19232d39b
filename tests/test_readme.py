"""README.md's two commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    return [block.strip() for block in blocks[:2]]


def test_ci_runs_the_readme_test_command_verbatim():
    install_and_run, install_and_test = _readme_commands()
    assert "pytest" in install_and_test and "torch==2.13.0" in install_and_run
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install_and_test in ci_lines
