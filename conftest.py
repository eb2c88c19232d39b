"""Collection rules for the whole repository (the doctests under src/ included)."""

import importlib.util

# The Gradio UI module imports gradio at the top; it is an optional extra (`.[app]`, also in `.[dev]`).
collect_ignore_glob = [] if importlib.util.find_spec("gradio") else ["src/depthlm_hf/app/ui.py"]
