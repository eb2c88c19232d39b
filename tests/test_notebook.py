"""The quick-start notebook runs top to bottom on the tiny offline model."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.delenv("DEPTHLM_CHECKPOINT", raising=False)
    monkeypatch.setenv("DEPTHLM_NOTEBOOK_POINTS", "48")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "unified focal length 1000.0 px" in outputs
    assert "question: How many meters is this point from the camera?" in outputs
    assert outputs.count("pixel (") == 5 and "of 48 answers usable" in outputs
    assert "pixel (0, 0): too near the border for its arrow marker (size 5)" in outputs  # None, not an error
    assert not any(o.get("output_type") == "error" for c in notebook.cells for o in c.get("outputs", []))


def test_stored_notebook_holds_its_outputs():
    """The notebook is kept executed (text and figures), so it reads on GitHub without running it."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs for cell in code)
    assert sum("image/png" in o.get("data", {}) for cell in code for o in cell.outputs) >= 2
    assert not any(o.get("output_type") == "error" for cell in code for o in cell.outputs)
