"""`depthlm app`: serve a checkpoint in a Gradio app (click a pixel, read metres; point cloud and depth map).

    depthlm app --model runs/depthlm-3b                 # http://127.0.0.1:7860
    depthlm app                                         # the `depthlm demo` model (trained on first use)
    depthlm app --demo_dir demo_output                  # an existing `depthlm demo` output

Needs the `app` extra: `pip install "depthlm_hf[app]"` (gradio, trimesh). The same app runs as a Hugging Face
Space through the repository's top-level `app.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from trl import TrlParser


@dataclass
class AppArguments:
    """Arguments of `depthlm app`."""

    model: str | None = field(default=None, metadata={"help": "Checkpoint folder or Hub id (default: the demo)."})
    demo_dir: str | None = field(
        default=None, metadata={"help": "A `depthlm demo` output folder to serve (trained there if empty)."}
    )
    demo_fast: bool = field(default=False, metadata={"help": "Train a missing demo model with --fast (smoke)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (0.0.0.0: every interface)."})
    port: int = field(default=7860, metadata={"help": "Port to listen on."})
    share: bool = field(default=False, metadata={"help": "Also open a public gradio.live link."})
    device: str | None = field(default=None, metadata={"help": "Torch device (default: cuda if available)."})

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"`port` must be a TCP port number in [1, 65535], got {self.port!r}.")


def make_parser() -> TrlParser:
    """`TrlParser` over :class:`AppArguments`."""
    return TrlParser((AppArguments,))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse `argv` (default: `sys.argv[1:]`), load the model and serve the app until interrupted."""
    (args,) = make_parser().parse_args_and_config(argv)
    try:
        from depthlm_hf.app import build_app, demo_checkpoint
        from depthlm_hf.app.ui import gr  # noqa: F401  (fails here, with the hint below, without the extra)
    except ImportError as err:
        raise SystemExit(f"depthlm app needs the `app` extra: pip install 'depthlm_hf[app]' ({err}).") from None
    model = args.model or demo_checkpoint(args.demo_dir, fast=args.demo_fast)
    build_app(model, device=args.device).launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
