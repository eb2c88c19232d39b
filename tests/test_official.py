"""The "official_pixtral" preset reproduces the official DepthLM release's model inputs bit for bit.

Three layers of evidence, from strongest to always-available:

- side by side with the release's own `utils/datasets.py`, imported from the mirror of
  facebookresearch/DepthLM_Official at test time (skipped without the mirror or OpenCV, which it imports);
- SHA-256 of the release's marked images for six iBims-1 queries, computed here with that code and
  stored below (skipped only without ../shared/data/ibims1, which CI has);
- the release's arithmetic restated in this file (size truncation, pixel truncation, arrow pixels, the
  5 px border rule), checked against ours on synthetic cameras.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthlm_hf.geometry import CameraIntrinsics, release_focal_resize, release_map_points
from depthlm_hf.prompting.markers import MarkerStyle, draw_markers, marker_fits
from depthlm_hf.prompting.processing import PRESETS, DepthLMProcessor
from depthlm_hf.tasks import text as answers

OFFICIAL_REPO = Path(os.environ.get("DEPTHLM_OFFICIAL_REPO", "/work/.mirror/facebookresearch+DepthLM_Official/repo"))

RELEASE_HASHES = {
    0: ((695, 172), (857, 643), "92b988e6d812dd126ce369f5b586f661d67f5471a235b74bb53dc5743f1c08cc"),
    101: ((115, 218), (857, 643), "72e139644e7d9921bb7d2234c286fb077b45a75369ed4b8e9c50d8e59890817e"),
    2537: ((206, 377), (857, 643), "8b0a057f141e3fd18905677a425cfb5ab2a7486ae7d0319fa321b1961bcd088a"),
    4242: ((415, 247), (857, 643), "832d011e7c02d87aa581420f90ee31098c5baf2f69eadc9a19d25aec814d8699"),
    6999: ((623, 592), (857, 643), "da42e55692181302640963a960743eea57015327ed207ab9e2d301ad78d8f4ee"),
    9999: ((45, 37), (766, 574), "eb8ff41ab5e8249483f05215a3ac755cf20d05d7edcb87729f63a0b9a637022a"),
}
"""Sample index of the release's `dataset_inference` (image k // 100, point k % 100) -> (mapped pixel, model image
size, SHA-256 of the marked RGB array's bytes), computed with the release's code at f* = 750 px."""


def _sha(image: Image.Image) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(image)).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def official_processor() -> DepthLMProcessor:
    from depthlm_hf.models.tiny import tiny_llava_pixtral

    return tiny_llava_pixtral()[1]


@pytest.fixture(scope="module")
def records(ibims1_dir) -> list[dict]:
    return [json.loads(line) for line in (ibims1_dir / "ibims1_val.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def release_datasets(tmp_path_factory):
    """The release's `utils/datasets.py`, extracted from the mirror and imported (never copied into the project)."""
    pytest.importorskip("cv2", reason="the release's datasets module imports OpenCV")
    pytest.importorskip("pandas")
    if not OFFICIAL_REPO.exists():
        pytest.skip("no mirror of facebookresearch/DepthLM_Official")
    root = tmp_path_factory.mktemp("release")
    (root / "utils").mkdir()
    source = subprocess.run(
        ["git", "-C", str(OFFICIAL_REPO), "show", "HEAD:utils/datasets.py"], capture_output=True, text=True, check=True
    ).stdout
    (root / "utils" / "__init__.py").write_text("")
    (root / "utils" / "datasets.py").write_text(source)
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("utils.datasets")
    finally:
        sys.path.remove(str(root))
        for name in ("utils.datasets", "utils"):
            sys.modules.pop(name, None)


def test_preset_settings_are_the_release():
    preset = PRESETS["official_pixtral"]
    assert preset["unified_focal_length"] == 750.0 and preset["focal_mode"] == "fx"
    assert preset["pixel_map"] == "release" and preset["marker"]["shape"] == "official_arrow"
    assert PRESETS["paper"]["pixel_map"] == "exact" and PRESETS["paper"]["marker"]["shape"] == "arrow"


def test_training_answer_and_prompt_are_the_release(official_processor):
    """The release's answer: f"{thinking}\n\n{solution}" with its think and answer sentences (train.py)."""
    assert official_processor.format_answer(3.14) == (
        "<think> The point is around 3.14 meters away from the camera. </think>\n\n<answer> 3.14 </answer>"
    )
    (message,) = official_processor.task_messages()
    question = message["content"][1]
    assert message["content"][0] == {"type": "image"} and question["type"] == "text"
    assert question["content"] == question["text"] == answers.OFFICIAL_QUESTION  # both Pixtral templates read it


def test_marked_images_equal_the_release_hashes(official_processor, records, ibims1_dir):
    for index, (pixel, size, digest) in RELEASE_HASHES.items():
        record = records[index // 100]
        point = record["pixel_coords"][index % 100]
        prepared = official_processor.prepare(ibims1_dir / record["image"], record["intrinsics"], [point])
        assert prepared.image.size == size
        assert tuple(prepared.points[0].tolist()) == pixel
        assert _sha(prepared.image) == digest, f"sample {index}"


def test_side_by_side_with_the_release_code(release_datasets, official_processor, records, ibims1_dir):
    """Every iBims-1 image, one point each (the point index walks through 0..99): same pixels, same mapped pixel."""
    dataset = release_datasets.dataset_inference(
        str(ibims1_dir / "ibims1_val.jsonl"), str(ibims1_dir), normalized_focal_length=750.0
    )
    for image_index, record in enumerate(records):
        point_index = (image_index * 37) % 100
        theirs = dataset[image_index * 100 + point_index]
        ours = official_processor.prepare(
            ibims1_dir / record["image"], record["intrinsics"], [record["pixel_coords"][point_index]]
        )
        assert tuple(ours.points[0].tolist()) == tuple(theirs["pixel_coord"])
        assert np.array_equal(np.asarray(ours.image), np.asarray(theirs["image"])), record["image"]
    for index in RELEASE_HASHES:
        assert _sha(dataset[index]["image"]) == RELEASE_HASHES[index][2]


def test_border_rule_side_by_side_with_the_release(release_datasets, official_processor, tmp_path):
    """Points near every border: the release draws exactly the markers we accept and skips the ones we refuse."""
    width, height = 64, 48
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    camera = [150.0, 150.0, 31.5, 23.5, width, height]  # f* = 750: x5, a 320x240 model image
    points = [[0.9, 20], [1, 20], [62.9, 20], [63, 20], [30, 0.99], [30, 1], [30, 46.9], [30, 47]]
    record = {"image": "flat.png", "intrinsics": camera, "pixel_coords": points, "depth": [1.0] * len(points)}
    (tmp_path / "flat.jsonl").write_text(json.dumps(record) + "\n")
    dataset = release_datasets.dataset_inference(str(tmp_path / "flat.jsonl"), str(tmp_path), 750.0)
    skipped = []
    for index, point in enumerate(points):
        theirs = dataset.extract_image_and_meta(index)  # None where the release skips the point
        if theirs is None:
            skipped.append(point)
            with pytest.raises(ValueError, match="too close to its border"):
                official_processor.prepare(tmp_path / "flat.png", camera, [point])
        else:
            ours = official_processor.prepare(tmp_path / "flat.png", camera, [point])
            assert np.array_equal(np.asarray(ours.image), np.asarray(theirs["image"])), point
    assert skipped == [[0.9, 20], [63, 20], [30, 0.99], [30, 47]]


def _release_arrow_pixels(x: int, y: int, size: int = 5) -> set[tuple[int, int]]:
    """The release's arrow, restated: shaft (x - dx, y) for dx in 1..size, head (x - dy - 1, y +- dy)."""
    shaft = {(x - dx, y) for dx in range(1, size + 1)}
    return shaft | {(x - dy - 1, y + s * dy) for dy in range(1, size // 2 + 1) for s in (1, -1)}


def test_official_arrow_pixels_and_unpainted_anchor():
    image = Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    marked = np.asarray(draw_markers(image, [[12, 9]], MarkerStyle(shape="official_arrow")))
    ys, xs = np.nonzero(marked.any(axis=-1))
    assert set(zip(xs.tolist(), ys.tolist(), strict=True)) == _release_arrow_pixels(12, 9)
    assert marked[9, 12].tolist() == [0, 0, 0]  # the query pixel itself is left unpainted
    assert (marked[marked.any(axis=-1)] == [255, 0, 0]).all()
    with pytest.raises(ValueError, match="`thickness` must be 1 for an official_arrow"):
        MarkerStyle(shape="official_arrow", thickness=2)


def test_official_border_rule_is_five_pixels_on_all_sides():
    """The release draws when 5 <= x < W - 5 and 5 <= y < H - 5."""
    width, height = 40, 30
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    pts = np.stack([xs.ravel(), ys.ravel()], -1)
    fits = marker_fits(pts, width, height, MarkerStyle(shape="official_arrow"))
    rule = (pts[:, 0] >= 5) & (pts[:, 0] < width - 5) & (pts[:, 1] >= 5) & (pts[:, 1] < height - 5)
    assert np.array_equal(fits, rule)


def _release_map(u: float, v: float, camera: list[float], focal: float) -> tuple[int, int]:
    """The release's pixel map, restated with Python floats in its order of operations."""
    fx, fy, cx, cy = camera[:4]
    s = focal / fx
    return int((u - cx) * (fx * s / fx) + cx * s), int((v - cy) * (fy * s / fy) + cy * s)


@pytest.mark.parametrize(
    "camera",
    [
        [559.62, 558.14, 361.87, 241.99, 640, 480],
        [560.78, 562.84, 322.52, 239.56, 640, 480],
        [721.5377, 721.5377, 609.5593, 172.854, 1242, 375],
        [1266.417, 1266.417, 816.267, 491.507, 1600, 900],
    ],
)
def test_release_geometry_restated(camera):
    cam = CameraIntrinsics.from_list(camera)
    transform = release_focal_resize(cam, 750.0)
    s = 750.0 / camera[0]
    assert (transform.out_width, transform.out_height) == (int(camera[4] * s), int(camera[5] * s))
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.integers(0, camera[4], 500), rng.integers(0, camera[5], 500)])
    ours = release_map_points(pts, cam, 750.0).tolist()
    assert ours == [list(_release_map(float(u), float(v), camera, 750.0)) for u, v in pts.tolist()]


def test_whole_image_resize_is_pils_own(official_processor):
    """The model image is `image.resize((int(W s), int(H s)))` with PIL's default (bicubic) filter, bit for bit."""
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    camera = [559.62, 558.14, 361.87, 241.99, 640, 480]
    prepared = official_processor.prepare(image, camera, None)
    assert np.array_equal(np.asarray(prepared.image), np.asarray(image.resize((857, 643))))


def test_paper_preset_keeps_exact_geometry(tiny):
    """`paper` still scales by exactly f*/f per axis and rounds (unlike the release): 1143x859, (928, 232)."""
    _, processor = tiny
    assert processor.pixel_map == "exact"
    prepared = processor.prepare(Image.new("RGB", (640, 480)), [559.62, 558.14, 361.87, 241.99, 640, 480], [[519, 129]])
    assert prepared.image.size == (1143, 859) and prepared.points.tolist() == [[928, 232]]


def test_release_pixel_map_needs_fx_mode():
    with pytest.raises(ValueError, match="`pixel_map` 'release' scales both axes by f\\*/fx"):
        DepthLMProcessor(pixel_map="release", focal_mode="xy")
    with pytest.raises(ValueError, match="`pixel_map` must be one of exact, release, got 'nearest'"):
        DepthLMProcessor(pixel_map="nearest")


def test_predictor_two_stage_path_gives_the_release_images(official_processor, records, ibims1_dir):
    """The predictor unifies once, then marks the unified image: the marked images are still the release's."""
    from depthlm_hf.inference.backend import unify

    for record in records[:3]:
        path, camera, points = ibims1_dir / record["image"], record["intrinsics"], record["pixel_coords"]
        unified, unified_camera, _ = unify(official_processor, path, camera)
        mapped = official_processor.map_queries(camera, points).points
        direct = official_processor.query_images(path, camera, points)
        staged = official_processor.query_images(unified, unified_camera, mapped)
        assert all(np.array_equal(np.asarray(a[0]), np.asarray(b[0])) for a, b in zip(direct, staged, strict=True))


def test_predictor_feeds_the_model_the_release_image(official_processor, records, ibims1_dir, monkeypatch):
    from depthlm_hf.inference.decoding import Generated
    from depthlm_hf.inference.predictor import DepthLMPredictor
    from depthlm_hf.models.tiny import tiny_llava_pixtral

    model, processor = tiny_llava_pixtral(longest_edge=1024, image_scale="keep")
    predictor = DepthLMPredictor(model, processor, show_progress=False)
    seen = []
    monkeypatch.setattr(predictor, "generate", lambda inputs: seen.append(inputs) or Generated([[]], [[]]))
    record = records[0]
    predictor.predict(ibims1_dir / record["image"], record["intrinsics"], [record["pixel_coords"][0]])
    reference = processor(images=ibims1_dir / record["image"], intrinsics=record["intrinsics"], points=[[519, 129]])
    assert seen[0]["image_sizes"].tolist() == [[643, 857]]
    assert torch.equal(seen[0]["pixel_values"], reference["pixel_values"])


def test_official_protocol_is_the_release_sampling(release_datasets, official_processor, records, ibims1_dir):
    """`depthlm eval --protocol official` asks the release's 128 questions: same image, pixel and label."""
    from depthlm_hf.data.eval_view import official_pairs

    dataset = release_datasets.dataset_eval(
        str(ibims1_dir / "ibims1_val.jsonl"), str(ibims1_dir), normalized_focal_length=750.0
    )
    pairs = official_pairs(records, official_processor)
    assert len(pairs) == 128
    for k, (record_index, point_index) in enumerate(pairs.tolist()):
        theirs = dataset[k]
        record = records[record_index]
        mapped = official_processor.map_queries(record["intrinsics"], [record["pixel_coords"][point_index]]).points
        assert list(theirs["pixel_coord"]) == mapped[0].tolist()
        # The release reads the jsonl with pandas, whose fast float parser can drop the last digit or two.
        label = float(theirs["solution"].removeprefix("<answer> ").removesuffix(" </answer>"))
        assert label == pytest.approx(record["depth"][point_index], rel=1e-14)


SCORING_CASES = [
    # text, target [m], parse_answer (ours), release_answer (math-verify), our delta1 hit, the release's hit
    ("<think> The point is around 3.14 meters away from the camera. </think>\n\n<answer> 3.14 </answer>",
     3.14, 3.14, 3.14, True, True),
    ("<answer> -3.14 </answer>", 3.14, -3.14, -3.14, False, True),  # both ratios negative: < 1.25
    ("250 cm", 2.5, 2.5, 250.0, True, False),  # no unit conversion in the release
    ("2e1", 20.0, 20.0, 2.0, True, False),
    ("1/2", 0.5, 1.0, 0.5, False, True),  # a fraction there, the first number of a list here
    ("<answer> 2 </answer><answer> 3 </answer>", 3.0, 2.0, 3.0, False, True),  # the first tag here, the last there
    ("around 3 to 4 meters", 3.0, 3.0, 4.0, True, False),
    ("0", 3.14, 0.0, 0.0, False, False),  # a division by zero there: a miss
    ("no idea", 3.14, None, None, False, False),
]  # fmt: skip


@pytest.mark.parametrize("text, target, ours, theirs, our_hit, their_hit", SCORING_CASES)
def test_release_scoring_edge_cases(text, target, ours, theirs, our_hit, their_hit):
    """The release reads `float(math_verify.parse(text)[0])` and hits on max(p/g, g/p) < 1.25 (docs/official.md)."""
    pytest.importorskip("math_verify")
    from depthlm_hf.metrics.functional import depth_metrics, release_delta1

    assert answers.parse_answer(text) == (pytest.approx(ours) if ours is not None else None)
    assert answers.release_answer(text) == (pytest.approx(theirs) if theirs is not None else None)
    assert depth_metrics([text], [target])["delta1"] == float(our_hit)
    assert release_delta1([answers.release_answer(text)], [target]) == float(their_hit)


def test_official_protocol_reports_the_release_scoring(ibims1_dir, tmp_path, monkeypatch):
    """`depthlm eval --protocol official` adds `release_delta1`: here every answer is the label negated, a miss for
    DepthLM's delta1 and a hit for the release's."""
    pytest.importorskip("math_verify")
    from depthlm_hf.metrics import runner
    from depthlm_hf.scripts.eval import main

    def negated(model, source, chunk, task):
        labels = [sample["label"] for sample in chunk]
        return [{"prediction": -label, "confidence": None, "text": f"<answer> {-label} </answer>"} for label in labels]

    monkeypatch.setattr(runner, "predict_chunk", negated)
    data = f"ibims1={ibims1_dir / 'ibims1_val.jsonl'}:{ibims1_dir}"
    args = ["--model", "constant:2.0", "--data", data, "--preset", "official_pixtral", "--plots", "false"]
    official = main([*args, "--protocol", "official", "--output_dir", str(tmp_path / "official")])
    metrics = official["distance"]["ibims1"]
    assert metrics["num_samples"] == 128 and metrics["delta1"] == 0.0 and metrics["release_delta1"] == 1.0
    fixed = main([*args, "--num_samples", "16", "--output_dir", str(tmp_path / "fixed")])
    assert "release_delta1" not in fixed["distance"]["ibims1"]


def test_official_protocol_without_math_verify_fails_before_a_model_run(tiny_dir, tmp_path, monkeypatch):
    import sys

    from depthlm_hf.metrics.runner import EvalArguments

    (tmp_path / "val.jsonl").write_text("")
    monkeypatch.setitem(sys.modules, "math_verify", None)  # what `import math_verify` sees when it is missing
    with pytest.raises(ImportError, match=r"`pip install depthlm-hf\[official\]` \(or `pip install math-verify`\)"):
        EvalArguments(model=str(tiny_dir), data=[f"toy={tmp_path / 'val.jsonl'}:{tmp_path}"], protocol="official")
    assert EvalArguments(model="constant:2.0", data=[f"toy={tmp_path / 'val.jsonl'}:{tmp_path}"], protocol="official")


def test_release_scoring_side_by_side_with_the_release_code(tmp_path, monkeypatch):
    """The release's own `utils/metrics.py::delta1_metric` (from the mirror, imported at test time) gives the same
    hits as `release_answer` + `release_delta1` on every edge case."""
    pytest.importorskip("math_verify")
    if not OFFICIAL_REPO.exists():
        pytest.skip("no mirror of facebookresearch/DepthLM_Official")
    from depthlm_hf.metrics.functional import release_delta1

    source = subprocess.run(
        ["git", "-C", str(OFFICIAL_REPO), "show", "HEAD:utils/metrics.py"], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "release_metrics.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    release = importlib.import_module("release_metrics")
    monkeypatch.setattr("builtins.print", lambda *args, **kwargs: None)  # it prints each parse failure
    for text, target, *_ in SCORING_CASES:
        theirs = release.delta1_metric([text], [f"<answer> {target} </answer>"])
        assert theirs == [release_delta1([answers.release_answer(text)], [target])], text
    sys.modules.pop("release_metrics", None)
