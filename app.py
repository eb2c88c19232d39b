"""Hugging Face Space entry point: the DepthLM Gradio app.

Set the Space variable `DEPTHLM_MODEL` to a checkpoint (Hub id or folder); without it the app serves the
`depthlm demo` model, training it on first start. Locally: `python app.py` or `depthlm app`.
"""

import os

from depthlm_hf.app import build_app, demo_checkpoint

demo = build_app(os.environ.get("DEPTHLM_MODEL") or demo_checkpoint())

if __name__ == "__main__":
    demo.launch()
