"""The house rule on file size: no source file over 450 lines (a file that grows past it is split by concept)."""

from pathlib import Path

MAX_LINES = 450
SOURCES = Path(__file__).resolve().parents[1] / "src" / "depthlm_hf"


def test_no_source_file_is_over_450_lines():
    sizes = {p.relative_to(SOURCES).as_posix(): len(p.read_text().splitlines()) for p in SOURCES.rglob("*.py")}
    assert len(sizes) > 50
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
