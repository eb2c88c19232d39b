"""Run state: model fingerprints, run-info checks naming what differs, writes a failure cannot half-do."""

from __future__ import annotations

import json

import pytest

from depthlm_hf.inference.runstate import atomic_output, check_run_info, model_fingerprint, write_atomic


def test_fingerprint_sees_settings_and_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"1234")
    first = model_fingerprint(tmp_path)
    assert first["weights"][0][:2] == ["model.safetensors", 4] and first == model_fingerprint(tmp_path)
    (tmp_path / "processor_config.json").write_text('{"unified_focal_length": 750}')
    assert model_fingerprint(tmp_path)["settings_sha256"] != first["settings_sha256"]
    (tmp_path / "model.safetensors").write_bytes(b"12345")
    assert model_fingerprint(tmp_path)["weights"][0][1] == 5
    assert model_fingerprint("constant:2.0") == {"model": "constant:2.0"}


def test_check_run_info_names_the_differing_keys(tmp_path):
    path = tmp_path / "run.json"
    check_run_info(path, {"a": 1})  # a fresh run
    write_atomic(path, json.dumps({"a": 1, "b": [1, 2]}))
    check_run_info(path, {"a": 1, "b": (1, 2)})  # equal as JSON
    with pytest.raises(ValueError, match=r"\(b: saved \[1, 2\], now \[1, 3\]\); pass `--overwrite`"):
        check_run_info(path, {"a": 1, "b": [1, 3]})
    check_run_info(path, {"a": 2}, overwrite=True)


def test_atomic_output_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "sub" / "x.txt"
    write_atomic(path, "old")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and sorted(p.name for p in path.parent.iterdir()) == ["x.txt"]
