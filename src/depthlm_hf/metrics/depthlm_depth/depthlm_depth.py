"""`evaluate` metric module for DepthLM: delta1/2/3, AbsRel, SqRel, RMSE(-log), log10, SILog, parse failures.

Load it offline with `evaluate.load(depthlm_hf.metric_path())`. The arithmetic lives in
`depthlm_hf.metrics.functional.depth_metrics`; this file adds the `evaluate` interface.
"""

import datasets
import evaluate

from depthlm_hf.metrics.functional import depth_metrics, to_metres

_CITATION = """\
@article{cai2025depthlm,
  title={DepthLM: Metric Depth From Vision Language Models},
  author={Cai, Zhipeng and Yeh, Ching-Feng and Hu, Xu and Liu, Zhuang and Meyer, Gregory and Lei, Xinjie and
          Zhao, Changsheng and Li, Shang-Wen and Chandra, Vikas and Shi, Yangyang},
  journal={arXiv preprint arXiv:2509.25413},
  year={2025}
}
"""

_DESCRIPTION = """\
Metric-depth accuracy of answers to "how far is this point?": the delta accuracies (share of all
samples with max(pred/gt, gt/pred) < 1.25, 1.25^2, 1.25^3; invalid or unparseable answers count as
wrong), and AbsRel, SqRel, RMSE, RMSE-log, log10 and SILog (100 * sqrt(mean(e^2) - mean(e)^2) with
e = ln pred - ln gt) over the valid answers, plus how many answers were invalid or did not parse.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`, `None` or `str`): predicted values [m] (or [s], [m/s] for the
        time and speed tasks), or the raw model answers, parsed with `depthlm_hf.tasks.text.parse_answer`.
        `None`, NaN, inf, zero and negative values are invalid.
    references (`list` of `float`): ground-truth values, finite and > 0.
    task (`str`, default "distance"): the DepthLM task, which selects the answer parser's unit.
Returns:
    delta1, delta2, delta3 (`float`): over all samples, invalid answers counted wrong.
    abs_rel, sq_rel, rmse, rmse_log, log10, silog (`float`): over the valid answers (NaN if none).
    num_samples, num_valid, num_invalid, num_unparseable (`int`), invalid_rate, parse_failure_rate (`float`).
Examples:
    >>> metric = evaluate.load(depthlm_hf.metric_path())  # doctest: +SKIP
    >>> result = metric.compute(predictions=[2.0, "4.1 m", "?"], references=[2.1, 4.0, 3.0])  # doctest: +SKIP
    >>> result["delta1"]  # doctest: +SKIP
    0.6666666666666666
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DepthlmDepth(evaluate.Metric):
    """Delta accuracies and depth errors of DepthLM answers."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("float64")}),
            ],
            reference_urls=["https://arxiv.org/abs/2509.25413"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Score `predictions` against `references`; text is parsed first, so a list may mix text, numbers."""
        if (predictions is None) != (references is None):  # both None: the batches given to `add_batch`
            missing = "predictions" if predictions is None else "references"
            raise TypeError(f"`{missing}` is required with the other: a sequence of values, got None.")
        # evaluate picks one input schema per batch; parsing text here lets one list mix text and numbers.
        if predictions is not None and any(isinstance(p, str) for p in predictions):
            predictions = to_metres(predictions, kwargs.get("task", "distance"))
        if predictions is not None and references is not None and (len(predictions) == 0 or len(references) == 0):
            return depth_metrics(predictions, references, **kwargs)  # raises, naming the argument
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, task="distance"):
        return depth_metrics(predictions, references, task=task)
