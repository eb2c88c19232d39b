"""Shared helpers for benchmark scripts: environment facts and writing results as JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict:
    """Device and library versions, recorded beside every figure."""
    versions = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "numpy", "pillow", "datasets", "deepspeed"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    device = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"device": device, "python": platform.python_version(), "versions": versions}


def write_result(name: str, figures: dict, quiet: bool = False) -> Path:
    """Write `figures` + environment + the command line to `benchmarks/results/<name>.json` and print them
    (unless `quiet`)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, **figures, **environment(), "command": " ".join(["python"] + sys.argv)}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    if not quiet:
        print(json.dumps(record, indent=2))
    return path
