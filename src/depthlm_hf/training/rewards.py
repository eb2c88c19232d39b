"""GRPO reward functions for metric answers, in TRL's signature, and their registry.

A reward function takes the batch's completions and the dataset columns as keyword lists aligned with
them, and returns one float per completion (or `None`, which `trl.GRPOTrainer` leaves out of the sum):

    reward(completions, depth, **columns) -> list[float | None]

`depth` is the ground-truth answer of each row in the task's unit ([m] for distances, [s] for time,
[m/s] for speed); a `task` column, when the dataset has one (multi-task mixtures), tells how to parse
each completion. Answers are read with `depthlm_hf.tasks.text.parse_answer`, which finds the number inside
`<answer> </answer>` tags when present and in the plain sentence otherwise. A completion with no number
gets the reward's `penalty`: a defined value, never a crash.

Rewards with parameters are built by factories that return picklable callable objects (DeepSpeed and
multi-process data loading pickle them); `get_reward(name, **params)` resolves a registry name or an
explicit dotted import path, and `build_rewards` gives the rewards of a GRPO run.
"""

from __future__ import annotations

import importlib
import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from depthlm_hf.choices import check_choice
from depthlm_hf.tasks.text import parse_answer

RewardFunc = Callable[..., list[float | None]]
Metric = Literal["l1", "l2", "absrel", "delta1"]
"""The accuracy measures of `metric_reward`."""
METRICS: tuple[Metric, ...] = get_args(Metric)

REWARD_FLOOR = -1.0e12
"""The lowest reward of a parsed answer: an answer of 1e160 m, or a label of 5e-324 m, gets it instead of -inf or
an OverflowError (the trainer normalises rewards in float32, where it is still finite)."""

_THINK_ANSWER = re.compile(r"^\s*<think>.*?</think>\s*<answer>(.*?)</answer>\s*$", re.DOTALL)


def completion_text(completion: Any) -> str:
    """The text of one completion, conversational (`[{"role": "assistant", "content": ...}]`) or plain.

    >>> completion_text([{"role": "assistant", "content": "The point is around 2.00 meters away."}])
    'The point is around 2.00 meters away.'
    >>> completion_text("3.5"), completion_text([{"content": [{"type": "text", "text": "4"}]}])
    ('3.5', '4')
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    parts = []
    for message in completion or []:
        content = message.get("content", "") if isinstance(message, dict) else message
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(item.get("text") or "" for item in content if isinstance(item, dict))
    return "".join(parts)


def metric_reward(prediction: float, target: float, metric: Metric) -> float:
    """Reward of one parsed `prediction` against `target` (same unit): higher is better.

    `l1`: -|p - t|; `l2`: -(p - t)^2; `absrel`: -|p - t| / t; `delta1`: 1.0 if max(p/t, t/p) < 1.25 else 0.0.

    >>> tuple(metric_reward(3.0, 2.0, metric) for metric in ("l1", "l2", "absrel"))
    (-1.0, -1.0, -0.5)
    >>> tuple(metric_reward(prediction, 2.0, "delta1") for prediction in (2.4, 2.6, 0.0))
    (1.0, 0.0, 0.0)

    Errors past :data:`REWARD_FLOOR` get it, so every parsed answer has a finite reward:

    >>> metric_reward(1e160, 2.0, "l2"), metric_reward(2.0, 5e-324, "absrel")
    (-1000000000000.0, -1000000000000.0)
    """
    check_choice("metric", metric, Metric)
    error = prediction - target
    if metric in ("l1", "l2", "absrel"):
        # Float products and quotients overflow to inf (`**` would raise OverflowError); inf becomes the floor.
        reward = {"l1": -abs(error), "l2": -(error * error), "absrel": -abs(error) / target}[metric]
        return reward if reward >= REWARD_FLOOR else REWARD_FLOOR
    if prediction <= 0:  # delta1
        return 0.0
    return 1.0 if max(prediction / target, target / prediction) < 1.25 else 0.0


def _column(columns: dict[str, Any], name: str, size: int) -> Sequence[Any] | None:
    values = columns.get(name)
    if values is None:
        return None
    if len(values) != size:
        raise ValueError(f"column `{name}` has {len(values)} values for {size} completions.")
    return values


@dataclass
class AnswerReward:
    """Accuracy reward of parsed answers against the `depth` column (one metric).

    Args:
        metric: "l1" (negative absolute error, the paper's GRPO reward), "l2" (negative squared error),
            "absrel" (negative relative error) or "delta1" (1 inside the 1.25 ratio band, else 0).
        penalty: reward of a completion with no parseable number (`None`: left out of the sum).
        task: task used to parse completions when the dataset has no `task` column.
        name: display name in the trainer's logs (`rewards/<name>/mean`).
    """

    metric: Metric = "l1"
    penalty: float | None = -100.0
    task: str = "distance"
    name: str = ""

    def __post_init__(self) -> None:
        check_choice("metric", self.metric, Metric)
        if self.penalty is not None and not math.isfinite(self.penalty):
            raise ValueError(f"`penalty` must be a finite number or None, got {self.penalty!r}.")
        self.__name__ = self.name or f"{self.metric}_reward"

    def __call__(self, completions: list[Any], depth: Sequence[float], **columns: Any) -> list[float | None]:
        """One reward per completion; `depth` (B,) targets in the task's unit, > 0 (a row whose target
        is missing, non-finite or <= 0 gets `None`)."""
        depth = _column({"depth": depth}, "depth", len(completions))
        tasks = _column(columns, "task", len(completions)) or [self.task] * len(completions)
        rewards: list[float | None] = []
        for row, (completion, target, task) in enumerate(zip(completions, depth, tasks, strict=True)):
            if target is not None and (isinstance(target, bool) or not isinstance(target, numbers.Real)):
                raise TypeError(
                    f"`depth` must hold numbers (or None) in the task's unit, got {type(target).__name__} "
                    f"{target!r} at row {row}."
                )
            prediction = parse_answer(completion_text(completion), task=task)
            if target is None or not math.isfinite(target) or target <= 0:
                rewards.append(None)  # a bad label says nothing about the completion
            elif prediction is None:
                rewards.append(self.penalty)
            else:
                rewards.append(metric_reward(prediction, float(target), self.metric))
        return rewards


@dataclass
class FormatReward:
    """1.0 when a completion has a parseable answer (in the `<think></think><answer></answer>` layout
    when `think_answer` is set), else `penalty`.

    Args:
        think_answer: require the think/answer tag layout of the GRPO prompt.
        penalty: reward of a badly formatted completion.
        task: task used to parse completions when the dataset has no `task` column.
    """

    think_answer: bool = True
    penalty: float = 0.0
    task: str = "distance"

    def __post_init__(self) -> None:
        self.__name__ = "format_reward"

    def __call__(self, completions: list[Any], **columns: Any) -> list[float | None]:
        tasks = _column(columns, "task", len(completions)) or [self.task] * len(completions)
        rewards: list[float | None] = []
        for completion, task in zip(completions, tasks, strict=True):
            text = completion_text(completion)
            if self.think_answer:
                match = _THINK_ANSWER.match(text)
                text = match.group(1) if match else ""
            rewards.append(1.0 if parse_answer(text, task=task) is not None else self.penalty)
        return rewards


def negative_l1(penalty: float | None = -100.0, task: str = "distance") -> AnswerReward:
    """-|pred - gt| (the paper's GRPO reward); a completion with no number gets `penalty`."""
    return AnswerReward("l1", penalty, task, name="neg_l1")


def negative_l2(penalty: float | None = -1.0e4, task: str = "distance") -> AnswerReward:
    """-(pred - gt)^2; a completion with no number gets `penalty`."""
    return AnswerReward("l2", penalty, task, name="neg_l2")


def negative_absrel(penalty: float | None = -10.0, task: str = "distance") -> AnswerReward:
    """-|pred - gt| / gt; a completion with no number gets `penalty`."""
    return AnswerReward("absrel", penalty, task, name="neg_absrel")


def delta1(penalty: float | None = 0.0, task: str = "distance") -> AnswerReward:
    """1.0 when max(pred/gt, gt/pred) < 1.25, else 0.0; a completion with no number gets `penalty`."""
    return AnswerReward("delta1", penalty, task, name="delta1")


def format_reward(think_answer: bool = True, penalty: float = 0.0, task: str = "distance") -> FormatReward:
    """1.0 for a well-formed answer, `penalty` otherwise (see `FormatReward`)."""
    return FormatReward(think_answer=think_answer, penalty=penalty, task=task)


REWARDS: dict[str, Callable[..., RewardFunc]] = {
    "neg_l1": negative_l1,
    "neg_l2": negative_l2,
    "neg_absrel": negative_absrel,
    "delta1": delta1,
    "format": format_reward,
}
"""Registry of reward factories by name; `neg_l1` is the paper's choice and the default."""


def _import_object(path: str) -> Any:
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def get_reward(name: str | Callable[..., Any], **params: Any) -> RewardFunc:
    """The reward function called `name`: a registry name (`REWARDS`), or an explicit dotted import path
    (`pkg.mod.func` or `pkg.mod:func`; a name without a dot is only looked up in the registry).

    Registry names and importable factories are called with `params`; an imported reward function is
    returned as it is (then `params` must be empty).

    >>> get_reward("neg_l1")([[{"role": "assistant", "content": "around 2.5 meters"}]], depth=[2.0])
    [-0.5]
    >>> get_reward("neg_l1", penalty=-7.0)(["no idea"], depth=[2.0])
    [-7.0]
    """
    if callable(name):
        return name(**params) if params else name
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a reward name or a callable, got {type(name).__name__} {name!r}.")
    if name in REWARDS:
        return REWARDS[name](**params)
    if "." not in name:
        raise ValueError(
            f"Unknown reward {name!r}. Available: {', '.join(REWARDS)} (or a dotted import path such as "
            "'my_pkg.rewards:my_reward')."
        )
    try:
        obj = _import_object(name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"Cannot import reward {name!r}: {err}. Available: {', '.join(REWARDS)}.") from err
    if not callable(obj):
        raise TypeError(f"Reward {name!r} is a {type(obj).__name__}, not a callable.")
    return obj(**params) if params else obj


def build_rewards(
    names: Sequence[str], unparseable_penalty: float | None = None, think_answer: bool = True
) -> list[RewardFunc]:
    """The rewards `names` (see :func:`get_reward`) of a GRPO run: accuracy rewards (`AnswerReward`) get
    `unparseable_penalty` when it is set, format rewards (`FormatReward`) check the think/answer layout
    only when `think_answer` (the run has the think/answer system prompt).

    >>> l1, fmt = build_rewards(["neg_l1", "format"], unparseable_penalty=-5.0, think_answer=False)
    >>> l1.penalty, fmt.think_answer
    (-5.0, False)
    """
    rewards = []
    for name in names:
        reward = get_reward(name)
        if isinstance(reward, AnswerReward) and unparseable_penalty is not None:
            reward = replace(reward, penalty=unparseable_penalty)
        if isinstance(reward, FormatReward) and not think_answer:
            reward = replace(reward, think_answer=False)
        rewards.append(reward)
    return rewards
