"""DepthLM data: record schema, curated loader, RGB-D converter, training (plain or grouped) and evaluation views."""

from depthlm_hf.data.convert import rgbd_to_record
from depthlm_hf.data.curated import CuratedDataset, load_curated, resolve_image_path
from depthlm_hf.data.eval_view import EvaluationView
from depthlm_hf.data.grouped import GroupedMixtureView, GroupedTrainingView
from depthlm_hf.data.records import SKIP_REASONS, InvalidRecordError, record_features, validate_record
from depthlm_hf.data.views import (
    PAPER_MIXTURE_WEIGHTS,
    MixtureView,
    TrainingView,
    TrainingViewConfig,
    mixture_weights,
)

__all__ = [
    "PAPER_MIXTURE_WEIGHTS",
    "SKIP_REASONS",
    "CuratedDataset",
    "EvaluationView",
    "GroupedMixtureView",
    "GroupedTrainingView",
    "InvalidRecordError",
    "MixtureView",
    "TrainingView",
    "TrainingViewConfig",
    "load_curated",
    "mixture_weights",
    "record_features",
    "resolve_image_path",
    "rgbd_to_record",
    "validate_record",
]
