"""Named processor settings (a table of presets, as Depth Pro keeps its configs)."""

from __future__ import annotations

from typing import Any

from depthlm_hf.prompting.markers import MarkerStyle
from depthlm_hf.tasks import text as answers

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "unified_focal_length": 1000.0,
        "focal_mode": "xy",
        "marker": MarkerStyle().to_dict(),
        "question_template": None,
        "answer_template": None,
        "system_prompt": None,
    },
    "official_pixtral": {
        "base_processor_class": "PixtralProcessor",
        "unified_focal_length": 750.0,
        "focal_mode": "fx",
        "marker": MarkerStyle().to_dict(),
        "question_template": answers.OFFICIAL_QUESTION,
        "answer_template": answers.OFFICIAL_ANSWER,
        "system_prompt": None,
    },
}
"""Named settings. "paper": the paper's inputs (f* = 1000 px, red arrow, its sentences). "official_pixtral": the
official release's Pixtral-12B checkpoint (f* = 750 px scaled by fx only, its think/answer prompt and tags)."""
