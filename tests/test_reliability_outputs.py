"""Output faults (issue 24, problems 2, 3 and 9): every CLI output fault is one line and exit code 2, found before
the model runs where it can be, and leaves nothing partial behind; files follow the umask; dataset names stay
under `--output_dir`.

Tests run as root, which ignores permission bits: a read-only folder is a read-only tmpfs where this machine lets
the test mount one (else skipped), and always an injected `EROFS`; a full disk is a small tmpfs filled up, and
always an injected `ENOSPC` in the middle of a write.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from depthlm_hf.cli import main
from depthlm_hf.inference.runstate import write_atomic

pytestmark = pytest.mark.usefixtures("one_thread")

W, H = 112, 84
CAMERA = ["100", "100", "55.5", "41.5"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A one-image curated dataset (`val.jsonl` + `img.png`) and the image for `predict`."""
    root = tmp_path_factory.mktemp("data")
    Image.new("RGB", (W, H), (90, 90, 90)).save(root / "img.png")
    record = {"image": "img.png", "intrinsics": [100, 100, 55.5, 41.5, W, H], "pixel_coords": [[50, 40], [60, 30]]}
    (root / "val.jsonl").write_text(json.dumps({**record, "depth": [2.0, 3.0]}) + "\n")
    return root


def predict_argv(model: Path, data: Path, out: Path) -> list[str]:
    image = str(data / "img.png")
    return ["predict", "--model", str(model), "--image", image, "--intrinsics", *CAMERA, "--points", "50,40",
            "--output_dir", str(out), "--device", "cpu"]  # fmt: skip


def eval_argv(data: Path, out: Path, name: str = "toy") -> list[str]:
    spec = f"{name}={data / 'val.jsonl'}:{data}"
    return ["eval", "--model", "constant:2.0", "--data", spec, "--output_dir", str(out), "--plots", "false"]


def one_line_error(capsys, command: str) -> str:
    """The error line (the last of stderr, after any progress bars); no traceback, no second error line."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"depthlm {command}: error: ") and "Traceback" not in err, err[-3000:]
    assert sum(line.startswith("depthlm ") for line in lines) == 1, err[-3000:]
    return lines[-1]


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a checkpoint is loaded: faults found up front never reach the model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr("depthlm_hf.inference.predictor.DepthLMPredictor.from_pretrained", refuse)


def test_a_file_in_the_way_is_found_before_the_model_runs(tiny_dir, data, tmp_path, capsys, no_model_load):
    in_the_way = tmp_path / "taken"
    in_the_way.write_text("not a folder")
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "sft" / "config_synthetic.yaml"
    cases = {
        "predict": predict_argv(tiny_dir, data, in_the_way),
        "eval": eval_argv(data, in_the_way / "sub"),
        "predict_dataset": ["predict_dataset", "--model", str(tiny_dir), "--data", f"{data / 'val.jsonl'}:{data}",
                            "--output_dir", str(in_the_way)],
        "sft": ["sft", "--config", str(recipe), "--output_dir", str(in_the_way / "run")],
    }  # fmt: skip
    for command, argv in cases.items():
        assert main(argv) == 2
        line = one_line_error(capsys, command)
        assert "`output_dir`" in line and f"{str(in_the_way)!r} is a file in the way" in line, line
    assert in_the_way.read_text() == "not a folder"


def test_outputs_inside_an_input_are_refused(tiny_dir, data, capsys, no_model_load):
    assert main(predict_argv(tiny_dir, data, tiny_dir / "predictions")) == 2
    assert "lies inside `model`" in one_line_error(capsys, "predict")
    assert main(predict_argv(tiny_dir, data, data / "img.png")) == 2
    assert "is or lies inside `image`" in one_line_error(capsys, "predict")
    assert not (tiny_dir / "predictions").exists()


def test_a_read_only_folder_is_found_before_the_model_runs(tiny_dir, data, tmp_path, capsys, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr("depthlm_hf.resources.tempfile.TemporaryFile", read_only)
    for command, argv in {
        "predict": predict_argv(tiny_dir, data, tmp_path / "p"),
        "eval": eval_argv(data, tmp_path),
    }.items():
        assert main(argv) == 2
        line = one_line_error(capsys, command)
        assert "`output_dir`" in line and "is not writable: Read-only file system" in line, line
    assert not any(tmp_path.iterdir())


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (`mount_tmpfs(options)` -> folder); skipped where this machine does not allow it."""
    mounted = []

    def mount_tmpfs(options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount_tmpfs
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_real_read_only_mount(tiny_dir, data, capsys, tmpfs, no_model_load):
    folder = tmpfs("ro,size=64k")
    assert main(predict_argv(tiny_dir, data, folder / "out")) == 2
    assert "is not writable: Read-only file system" in one_line_error(capsys, "predict")


def test_a_real_full_disk_leaves_nothing_partial(trained_tiny_dir, data, capsys, tmpfs):
    folder = tmpfs("size=64k")
    (folder / "filler").write_bytes(b"\0" * (60 * 1024))  # about 4 KiB left: the preview PNG does not fit
    out = folder / "out"
    assert main(predict_argv(trained_tiny_dir, data, out)) == 2
    line = one_line_error(capsys, "predict")
    assert "No space left on device" in line and "cannot write " in line, line
    assert not out.exists() or not any(out.iterdir())


def fail_half_way(monkeypatch, target: str) -> None:
    """Make `target` (a PIL-style `save(fp, format=...)`) write half its bytes, then hit a full disk."""
    real = Image.Image.save

    def save(self, fp, *args, **kwargs):
        real(self, fp, *args, **kwargs)
        size = os.path.getsize(fp)
        with open(fp, "r+b") as f:
            f.truncate(size // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(target, save)


def test_a_full_disk_while_predict_writes_leaves_the_old_outputs(trained_tiny_dir, data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").write_text("old")
    fail_half_way(monkeypatch, "PIL.Image.Image.save")
    assert main(predict_argv(trained_tiny_dir, data, out)) == 2
    line = one_line_error(capsys, "predict")
    assert "[Errno 28] cannot write" in line and "No space left on device" in line, line
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json"]  # no temporary file, no new file
    assert (out / "predictions.json").read_text() == "old"


class FullDiskFile:
    """A text file whose next write stores half its text, then fails as a full disk does."""

    def __init__(self, path, mode):
        self.file = open(path, mode)  # noqa: SIM115
        self.name = self.file.name

    def write(self, text):
        self.file.write(text[: len(text) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_a_full_disk_while_eval_appends_keeps_whole_rows_and_resumes(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("depthlm_hf.metrics.predictions.open", FullDiskFile, raising=False)
    assert main(eval_argv(data, tmp_path)) == 2
    line = one_line_error(capsys, "eval")
    assert "[Errno 28] cannot write" in line and "predictions.rank0-of-1.jsonl" in line, line
    rank_file = tmp_path / "toy" / "distance" / "predictions.rank0-of-1.jsonl"
    assert rank_file.read_bytes() == b""  # the half row was cut off again
    assert not (tmp_path / "results.json").exists()
    monkeypatch.undo()
    assert main(eval_argv(data, tmp_path)) == 0  # the disk has room again: the run completes
    assert json.loads((tmp_path / "results.json").read_text())["results"]["distance"]["toy"]["num_samples"] == 2


def test_dataset_names_are_names_and_stay_under_output_dir(data, tmp_path, capsys):
    out = tmp_path / "a" / "b"
    for name in ("../../x", str(tmp_path / "abs"), "..", "a/b", ".hidden", "a b"):
        assert main(eval_argv(data, out, name)) == 2
        assert "`data` names must be 1-100 letters" in one_line_error(capsys, "eval")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written anywhere
    assert main(eval_argv(data, out, "ibims-1_v2.0")) == 0
    assert (out / "ibims-1_v2.0" / "distance" / "predictions.jsonl").is_file()


def test_output_files_follow_the_umask(data, tmp_path):
    previous = os.umask(0o002)
    try:
        assert main([*eval_argv(data, tmp_path), "--plots", "true"]) == 0
        write_atomic(tmp_path / "direct.txt", "x")
    finally:
        os.umask(previous)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"run.json", "predictions.jsonl", "results.json", "results.csv", "direct.txt", "delta1_distance.png"} <= {
        p.name for p in files
    }
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: "0o664" for p in files}


@pytest.mark.slow
def test_a_full_disk_during_the_final_sft_save_is_one_line(tmp_path, capsys, monkeypatch):
    """A save that fails part-way (the checkpoint's weights on a full disk) ends the run with one line naming the
    file; an incomplete `checkpoint-N` it leaves is skipped on resume (`tests/test_training_checkpoints.py`)."""
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "sft" / "config_synthetic.yaml"
    weights = tmp_path / "run" / "model.safetensors"

    def full_disk(self, output_dir=None, _internal_call=False):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(weights))

    monkeypatch.setattr("transformers.Trainer.save_model", full_disk)
    argv = ["sft", "--config", str(recipe), "--max_steps", "1", "--synthetic_scenes", "4", "--output_dir",
            str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    line = one_line_error(capsys, "sft")
    assert line == f"depthlm sft: error: [Errno 28] No space left on device: {str(weights)!r}", line
