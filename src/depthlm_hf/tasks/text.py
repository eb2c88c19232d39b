"""Question and answer text for the six DepthLM tasks: templates, formatting, and a parser that never raises.

All values are in SI units: metres [m], seconds [s], metres per second [m/s].
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from depthlm_hf.tasks import labels

TaskName = Literal["distance", "z_distance", "speed", "time", "two_point_distance", "translation", "marker_row"]
"""The tasks' names: the keys of `TASKS` (checked at import)."""
TASK_NAMES: tuple[TaskName, ...] = get_args(TaskName)
Unit = Literal["m", "s", "m/s", "10 px"]
"""Units of the answers: metres, seconds, metres per second; tens of pixels ("marker_row")."""
DEFAULT_TASK: TaskName = "distance"
"""The paper's task: the default of every `task` argument, and the one a point cloud asks at each pixel."""


@dataclass(frozen=True)
class Task:
    """One DepthLM task: its text, unit, prompt shape and label (the one registry every module reads).

    Args:
        name: the task's name, its key in `TASKS`.
        question: user question; `{field}` placeholders are filled from the sample (e.g. `{time}`).
        answer: assistant answer; `{value}` receives the number with two decimals.
        label: computes the target value from `depthlm_hf.tasks.labels.LabelInputs`.
        unit: unit of the answer value ("m", "s", "m/s"; "10 px": tens of pixels): lengths accept cm/mm/km in
            model output.
        num_points: markers per prompt (0: the question is about the images, not a pixel).
        num_images: images per prompt.
        fields: question placeholders drawn per sample (from `TaskRanges`).
        preset_prompt: a processor's `question_template` and `answer_template` (a preset's prompt, such as the
            official release's) replace this task's text.
    """

    name: TaskName
    question: str
    answer: str
    label: Callable[[labels.LabelInputs], float]
    unit: Unit = "m"
    num_points: int = 1
    num_images: int = 1
    fields: tuple[str, ...] = ()
    preset_prompt: bool = False

    def is_per_pixel(self) -> bool:
        """Whether the task asks one question per pixel of one image with nothing drawn per sample (no question
        field): its answers form a map of the image, so queries of one image batch and share its resize.

        >>> TASKS["z_distance"].is_per_pixel(), TASKS["speed"].is_per_pixel()
        (True, False)
        """
        return self.num_images == 1 and self.num_points == 1 and not self.fields


TaskText = Task
"""The former name of `Task`."""

_TASK_LIST = (
    Task(
        "distance",
        "How many meters is this point from the camera?",
        "The point is around {value} meters away from the camera.",
        labels.label_distance,
        preset_prompt=True,
    ),
    Task(
        "z_distance",
        "How many meters is this point from the camera along the camera's viewing direction?",
        "The point is around {value} meters from the camera along the viewing direction.",
        labels.label_z_distance,
    ),
    Task(
        "speed",
        "How many meters per second must the camera move to reach this point in {time:.2f} seconds?",
        "The camera must move at around {value} meters per second.",
        labels.label_speed,
        unit="m/s",
        fields=("time",),
    ),
    Task(
        "time",
        "How many seconds does the camera need to reach this point at {speed:.2f} meters per second?",
        "The camera needs around {value} seconds.",
        labels.label_time,
        unit="s",
        fields=("speed",),
    ),
    Task(
        "two_point_distance",
        "How many meters apart are the two marked points?",
        "The two points are around {value} meters apart.",
        labels.label_two_point_distance,
        num_points=2,
    ),
    Task(
        "translation",
        "How many meters did the camera move between the first and the second image?",
        "The camera moved around {value} meters.",
        labels.label_translation,
        num_points=0,
        num_images=2,
    ),
    Task(
        "marker_row",
        "How many tens of pixels below the top of the image is this point?",
        "The point is around {value} tens of pixels below the top of the image.",
        labels.label_marker_row,
        unit="10 px",
    ),
)
TASKS: dict[TaskName, Task] = {task.name: task for task in _TASK_LIST}
"""Every task by name; the distance texts are the paper's. "marker_row" (the marker's row in the model image,
in tens of pixels; no depth label) is a localisation task, a warm start for the depth tasks (docs/training.md)."""
assert tuple(TASKS) == TASK_NAMES, f"`TASKS` {tuple(TASKS)} must list the `TaskName`s {TASK_NAMES} in order."

OFFICIAL_QUESTION = (
    "Given this image, how far is the point pointed by the red arrow from the camera? Output the thinking "
    "process in <think> </think> and final answer (the meter number only, without the unit) in <answer> </answer> tags."
)
OFFICIAL_ANSWER = (
    "<think> The point is around {value} meters away from the camera. </think>\n\n<answer> {value} </answer>"
)
"""The official release's distance prompt and training answer (its Pixtral-12B checkpoint)."""


def get_task(task: str) -> Task:
    """The text of `task`; raises `ValueError` listing the valid names."""
    try:
        return TASKS[task]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown task {task!r}. Available: {', '.join(TASK_NAMES)}.") from None


def question(task: str = "distance", template: str | None = None, **fields: float) -> str:
    """The question of `task` (or of `template`), its placeholders filled from `fields`.

    >>> question("time", speed=1.5)
    'How many seconds does the camera need to reach this point at 1.50 meters per second?'
    """
    text = template if template is not None else get_task(task).question
    try:
        return text.format(**fields)
    except KeyError as err:
        raise ValueError(f"task {task!r} needs the field {err.args[0]!r} for its question {text!r}.") from None


def format_answer(value: float, task: str = "distance", template: str | None = None) -> str:
    """The training answer for `value` (two decimals), in `template` or the task's own.

    >>> format_answer(3.14159)
    'The point is around 3.14 meters away from the camera.'
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"`value` must be a number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`value` must be finite and >= 0, got {value!r}.")
    text = template if template is not None else get_task(task).answer
    return text.format(value=f"{value:.2f}")


_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<num>[-+]?\d+(?:,\d+)*(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"\s*(?P<unit>millimet(?:er|re)s?|centimet(?:er|re)s?|kilomet(?:er|re)s?|met(?:er|re)s?|mm|cm|km|m)?(?![a-zA-Z])"
)
_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+(?:[eE][-+]?\d+)?")
_LENGTH_UNITS = {"mm": 1e-3, "millimet": 1e-3, "cm": 1e-2, "centimet": 1e-2, "km": 1e3, "kilomet": 1e3}


def parse_answer(text: object, task: str = "distance") -> float | None:
    """The number a model answered, in the task's unit, or `None` when there is none.

    Never raises for any `text`; an unknown `task` is a programming error and raises `ValueError` listing
    the valid names.

    Reads the paper's sentence ("... around 3.25 meters ...") and the official release's
    `<answer> 3.25 </answer>` tags (the tag wins when present); takes the first number; converts
    cm/mm/km to metres for length tasks; accepts thousands separators ("1,250.5"), a decimal comma
    ("3,25") and exponents ("2.5e1").

    The comma rule: a dot is always the decimal point. Commas that group the integer part in threes
    after a nonzero leading group of 1-3 digits are thousands separators ("1,250" -> 1250.0,
    "12,345,678.5"); otherwise a single comma is a decimal comma ("3,1415" -> 3.1415, "0,123" -> 0.123,
    "3,25" -> 3.25); any other comma separates numbers, and the first is taken ("1,2,3" -> 1.0).

    >>> parse_answer("The point is around 3.25 meters away from the camera.")
    3.25
    >>> parse_answer("<think>far</think><answer> 12 </answer>"), parse_answer("about 250 cm"), parse_answer("no idea")
    (12.0, 2.5, None)
    >>> [parse_answer(t) for t in ("3,1415 meters", "0,1234", "0,123", "1,250", "1,250.5", "12,345,678", "-1,000")]
    [3.1415, 0.1234, 0.123, 1250.0, 1250.5, 12345678.0, -1000.0]
    >>> [parse_answer(t) for t in ("3,25 m", "2,5e1", "1,2,3", "1,2345.6", "350,0 cm")]
    [3.25, 25.0, 1.0, 1.0, 3.5]
    """
    unit = get_task(task).unit
    if not isinstance(text, str):
        return None
    tagged = _ANSWER_TAG.search(text)
    if tagged and _NUMBER.search(tagged.group(1)):
        text = tagged.group(1)
    match = _NUMBER.search(text)
    if match is None:
        return None
    number = match.group("num")
    if _THOUSANDS.fullmatch(number):
        number = number.replace(",", "")
    elif _DECIMAL_COMMA.fullmatch(number):
        number = number.replace(",", ".")
    elif "," in number:  # a list such as "1,2,3": its first number, without the unit that follows the list
        number, match = number.split(",", 1)[0], None
    try:
        value = float(number)
    except ValueError:
        return None
    suffix = (match.group("unit") or "").lower() if match else ""
    if unit == "m":
        for prefix, factor in _LENGTH_UNITS.items():
            if suffix.startswith(prefix):
                value *= factor
                break
    return value if math.isfinite(value) else None


def release_answer(text: object) -> float | None:
    """The number the official release's evaluation reads from a free generation, or `None` when it reads none.

    The release (`utils/metrics.py::delta1_metric`) takes `float(math_verify.parse(text)[0])`: math-verify's
    last expression, in the unit as written. It differs from `parse_answer` (measured with math-verify 0.9.0):
    "250 cm" -> 250.0 (no unit conversion), "2e1" -> 2.0, "1/2" -> 0.5 (a fraction), "around 3 to 4 meters"
    -> 4.0 and two `<answer>` tags -> the last one's number. Needs the `official` extra (math-verify).

    >>> release_answer("<answer> 2 </answer><answer> 3 </answer>"), release_answer("1/2"), release_answer("no")
    (3.0, 0.5, None)
    """
    try:
        from math_verify import parse
    except ImportError:
        raise ImportError(
            "The official release's scoring parses answers with math-verify: `pip install depthlm-hf[official]` "
            "(or `pip install math-verify`)."
        ) from None
    if not isinstance(text, str):
        return None
    try:
        value = float(parse(text)[0])
    except Exception:  # the release scores any failure to read a number as a miss
        return None
    return value if math.isfinite(value) else None
