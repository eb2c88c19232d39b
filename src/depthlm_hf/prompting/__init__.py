"""Visual prompting: image loading and resizing, markers, the processor and the marker-patch fast path."""

from depthlm_hf.prompting.markers import MARKER_SHAPES, MarkerStyle, draw_markers, marker_fits
from depthlm_hf.prompting.processing import PRESETS, DepthLMProcessor, PreparedImage, VisualPromptProcessor

__all__ = [
    "MARKER_SHAPES",
    "PRESETS",
    "DepthLMProcessor",
    "MarkerStyle",
    "PreparedImage",
    "VisualPromptProcessor",
    "draw_markers",
    "marker_fits",
]
