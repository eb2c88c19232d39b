"""The docs harness: every fenced ```bash and ```python block of README.md and docs/*.md runs here, or its page
marks why not.

Convention (also in docs/index.md, "Contributing"): an HTML comment right above a block (blank lines and other such
comments may sit between) marks what the harness skips:

    <!-- docs-harness: skip REASON -->                  the whole block
    <!-- docs-harness: skip REASON: COMMAND PREFIX -->   the block's commands that start with COMMAND PREFIX

REASON is one of `SKIP_REASONS` (`WHY` says what each means). Everything else runs, on CPU, in a world folder built
once per session: the tiny `depthlm demo` checkpoint at `demo_output/` (README command 1, shrunk) and copies of it
at the checkpoint paths the pages use, small synthetic curated datasets and images at the paths the pages name, a
copy of benchmarks/ (results land in the copy) and links to recipes/ and examples/. `depthlm ...` commands run in
this process through `depthlm_hf.cli.main` (the console script's function), `python SCRIPT ...` through runpy, any
other command through bash; `REWRITES` shrink sizes (steps, points, rounds) and change nothing else. A page's python
blocks run in order in one namespace that starts from `namespace()` (the placeholders the snippets leave open:
`path`, `image`, `fx`, ...). The session ends with the line
`docs harness: N blocks executed, M skipped (gpu: a, hub: b, ...); in executed blocks K commands skipped (...)`.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("bash", "python")

SkipReason = Literal["ci", "data", "gpu", "hub", "server", "sketch", "test"]
SKIP_REASONS: tuple[str, ...] = get_args(SkipReason)
WHY: dict[str, str] = {
    "ci": ".ci/run runs it verbatim (README's install-and-test and install-and-demo commands)",
    "data": "reads a full public dataset as downloaded (its readers run on fixtures in tests/test_data_public*.py)",
    "gpu": "needs CUDA GPUs (a multi-GPU launch, a paper-size model)",
    "hub": "needs the network: the Hugging Face Hub (downloads, uploads) or pip",
    "server": "starts a long-running server (the Gradio app; tests/test_app.py drives it)",
    "sketch": "a fragment or signature, not code to run",
    "test": "another test runs it verbatim (tests/test_examples.py runs every examples/ script)",
}
assert set(WHY) == set(SKIP_REASONS)

MARKER = re.compile(r"<!--\s*docs-harness:\s*skip\s+(?P<reason>\w+)(?::\s*(?P<prefix>.+?))?\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

TINY_DEMO = (
    "--train_scenes 4 --points_per_scene 2 --eval_scenes 4 --localisation_steps 2 --max_steps 2 --batch_size 2 "
    "--curve_every 2 "
    "--curve_scenes 2 --point_cloud_points 4"
)
REWRITES: tuple[tuple[str, str], ...] = (
    # (pattern, replacement) applied in order to each command and each python block; sizes only.
    (r"^(depthlm demo .*?)(?: --fast)?$", rf"\1 {TINY_DEMO}"),  # minutes of training -> two steps
    (r"^(depthlm (?:sft|grpo) --config recipes/tiny/.*)$", r"\1 --max_steps 2"),
    (r"--num_points \d+", "--num_points 8"),  # point-cloud grid queries
    (r"num_points=10_000", "num_points=8"),
    (r"--num_images 1000", "--num_images 4"),  # synthetic scenes rendered by `depthlm prepare`
    (r"^(python benchmarks/bench_data\.py) --rows \d+ (.*)$", r"\1 --rows 8 --lines 1000 --scenes 4 \2"),
    (r"^(python benchmarks/bench_data\.py --lines 0 --scenes 0)$", r"\1 --rows 8"),
    (r"^(python benchmarks/bench_vision_attention\.py .*)$", r"\1 --height 112 --width 112"),
    (r"^(python benchmarks/bench_predictor\.py)$", r"\1 --queries 4 --batch_size 4"),  # 300 train steps: answers end
    (r"^(python benchmarks/bench_point_cloud\.py.*?)(?: --rounds \d+)?$",
     r"\1 --rounds 1 --predictor_batches 1 --official_queries 2 --batch_size 4"),
    (r"^(python benchmarks/bench_sft_throughput\.py.*)$", r"\1 --steps 1 --rounds 1 --micro_batch 2"),
)  # fmt: skip


@dataclass(frozen=True)
class Block:
    """One fenced block: its page (relative to the repository), first code line, language, code and markers."""

    page: str
    line: int
    lang: str
    code: str
    skips: tuple[tuple[str, str | None], ...]  # (reason, command prefix or None for the whole block)

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def whole_skip(self) -> str | None:
        return next((reason for reason, prefix in self.skips if prefix is None), None)


def _markers_above(text: str, start: int) -> tuple[tuple[str, str | None], ...]:
    """The `docs-harness` comments between the previous content line and the fence starting at `start`."""
    found = []
    for line in reversed(text[:start].splitlines()):
        if not line.strip():
            continue
        match = MARKER.fullmatch(line.strip())
        if match is None:
            break
        found.append((match["reason"], match["prefix"]))
    return tuple(reversed(found))


def read_blocks(pages: list[Path] = PAGES, root: Path = ROOT) -> list[Block]:
    """The bash and python blocks of `pages` (named relative to `root`), with the markers above each."""
    blocks = []
    for page in pages:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match["lang"] in LANGUAGES:
                line = text.count("\n", 0, match.start()) + 2
                rel = str(page.relative_to(root))
                blocks.append(Block(rel, line, match["lang"], match["code"], _markers_above(text, match.start())))
    return blocks


def commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines dropped, words re-quoted.

    >>> commands("a --x 1 \\\\\\n    --y 2   # why\\n# note\\nb 'c d'\\n")
    ['a --x 1 --y 2', "b 'c d'"]
    """
    joined = re.sub(r"\\\n\s*", " ", code)
    words = (shlex.split(line, comments=True) for line in joined.splitlines())
    return [shlex.join(line) for line in words if line]


def rewrite(command: str) -> str:
    """`command` with `REWRITES` applied (sizes shrunk for a CPU test).

    >>> rewrite("depthlm predict --model m --image a.png --num_points 2000")
    'depthlm predict --model m --image a.png --num_points 8'
    """
    for pattern, replacement in REWRITES:
        command = re.sub(pattern, replacement, command)
    return command


def plan(block: Block) -> list[tuple[str, str | None]]:
    """Each command of a bash block (a python block: the whole code) with the reason it is skipped, or None."""
    units = commands(block.code) if block.lang == "bash" else [block.code]
    if block.whole_skip:
        return [(unit, block.whole_skip) for unit in units]
    prefixed = [(reason, prefix) for reason, prefix in block.skips if prefix is not None]
    return [(unit, next((r for r, p in prefixed if unit.startswith(p)), None)) for unit in units]


BLOCKS = read_blocks()
RESULTS: dict[str, str] = {}  # block name -> "executed" or the skip reason, as the session goes
SKIPPED_COMMANDS: Counter[str] = Counter()  # marked commands of executed blocks, by reason


# --- The world the commands run in ---------------------------------------------------------------------------------


CAMERA = [559.62, 558.14, 361.87, 241.99, 640, 480]
"""The camera the pages use: iBims-1's, 640x480 [px]."""


def _views(count: int, width: int, height: int, focal: float):
    """`count` rendered indoor views of `width` x `height` [px] at focal `focal` [px] (dense depth, camera)."""
    from dataclasses import replace

    from depthlm_hf.data.synthetic.scenes import get_config, render_scene

    config = replace(get_config("indoor"), width=(width, width), height=(height, height), focal=(focal, focal))
    return [render_scene(config, seed=seed) for seed in range(count)]


def _curated(folder: Path, name: str, views) -> None:
    """A curated dataset `folder/<name>.jsonl` + `folder/rgb/` with one labelled pixel per view (its centre)."""
    from PIL import Image

    from depthlm_hf.data.convert import rgbd_to_record
    from depthlm_hf.data.records import to_jsonable

    (folder / "rgb").mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.jsonl", "w") as f:
        for i, view in enumerate(views):
            Image.fromarray(view.image).save(folder / f"rgb/{i}.png")
            intrinsics = view.camera.intrinsics.to_list()
            border = view.image.shape[1] // 8  # room for the marker
            record = rgbd_to_record(view.image, view.z_depth, intrinsics, 1, i, valid_mask=view.valid, border=border)
            f.write(json.dumps(to_jsonable({**record, "image": f"rgb/{i}.png", "dataset": name})) + "\n")


def _manifest(folder: Path, views) -> None:
    """`rgbd.jsonl`: RGB-D manifest entries (millimetre z-depth PNGs) for `depthlm prepare --source manifest`."""
    from PIL import Image

    with open(folder / "rgbd.jsonl", "w") as f:
        for i, view in enumerate(views):
            Image.fromarray(view.image).save(folder / f"rgb{i}.png")
            Image.fromarray(np.where(view.valid, view.z_depth * 1000.0, 0).astype(np.uint16)).save(folder / f"d{i}.png")
            entry = {"rgb": f"rgb{i}.png", "depth": f"d{i}.png", "intrinsics": view.camera.intrinsics.to_list()}
            f.write(json.dumps(entry) + "\n")


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The folder the docs' commands run in (see the module docstring); built once per session."""
    import torch
    from PIL import Image

    from depthlm_hf.cli import main

    base = tmp_path_factory.mktemp("docs-world")
    repo = base / "repo"
    repo.mkdir()
    for name in ("recipes", "examples"):
        (repo / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "benchmarks", repo / "benchmarks", ignore=shutil.ignore_patterns("carry", "__pycache__"))
    cwd, threads = Path.cwd(), torch.get_num_threads()
    os.chdir(repo)
    try:  # the demo sets torch's threads for its run
        assert main(shlex.split(rewrite("depthlm demo --output-dir demo_output"))[1:]) == 0
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    for checkpoint in ("runs/depthlm-3b", "runs/depthlm", "outputs/depthlm-qwen2.5-vl-3b-sft"):
        shutil.copytree(repo / "demo_output" / "model", repo / checkpoint)
    views = _views(3, 640, 480, CAMERA[0])  # iBims-1-like: 640x480 at f = 560 px
    for name in ("room.png", "photo.jpg"):
        Image.fromarray(views[0].image).save(repo / name)
    _manifest(repo, views[:2])
    for folder, name in (
        (repo, "ibims1_val"),
        (repo / "data" / "ibims1", "ibims1_val"),
        (repo / "data" / "nyu", "nyu_val"),
        (base / "shared" / "data" / "ibims1", "ibims1_val"),  # ../shared/data/ibims1, the benchmarks' iBims-1
    ):
        _curated(folder, name, views)
    for name in ("nuscenes", "scannetpp", "ddad", "eth3d", "sunrgbd", "nyuv2"):  # the public evaluation sets
        _curated(repo / "data" / "depthlm" / name, f"{name}_eval", views[:1])
    _curated(repo / "ibims1", "ibims1_val", _views(48, 64, 48, 60.0))  # data.md reads record 42
    return repo


def _workdir(world: Path, block: Block) -> Path:
    """A fresh folder beside `world` for one block, linking the folders of `world` and copying its files: each block
    writes its own outputs (`eval_results/`, `predictions/`, ...) and reads the shared ones."""
    folder = world.parent / re.sub(r"\W", "_", block.name)
    folder.mkdir()
    for entry in world.iterdir():
        if entry.is_file() or entry.name == "rgb":  # a curated jsonl's images must sit inside its folder, not link out
            (shutil.copytree if entry.is_dir() else shutil.copy)(entry, folder / entry.name)
        else:
            (folder / entry.name).symlink_to(entry)
    return folder


def namespace(world: Path) -> dict:
    """The names the python snippets leave open, bound to world files: a checkpoint `path`, an `image` and its
    camera (`fx`, `fy`, `cx`, `cy`, `width`, `height`, `w`, `h`, `camera(s)`), a pixel `x, y`, an RGB-D triple
    (`rgb`, `depth_png`, `mask`) and query lists (`images`, `cameras`, `points`)."""
    from PIL import Image

    image = Image.open(world / "room.png")
    camera = CAMERA
    fx, fy, cx, cy, width, height = camera
    depth = np.asarray(Image.open(world / "d0.png"))
    return {
        "path": str(world / "demo_output" / "model"),
        "image": image,
        **dict(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height, w=width, h=height, x=320, y=240),
        "camera": camera,
        "rgb": Image.open(world / "rgb0.png"),
        "depth_png": depth,
        "mask": depth > 0,
        "images": [image],
        "cameras": [camera],
        "points": [[[320, 240], [100, 400]]],
    }


# --- Running ------------------------------------------------------------------------------------------------------


def run_command(command: str) -> None:
    """Run one (rewritten) command in the current folder; fail with what it printed when it fails."""
    argv = shlex.split(command)
    if argv[0] == "depthlm":
        from depthlm_hf.cli import main

        assert main(argv[1:]) == 0, command
    elif argv[0] == "python" and len(argv) > 1 and argv[1].endswith(".py"):
        saved = sys.argv, sys.path[:]
        sys.argv = argv[1:]
        sys.path.insert(0, str(Path(argv[1]).resolve().parent))  # as `python SCRIPT` does
        try:
            runpy.run_path(argv[1], run_name="__main__")
        except SystemExit as done:
            assert done.code in (None, 0), command
        finally:
            sys.argv, sys.path[:] = saved
    else:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


_NAMESPACES: dict[str, dict] = {}


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.name)
def test_docs_block_runs(block, world, monkeypatch, one_thread):
    units = plan(block)
    if block.whole_skip:
        RESULTS[block.name] = block.whole_skip
        pytest.skip(f"marked `{block.whole_skip}`: {WHY[block.whole_skip]}")
    monkeypatch.chdir(_workdir(world, block))
    monkeypatch.setenv("DEPTHLM_SHARED_DATA", str(world.parent / "shared" / "data"))
    for unit, reason in units:
        if reason is not None:
            SKIPPED_COMMANDS[reason] += 1
            continue
        if block.lang == "bash":
            run_command(rewrite(unit))
        else:
            scope = _NAMESPACES.setdefault(block.page, namespace(world))
            exec(compile(rewrite(unit), block.name, "exec"), scope)
    RESULTS[block.name] = "executed"


# --- The markers themselves ---------------------------------------------------------------------------------------


def test_every_block_is_run_or_marked_and_every_marker_is_used():
    assert len(BLOCKS) >= 30  # the pages were found
    for block in BLOCKS:
        for reason, prefix in block.skips:
            assert reason in SKIP_REASONS, f"{block.name}: unknown skip reason {reason!r}; allowed: {SKIP_REASONS}"
            if prefix is not None:
                assert block.lang == "bash", f"{block.name}: a command prefix marks bash commands only"
                assert any(c.startswith(prefix) for c in commands(block.code)), f"{block.name}: stale {prefix!r}"
        units = plan(block)
        assert units, f"{block.name}: an empty block"
        assert all(reason is None or reason in SKIP_REASONS for _, reason in units)
    for page in PAGES:  # a marker line that does not parse, or is not right above a block, is a typo
        lines = [
            line.strip() for line in page.read_text().splitlines() if line.lstrip().startswith("<!-- docs-harness")
        ]
        assert all(MARKER.fullmatch(line) for line in lines), (page.name, lines)
        assert len(lines) == sum(len(b.skips) for b in BLOCKS if b.page == str(page.relative_to(ROOT))), page.name


def test_markers_are_read_from_the_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n<!-- docs-harness: skip gpu -->\n```bash\ntorchrun x\n```\n\n"
        "<!-- docs-harness: skip hub: depthlm push -->\n\n```bash\ndepthlm predict --a 1 \\\n  --b 2\n"
        "depthlm push m me/m\n```\n\n```python\nx = 1\n```\n\n```yaml\na: 1\n```\n"
    )
    blocks = read_blocks([page], root=tmp_path)
    assert [(b.lang, b.line, b.skips) for b in blocks] == [
        ("bash", 5, (("gpu", None),)),
        ("bash", 11, (("hub", "depthlm push"),)),
        ("python", 17, ()),
    ]
    assert plan(blocks[0]) == [("torchrun x", "gpu")]
    assert plan(blocks[1]) == [("depthlm predict --a 1 --b 2", None), ("depthlm push m me/m", "hub")]
    assert plan(blocks[2]) == [("x = 1\n", None)]


def test_rewrites_only_shrink_sizes():
    assert rewrite("depthlm demo --output-dir demo_out --fast") == f"depthlm demo --output-dir demo_out {TINY_DEMO}"
    assert rewrite("depthlm sft --config recipes/tiny/sft/config_synthetic.yaml").endswith(" --max_steps 2")
    assert rewrite("depthlm sft --config recipes/qwen2_5_vl_3b/sft/config_paper.yaml").endswith("paper.yaml")
    assert (
        rewrite("depthlm eval --model m --data d --num_samples all")
        == "depthlm eval --model m --data d --num_samples all"
    )


# --- The session's count --------------------------------------------------------------------------------------------


def summary(results: dict[str, str], skipped_commands: Counter[str]) -> str:
    """The harness's count line: blocks executed and skipped by reason, then the marked commands of executed blocks.

    >>> summary({"a:1": "executed", "b:2": "gpu", "c:3": "hub", "d:4": "gpu"}, Counter(server=2))
    'docs harness: 1 blocks executed, 3 skipped (gpu: 2, hub: 1); in executed blocks 2 commands skipped (server: 2)'
    """

    def by_reason(counts: Counter[str]) -> str:
        return ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items()))

    blocks = Counter(results.values())
    executed = blocks.pop("executed", 0)
    line = f"docs harness: {executed} blocks executed, {sum(blocks.values())} skipped ({by_reason(blocks)})"
    return (
        f"{line}; in executed blocks {sum(skipped_commands.values())} commands skipped ({by_reason(skipped_commands)})"
    )


class _Summary:
    """Prints `summary(...)` at the end of the session's terminal report (registered by the fixture below)."""

    def pytest_terminal_summary(self, terminalreporter):
        if RESULTS:
            terminalreporter.write_line(summary(RESULTS, SKIPPED_COMMANDS))


@pytest.fixture(scope="session", autouse=True)
def _report_counts(request):
    if not request.config.pluginmanager.has_plugin("docs-harness-summary"):
        request.config.pluginmanager.register(_Summary(), "docs-harness-summary")
