"""The docs keep up with the tree: the module map of docs/concepts.md lists every module of `src/depthlm_hf` in its
room's row and nothing else, and the API reference (docs/api/*.md, in the mkdocs nav) covers every public module."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "depthlm_hf"
EVALUATE_MODULE = "metrics/depthlm_depth/depthlm_depth.py"
"""The `evaluate` metric module: a folder loaded by path; mkdocstrings finds it as `depthlm_depth.depthlm_depth`."""


def source_modules() -> list[str]:
    """Every module file under src/depthlm_hf, relative (`data/views.py`), `__init__.py` files left out."""
    return sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def top_level_code(cell: str) -> list[str]:
    """The backticked names of a table cell outside parentheses (those inside describe a module's contents).

    >>> top_level_code("`text` (the `TASKS` registry, `rng(seed)`), `labels`, `depthlm_depth/`")
    ['text', 'labels', 'depthlm_depth/']
    """
    names, depth, in_code, current = [], 0, False, ""
    for char in cell:
        if char == "`":
            if in_code and depth == 0:
                names.append(current)
            in_code, current = not in_code, ""
        elif in_code:
            current += char
        elif char in "()":
            depth += 1 if char == "(" else -1
    return names


def module_map() -> dict[str, list[str]]:
    """The rows of the module map: room (`data/`, `geometry.py`) -> the modules listed in it."""
    text = (ROOT / "docs" / "concepts.md").read_text()
    section = text.split("## Module map", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            (room,) = top_level_code(cells[0])
            rows[room] = top_level_code(cells[1])
    return rows


def listed_modules(rows: dict[str, list[str]]) -> list[str]:
    """The module files the map names: `room/name.py`, a `room/folder/` entry for every file in it."""
    found = []
    for room, names in rows.items():
        if room.endswith(".py"):
            assert not names, f"the row of the single module {room} lists modules {names}"
            found.append(room)
        for name in names:
            if name.endswith("/"):
                found += [p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / room / name).glob("*.py")] or [
                    room + name
                ]
            else:
                found.append(f"{room}{name}.py")
    return sorted(found)


def test_the_module_map_lists_every_module_in_its_room_and_nothing_else():
    rows = module_map()
    assert {"geometry.py", "tasks/", "data/", "data/synthetic/", "inference/", "scripts/"} <= set(rows)
    listed, tree = listed_modules(rows), source_modules()
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert sorted(set(tree) - set(listed)) == [], "modules missing from docs/concepts.md's module map"
    assert sorted(set(listed) - set(tree)) == [], "the module map lists modules that do not exist"


def api_targets() -> dict[str, str]:
    """Every `::: identifier` of docs/api/*.md -> its page."""
    return {
        match: page.name
        for page in sorted((ROOT / "docs" / "api").glob("*.md"))
        for match in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), flags=re.MULTILINE)
    }


def dotted(module: str) -> str:
    return "depthlm_depth.depthlm_depth" if module == EVALUATE_MODULE else "depthlm_hf." + module[:-3].replace("/", ".")


def test_the_api_reference_covers_every_public_module_and_its_pages_are_in_the_nav():
    targets = api_targets()
    public = [m for m in source_modules() if not any(part.startswith("_") for part in m.split("/"))]
    missing = [m for m in public if dotted(m) not in targets]
    assert missing == [], "modules without an API page entry (docs/api/*.md `::: module`)"
    packages = {
        "depthlm_hf." + p.parent.relative_to(PACKAGE).as_posix().replace("/", ".")
        for p in PACKAGE.rglob("*/__init__.py")
    }
    known = {dotted(m) for m in source_modules()} | packages
    assert sorted(set(targets) - known) == [], "API entries naming no module of the tree"
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    api = next(entry["API reference"] for entry in nav if isinstance(entry, dict) and "API reference" in entry)
    pages = sorted(Path(path).name for item in api for path in item.values())
    assert pages == sorted(set(targets.values())) == sorted(p.name for p in (ROOT / "docs" / "api").glob("*.md"))


def test_the_extending_page_names_touch_points_that_exist():
    """Every source file the Extending page sends a newcomer to exists, and so does every test file."""
    text = (ROOT / "docs" / "extending.md").read_text()
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## A new task",
        "## A new VLM family",
        "## A new marker shape",
        "## A new reward",
    ]
    files = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", text))
    assert files, "the page names no file"
    for name in files:
        assert (PACKAGE / name).exists() or (ROOT / name).exists(), name
