"""`depthlm prepare --dataset NAME --root ROOT`: the registry, the command end to end, its errors, and the
recipe that mixes the public training sets with the paper's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.data import load_curated, mixture_weights
from depthlm_hf.data.prepare import PrepareArguments
from depthlm_hf.data.public import PUBLIC_DATASETS, PUBLIC_NAMES, ReaderOptions, public_dataset
from depthlm_hf.scripts import sft
from depthlm_hf.scripts.prepare import main

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "qwen2_5_vl_3b" / "sft" / "config_public.yaml"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "data.md"


def write_nyu(root: Path, name: str, with_depth: bool = True) -> None:
    scene = root / "SUNRGBD" / "kv1" / "NYUdata" / name
    (scene / "image").mkdir(parents=True)
    Image.new("RGB", (8, 6), (100, 90, 80)).save(scene / "image" / f"{name}.jpg")
    (scene / "intrinsics.txt").write_text("10 0 3.5 0 12 2.5 0 0 1")
    if with_depth:
        (scene / "depth").mkdir()
        Image.fromarray(np.full((6, 8), 8 * 2000, np.uint16)).save(scene / "depth" / f"{name}.png")


def test_registry_names_splits_and_errors():
    assert PUBLIC_NAMES == tuple(PUBLIC_DATASETS) and len(PUBLIC_NAMES) == 9
    assert {name for name in PUBLIC_NAMES if "eval" in PUBLIC_DATASETS[name].splits} == {
        "nuscenes",
        "scannetpp",
        "ddad",
        "eth3d",
        "sunrgbd",
        "nyuv2",
    }
    with pytest.raises(ValueError, match="`dataset` must be one of argoverse2, waymo, nuscenes.*got 'kitti'"):
        public_dataset("kitti")
    with pytest.raises(ValueError, match="`split` of ddad must be one of eval, got 'train'"):
        public_dataset("ddad", "train")


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_every_reader_refuses_a_root_without_its_layout(tmp_path, name):
    dataset = public_dataset(name)
    with pytest.raises(ValueError, match="`root`"):
        next(iter(dataset.read(tmp_path, dataset.splits[0], ReaderOptions())))


def test_prepare_a_public_dataset_end_to_end(tmp_path):
    write_nyu(tmp_path / "sun", "NYU0001")
    write_nyu(tmp_path / "sun", "NYU0002", with_depth=False)  # unreadable: skipped and counted
    out = tmp_path / "data" / "nyuv2"
    argv = ["--dataset", "nyuv2", "--root", str(tmp_path / "sun"), "--output", str(out), "--num_points", "5"]
    summary = main(argv)
    assert summary == {"images": 1, "points": 5, "skipped": {"bad_frame": 1}, "jsonl": str(out / "nyuv2_eval.jsonl")}
    ds = load_curated(out / "nyuv2_eval.jsonl", out)
    (record,) = list(ds)
    assert record["dataset"] == "nyuv2" and record["scene"] == "NYU0001" and record["image"].size == (8, 6)
    assert (out / "rgb" / "eval" / "0000000.png").is_file()
    assert record["z_depth"] == pytest.approx([1.6] * 5)  # the release's decoding: 16000 / 10000
    x, y = record["pixel_coords"].T
    assert record["depth"] == pytest.approx(1.6 * np.sqrt(((x - 3.5) / 10) ** 2 + ((y - 2.5) / 12) ** 2 + 1))
    first = (out / "nyuv2_eval.jsonl").read_text()
    main([*argv, "--depth_decoding", "toolbox"])
    assert (out / "nyuv2_eval.jsonl").read_text() != first
    assert list(load_curated(out / "nyuv2_eval.jsonl", out))[0]["z_depth"] == pytest.approx([2.0] * 5)
    main(argv)
    assert (out / "nyuv2_eval.jsonl").read_text() == first  # the same seed draws the same pixels
    with pytest.raises(ValueError, match="`root` .* holds no SUN RGB-D scene folder"):
        main(["--dataset", "sunrgbd", "--root", str(out / "rgb"), "--output", str(tmp_path / "nothing")])
    assert not (tmp_path / "nothing").exists()  # refused before anything is written


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"root": "ROOT"}, "`dataset` is required with `root`"),
        ({"root": "ROOT", "dataset": "kitti"}, "`dataset` must be one of argoverse2"),
        ({"root": "ROOT", "dataset": "nuscenes", "split": "val"}, "`split` of nuscenes must be one of train, eval"),
        ({"root": "ROOT/missing", "dataset": "eth3d"}, "`root` must be the folder of the public dataset 'eth3d'"),
        ({"source": "kinect"}, "`source` must be one of synthetic, manifest, public"),
        ({"root": "ROOT", "dataset": "nyuv2", "depth_decoding": "mm"}, "`depth_decoding` must be one of release"),
    ],
)
def test_prepare_arguments_refuse_bad_public_settings(tmp_path, kwargs, message):
    kwargs = {key: value.replace("ROOT", str(tmp_path)) for key, value in kwargs.items()}
    with pytest.raises(ValueError, match=message):
        PrepareArguments(output_dir=str(tmp_path / "out"), **kwargs)


def test_default_split_is_the_datasets_first():
    args = PrepareArguments(output_dir="x", root=".", dataset="scannetpp")
    assert (args.source, args.split) == ("public", "train")
    assert PrepareArguments(output_dir="x").source == "synthetic"


def test_public_recipe_mixes_the_prepared_training_sets_with_the_papers_weights():
    script_args, args, _ = sft.make_parser().parse_args_and_config(["--config", str(RECIPE), "--use_cpu", "true"])
    specs = script_args.dataset_specs()
    names = [spec.name for spec in specs]
    assert names == ["argoverse2", "waymo", "nuscenes", "scannetpp", "matterport3d"]
    assert [spec.weight for spec in specs] == mixture_weights(names) == [1.0, 1.0, 1.0, 1.0, 0.1]
    for spec in specs:  # where `depthlm prepare --dataset NAME --split train --output_dir data/depthlm/NAME` writes
        assert "train" in public_dataset(spec.name).splits
        assert (spec.jsonl, spec.image_root) == (
            f"data/depthlm/{spec.name}/{spec.name}_train.jsonl",
            f"data/depthlm/{spec.name}",
        )


def test_docs_table_has_a_row_per_public_dataset():
    table = DOCS.read_text().split("## Public datasets", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows[: len(PUBLIC_NAMES)]] == list(PUBLIC_NAMES)
    for row in rows[: len(PUBLIC_NAMES)]:
        assert row.count("|") == 7  # name, source, split, label, sampling rule, devkit or layout


def test_distortion_models_match_opencv():
    """Waymo's Brown-Conrady model is OpenCV's `projectPoints` (k1, k2, p1, p2, k3); ETH3D's thin-prism fisheye
    without its tangential and prism terms is OpenCV's equidistant `fisheye.distortPoints` (what the release
    calls)."""
    cv2 = pytest.importorskip("cv2")
    from depthlm_hf.data.public.eth3d import thin_prism_fisheye
    from depthlm_hf.data.public.waymo import brown_conrady

    rng = np.random.default_rng(0)
    x, y = rng.uniform(-0.8, 0.8, 50), rng.uniform(-0.6, 0.6, 50)
    k = (-0.32, 0.12, 0.0011, -0.0007, -0.02)
    rays = np.stack([x, y, np.ones_like(x)], axis=-1)
    expected, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), np.eye(3), np.array(k))
    assert np.stack(brown_conrady(k)(x, y), axis=-1) == pytest.approx(expected[:, 0], abs=1e-9)
    fisheye = (0.03, -0.01, 0.004, -0.001)
    expected = cv2.fisheye.distortPoints(np.stack([x, y], axis=-1)[:, None], np.eye(3), np.array(fisheye))
    params = [fisheye[0], fisheye[1], 0.0, 0.0, fisheye[2], fisheye[3], 0.0, 0.0]
    assert np.stack(thin_prism_fisheye(params)(x, y), axis=-1) == pytest.approx(expected[:, 0], abs=1e-9)
