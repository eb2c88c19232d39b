"""What a training run skipped, by dataset and reason: printed at the start and the end, written to
`output_dir/data_skips.json`, and held to `max_skipped_fraction` (see `depthlm_hf.data.skips`).

At the start every curated dataset is scanned once (JSON, schema, paths, that each image file exists and
is a regular file). During training the views count the records they could not use, unreadable images
included (they are decoded only then); the run fails when their share passes the limit, rather than
training on a silently different mixture and exiting 0. With `dataloader_num_workers > 0` the rows are
drawn in worker processes, whose counts do not reach this report: the end counts then cover only draws
made in the main process.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from depthlm_hf.data.skips import check_skipped_fraction, describe, scan_source, skip_counts, skip_summary
from depthlm_hf.inference.runstate import write_atomic

logger = logging.getLogger(__name__)

MIN_DRAWS = 50
"""Records drawn before the running skip share is held to the limit (a few early skips are noise)."""


class DataSkipReport(TrainerCallback):
    """Counts of skipped records for a run; `scan` sources at build time, `watch` their training views."""

    def __init__(self, max_skipped_fraction: float, output_dir: str | None = None, scan: bool = True) -> None:
        self.limit, self.output_dir, self.scan_enabled = max_skipped_fraction, output_dir, scan
        self.start: dict[str, dict[str, Any]] = {}
        self.views: dict[str, Any] = {}

    def scan(self, name: str, source: Any) -> None:
        """Scan `source` (when it is a curated dataset and scanning is on), print and check its skips."""
        summary = scan_source(source) if self.scan_enabled else None
        if summary is None:
            return
        self.start[name] = summary
        _announce(f"data at start: {describe(name, summary)}", summary)
        check_skipped_fraction(name, summary, self.limit)

    def watch(self, name: str, view: Any) -> None:
        """Count the records `view` (a `TrainingView`, with `stats`) skips while training."""
        self.views[name] = view

    def drawn(self) -> dict[str, dict[str, Any]]:
        """Per watched view: the summary of the records drawn so far."""
        out = {}
        for name, view in self.views.items():
            skipped = skip_counts(view.stats)
            out[name] = skip_summary(view.stats.get("ok", 0) + sum(skipped.values()), skipped)
        return out

    def check(self, minimum: int = 0) -> None:
        """Fail when the share of skipped draws of a view passes the limit (after `minimum` draws)."""
        for name, summary in self.drawn().items():
            if summary["total"] >= max(minimum, 1):
                check_skipped_fraction(f"{name} (records drawn in training)", summary, self.limit)

    def report(self) -> dict[str, Any]:
        """`{"max_skipped_fraction", "start": {dataset: summary}, "end": {dataset: summary of draws}}`."""
        return {"max_skipped_fraction": self.limit, "start": self.start, "end": self.drawn()}

    def on_step_end(self, args, state, control, **kwargs):
        self.check(MIN_DRAWS)

    def on_train_end(self, args, state, control, **kwargs):
        report = self.report()
        for name, summary in report["end"].items():
            _announce(f"data at end: {describe(name, summary, 'records drawn')}", summary)
        if state.is_world_process_zero and self.output_dir:
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            write_atomic(Path(self.output_dir) / "data_skips.json", json.dumps(report, indent=2))
        self.check()


def _announce(line: str, summary: dict[str, Any]) -> None:
    # Printed as well as logged: a run's log level may hide INFO, and a skip must never pass unseen.
    print(line)
    logger.log(logging.WARNING if summary["skipped"] else logging.INFO, line)
