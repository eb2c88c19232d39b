"""The public surface: every exported name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import depthlm_hf


def test_every_export_resolves():
    assert sorted(depthlm_hf.__all__) == sorted(depthlm_hf._EXPORTS)
    for name in depthlm_hf.__all__:
        assert getattr(depthlm_hf, name) is not None, name


def test_import_is_lazy():
    code = "import sys, depthlm_hf; print('transformers' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
