"""The Gradio app of `depthlm app` (and of the top-level `app.py` Space): click a pixel, read metres."""

from depthlm_hf.app.session import AppSession, demo_checkpoint

__all__ = ["AppSession", "build_app", "demo_checkpoint"]


def build_app(*args, **kwargs):
    """`depthlm_hf.app.ui.build_app` (imports gradio, the `app` extra, only when called)."""
    from depthlm_hf.app.ui import build_app as build

    return build(*args, **kwargs)
