"""The DepthLM tasks: question and answer text, the answer parser, labels and samples."""

from depthlm_hf.tasks.labels import LabelInputs
from depthlm_hf.tasks.samples import TaskRanges, TaskSample, build_sample, check_task
from depthlm_hf.tasks.text import TASKS, Task, TaskText, format_answer, get_task, parse_answer, question

__all__ = [
    "TASKS",
    "LabelInputs",
    "Task",
    "TaskRanges",
    "TaskSample",
    "TaskText",
    "build_sample",
    "check_task",
    "format_answer",
    "get_task",
    "parse_answer",
    "question",
]
