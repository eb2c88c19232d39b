"""`depthlm push FOLDER REPO`: upload a checkpoint folder, with its DepthLM model card, to the Hugging Face Hub.

    depthlm push runs/depthlm-3b me/depthlm-3b
    depthlm push runs/depthlm-3b me/depthlm-3b --private true --license apache-2.0

The card (`README.md`) is rewritten first from the folder's `depthlm_card.json` with the repository as its
title and usage id, so the Hub shows the DepthLM card (base model, data, visual prompt, recipe, evaluation
`model-index`) and never transformers' generic one. Uses `huggingface_hub.HfApi` (`create_repo`,
`upload_folder`); trainer checkpoints (`checkpoint-*`) are left out.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi
from trl import TrlParser

from depthlm_hf.training.modelcard import read_card_info, write_model_card


@dataclass
class PushArguments:
    """Arguments of `depthlm push`."""

    folder: str = field(metadata={"help": "Checkpoint folder written by depthlm sft/grpo/demo."})
    repo_id: str = field(metadata={"help": "Hub repository, e.g. me/depthlm-3b."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    license: str | None = field(default=None, metadata={"help": "Hub license id for the card, e.g. apache-2.0."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (default: main)."})
    commit_message: str = field(default="Upload DepthLM model", metadata={"help": "Commit message."})

    def __post_init__(self) -> None:
        if not Path(self.folder).is_dir():
            raise ValueError(f"`folder` {self.folder!r} is not a folder.")


def make_parser() -> TrlParser:
    """`TrlParser` over :class:`PushArguments`; `FOLDER REPO` may also be given as the first two positionals."""
    return TrlParser((PushArguments,))


def push(args: PushArguments, api: HfApi | None = None) -> str:
    """Write the DepthLM card for `args.repo_id` into the folder, upload the folder; returns the commit URL."""
    info = read_card_info(args.folder)
    info.hub_model_id = args.repo_id
    info.license = args.license or info.license
    write_model_card(args.folder, info)
    api = api or HfApi()
    api.create_repo(args.repo_id, private=args.private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=args.repo_id,
        folder_path=args.folder,
        revision=args.revision,
        commit_message=args.commit_message,
        ignore_patterns=["checkpoint-*", "checkpoint-*/**"],
    )
    url = str(getattr(commit, "commit_url", commit))
    print(f"pushed {args.folder} -> https://huggingface.co/{args.repo_id} ({url})")
    return url


def main(argv: Sequence[str] | None = None) -> str:
    """Parse `argv` (default: `sys.argv[1:]`; `FOLDER REPO` positionals allowed) and push."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and not argv[0].startswith("-") and not argv[1].startswith("-"):
        argv = ["--folder", argv[0], "--repo_id", argv[1], *argv[2:]]
    (args,) = make_parser().parse_args_and_config(argv)
    return push(args)


if __name__ == "__main__":
    main()
