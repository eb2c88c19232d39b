"""DepthLM data: record schema, curated-format loader, RGB-D converter, training/evaluation views, mixtures."""

from .curated import CuratedDataset, load_curated, resolve_image_path
from .records import SKIP_REASONS, InvalidRecordError, record_features, validate_record

__all__ = [
    "SKIP_REASONS",
    "CuratedDataset",
    "InvalidRecordError",
    "load_curated",
    "record_features",
    "resolve_image_path",
    "validate_record",
]
