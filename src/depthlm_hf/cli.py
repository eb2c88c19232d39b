"""`depthlm <command> [args]`: one entry point dispatching to `depthlm_hf.scripts.<command>.main`."""

from __future__ import annotations

import importlib
import os
import sys

from depthlm_hf import __version__

COMMANDS: dict[str, str] = {
    "demo": "learn metric depth from scratch on synthetic scenes, on CPU, and write a report",
    "prepare": "convert dense RGB-D data into the curated DepthLM format (jsonl + images)",
    "sft": "supervised fine-tuning with TRL's SFTTrainer",
    "grpo": "reinforcement fine-tuning with TRL's GRPOTrainer",
    "eval": "evaluate a model (or a constant baseline) on DepthLM benchmarks",
    "predict_dataset": "point clouds and depth maps for every image of a jsonl file (shards across ranks)",
    "predict": "ask a checkpoint the distance of pixels of an image; write JSON, a point cloud and a depth map",
    "app": "serve a checkpoint in a Gradio app: click a pixel, read metres; point cloud and depth map",
    "push": "upload a checkpoint folder and its DepthLM model card to the Hugging Face Hub",
}


def _usage() -> str:
    lines = ["usage: depthlm <command> [options]", "       depthlm --version", "", "commands:"]
    lines += [f"  {name:<16} {help_}" for name, help_ in COMMANDS.items()]
    lines += ["", "`depthlm <command> --help` shows the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"depthlm_hf {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"depthlm: unknown command {command!r}. Available: {', '.join(COMMANDS)}.\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"depthlm_hf.scripts.{command}")
    try:
        result = module.main(rest)
    except (ValueError, TypeError, OSError) as err:
        # Bad arguments and bad data raise ValueError/TypeError naming the argument, and a file that cannot be
        # read or written an OSError naming it (a full disk, a read-only folder): the message is the whole
        # answer, a traceback would bury it. DEPTHLM_TRACEBACK=1 shows it for debugging.
        if os.environ.get("DEPTHLM_TRACEBACK"):
            raise
        message = " ".join(str(err).split())  # one line, whatever the message holds
        print(f"depthlm {command}: error: {message}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
