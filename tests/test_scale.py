"""Many ranks, one result: `depthlm eval` and `depthlm predict_dataset` under torchrun on two CPU ranks (gloo).

A small wrapper script (written per test) logs which samples or images each rank asks the model about, and can
SIGKILL rank 1 after its k-th work unit, so that "exactly once" and "resume after a kill" are checked from the
outside while the library runs unchanged.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthlm_hf.scripts.eval import main as eval_main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

WRAPPER = """
import json, os, signal, sys
from depthlm_hf.inference import dense_batch
from depthlm_hf.metrics import runner

log = open(os.path.join(os.environ["SCALE_LOG"], f"rank{os.environ['RANK']}.jsonl"), "a")
kill_after = int(os.environ.get("SCALE_KILL_RANK1_AFTER", "-1"))
units = 0


def predict_chunk(model, source, chunk, task, _real=runner.predict_chunk):
    global units
    if os.environ["RANK"] == "1" and units == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
    units += 1
    log.write(json.dumps([s["id"] for s in chunk]) + "\\n"); log.flush()
    return _real(model, source, chunk, task)


def predict_image(predictor, job, *args, _real=dense_batch.predict_image):
    log.write(json.dumps([job.key]) + "\\n"); log.flush()
    return _real(predictor, job, *args)


runner.predict_chunk, dense_batch.predict_image = predict_chunk, predict_image
from depthlm_hf.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_ranks(tmp_path: Path, argv: list[str], kill_after: int | None = None) -> tuple[int, list[list]]:
    """Run `depthlm <argv>` on two ranks; returns the exit code and every logged unit of every rank."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    wrapper, log = tmp_path / "wrapper.py", tmp_path / "log"
    wrapper.write_text(WRAPPER)
    log.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCALE_LOG": str(log), "MPLBACKEND": "Agg"}
    if kill_after is not None:
        env["SCALE_KILL_RANK1_AFTER"] = str(kill_after)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), str(wrapper), *argv]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if kill_after is None:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    units = [json.loads(line) for path in sorted(log.glob("rank*.jsonl")) for line in path.read_text().splitlines()]
    return done.returncode, units


def _without_timing(results: dict) -> dict:
    drop = ("seconds", "resumed_samples")
    return {task: {name: {k: v for k, v in m.items() if k not in drop} for name, m in per.items()}
            for task, per in results.items()}  # fmt: skip


@pytest.fixture(scope="module")
def answering_dir(tmp_path_factory) -> Path:
    """A tiny model taught the answer template (it answers numbers), saved with its processor."""
    import torch

    from depthlm_hf.models.tiny import tiny_qwen2_5_vl
    from depthlm_hf.testing import fit_answer_template

    torch.manual_seed(0)
    model, processor = tiny_qwen2_5_vl(seed=1)
    fit_answer_template(model, processor)
    path = tmp_path_factory.mktemp("answering")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _eval_args(model: str, data: str, out: Path, num_samples: str) -> list[str]:
    return [
        "--model",
        model,
        "--data",
        data,
        "--num_samples",
        num_samples,
        "--output_dir",
        str(out),
        "--plots",
        "false",
    ]


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["results"]


def test_two_ranks_constant_on_ibims1_equal_one_process(ibims1_dir, tmp_path):
    data = f"ibims1={ibims1_dir / 'ibims1_val.jsonl'}:{ibims1_dir}"
    one = eval_main(_eval_args("constant:2.0", data, tmp_path / "one", "all"))
    _, units = _two_ranks(tmp_path, ["eval", *_eval_args("constant:2.0", data, tmp_path / "two", "all")])
    asked = [i for unit in units for i in unit]
    assert sorted(asked) == list(range(10_000))  # every sample asked exactly once, across both ranks
    assert _without_timing(_results(tmp_path / "two")) == _without_timing(one)
    assert one["distance"]["ibims1"]["delta1"] == pytest.approx(0.2819, abs=1e-12)
    merged = (tmp_path / "two/ibims1/distance/predictions.jsonl").read_bytes()
    assert merged == (tmp_path / "one/ibims1/distance/predictions.jsonl").read_bytes()
    assert sorted(p.name for p in (tmp_path / "two/ibims1/distance").iterdir()) == ["predictions.jsonl", "run.json"]


@pytest.fixture(scope="module")
def reference(ibims1_dir, answering_dir, tmp_path_factory) -> tuple[str, dict, bytes]:
    """One process, the answering model, 12 iBims-1 samples: (data argument, results, merged predictions)."""
    data = f"ibims1={ibims1_dir / 'ibims1_val.jsonl'}:{ibims1_dir}"
    out = tmp_path_factory.mktemp("one")
    results = eval_main(_eval_args(str(answering_dir), data, out, "12"))
    merged = (out / "ibims1/distance/predictions.jsonl").read_bytes()
    rows = [json.loads(line) for line in merged.splitlines()]
    assert len(rows) == 12 and sum(isinstance(r["prediction"], float) for r in rows) >= 6  # real answers
    return data, results, merged


def test_two_ranks_model_on_ibims1_equal_one_process(reference, answering_dir, tmp_path):
    data, one, merged = reference
    two = tmp_path / "two"
    _, units = _two_ranks(tmp_path, ["eval", *_eval_args(str(answering_dir), data, two, "12")])
    assert sorted(i for unit in units for i in unit) == list(range(12))
    assert (two / "ibims1/distance/predictions.jsonl").read_bytes() == merged
    assert _without_timing(_results(two)) == _without_timing(one)


def test_kill_a_rank_then_one_rank_resumes_identically(reference, answering_dir, tmp_path):
    data, one, merged = reference
    # Kill rank 1 (SIGKILL) before its third unit; torchrun then stops rank 0. Cut the last line of a rank file
    # as a kill during a write would. One process resumes and the merged result is the same again.
    killed = tmp_path / "killed"
    code, _ = _two_ranks(tmp_path, ["eval", *_eval_args(str(answering_dir), data, killed, "12")], 2)
    assert code != 0
    folder = killed / "ibims1/distance"
    assert not (folder / "predictions.jsonl").exists() and not (killed / "results.json").exists()
    shard = folder / "predictions.rank1-of-2.jsonl"
    assert len(shard.read_text().splitlines()) == 2
    shard.write_bytes(shard.read_bytes() + b'{"id": 99, "predic')
    again = eval_main(_eval_args(str(answering_dir), data, killed, "12"))
    assert 2 <= again["distance"]["ibims1"]["resumed_samples"] < 12
    assert (folder / "predictions.jsonl").read_bytes() == merged
    assert _without_timing(again) == _without_timing(one)


def test_two_ranks_dense_prediction_writes_each_image_once(answering_dir, tmp_path):
    root = tmp_path / "images"
    (root / "rgb").mkdir(parents=True)
    lines = []
    for i in range(5):
        Image.fromarray(np.full((84, 112, 3), 40 + 40 * i, np.uint8)).save(root / "rgb" / f"{i}.png")
        lines.append(json.dumps({"image": f"rgb/{i}.png", "intrinsics": [100.0, 100.0, 56.0, 42.0, 112, 84]}))
    (root / "images.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    argv = ["predict_dataset", "--model", str(answering_dir), "--data", f"{root / 'images.jsonl'}:{root}",
            "--output_dir", str(out), "--num_points", "6"]  # fmt: skip
    _, units = _two_ranks(tmp_path, argv)
    assert sorted(key for unit in units for key in unit) == [f"rgb/{i}" for i in range(5)]
    for i in range(5):
        info = json.loads((out / f"rgb/{i}.json").read_text())
        assert info["queries"] == 6 and (out / f"rgb/{i}.ply").is_file()
        assert np.load(out / f"rgb/{i}.depth.npy").shape == (84, 112)
    assert json.loads((out / "summary.json").read_text()) == {"images": 5, "predicted": 5, "resumed": 0, "skipped": {}}
    assert not list(out.rglob("*.tmp"))
