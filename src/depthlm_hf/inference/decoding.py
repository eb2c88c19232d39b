"""Greedy number decoding: which tokens make a number, where it ends, its confidence, ids -> values.

The one home of the rules both backends (`DepthLMPredictor`, `VLLMPredictor`) apply to generated tokens:
a number may start with whitespace, continues with digit/point tokens and ends at the first other token
(or at whitespace after a digit); its confidence is the probability of the answer at 0.1 resolution, the
product of the probabilities of the number's tokens up to and including the first decimal digit, along
the greedy path (later digits are sub-decimetre noise that would swamp the product).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import StoppingCriteria


@dataclass
class DepthPrediction:
    """Answers to Q queries.

    Attributes:
        values: (Q,) answers in the task's unit ([m] for distances), `None` where the model's text gave no
            number or the number did not end within `max_new_tokens`.
        confidence: (Q,) float in [0, 1], the probability of the answer at 0.1 resolution; NaN where
            `values` is `None`.
        texts: (Q,) the generated text after the forced prefix (the number and the token that ended it).
        reasons: (Q,) why a query was not asked (e.g. its pixel is too near the border for the marker), `None`
            for asked queries; an empty list means every query was asked.
    """

    values: list[float | None]
    confidence: np.ndarray
    texts: list[str]
    reasons: list[str | None] = field(default_factory=list)

    def with_unasked(self, reasons: Sequence[str | None]) -> DepthPrediction:
        """These answers (one per asked query) spread over all queries: `None` where `reasons` say why not."""
        asked = iter(range(len(self)))
        picks = [next(asked) if reason is None else None for reason in reasons]
        return DepthPrediction(
            [None if i is None else self.values[i] for i in picks],
            np.array([math.nan if i is None else self.confidence[i] for i in picks], dtype=np.float64),
            ["" if i is None else self.texts[i] for i in picks],
            list(reasons),
        )

    def as_array(self) -> np.ndarray:
        """`values` as a (Q,) float array, NaN where `None`."""
        return np.array([math.nan if v is None else v for v in self.values], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class Generated:
    """What a backend generated for Q queries after the forced prefix.

    Attributes:
        tokens: (Q,) lists of generated token ids.
        logprobs: (Q,) lists, the log-probability of each generated token (same lengths as `tokens`).
    """

    tokens: list[list[int]]
    logprobs: list[list[float]]

    def extend(self, other: Generated) -> None:
        """Append `other`'s rows."""
        self.tokens += other.tokens
        self.logprobs += other.logprobs


class TokenClasses:
    """Which tokens of a vocabulary may belong to a number: digit/point tokens, whitespace tokens.

    Built once per tokenizer by decoding every id (about a second for a 150k vocabulary). Ids past the
    tokenizer (model vocabularies are often padded) belong to no class.
    """

    def __init__(self, tokenizer: Any) -> None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        texts = ["" if i in special else t for i, t in enumerate(texts)]
        self.numeric = torch.tensor([t.strip() != "" and all(c in "0123456789." for c in t.strip()) for t in texts])
        self.space = torch.tensor([t != "" and t.strip() == "" for t in texts])
        self.digit = torch.tensor([any(c.isdigit() for c in t) for t in texts])
        self.decimal_point = torch.tensor(["." in t for t in texts])
        self._lists = {name: getattr(self, name).tolist() for name in ("numeric", "space", "digit", "decimal_point")}

    def to(self, device: torch.device | str) -> TokenClasses:
        for name in ("numeric", "space", "digit", "decimal_point"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def has(self, name: str, token: int) -> bool:
        table = self._lists[name]
        return 0 <= token < len(table) and table[token]

    def number_end(self, tokens: Sequence[int]) -> int | None:
        """Index of the first token ending the number (see `NumberEndCriteria`); `None` if it never ends."""
        digit_seen = False
        for i, token in enumerate(tokens):
            space = self.has("space", token)
            if (not self.has("numeric", token) and not space) or (space and digit_seen):
                return i
            digit_seen = digit_seen or self.has("digit", token)
        return None

    def confidence(self, tokens: Sequence[int], logprobs: Sequence[float]) -> float:
        """exp(sum of log-probs) of a number's tokens up to and including the first decimal digit."""
        total, seen_point = 0.0, False
        for token, logprob in zip(tokens, logprobs, strict=True):
            total += logprob
            if seen_point and self.has("digit", token):
                break
            seen_point = seen_point or self.has("decimal_point", token)
        return math.exp(total)


def _lookup(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return table[ids.clamp(0, table.shape[0] - 1)] & (ids < table.shape[0])


class NumberEndCriteria(StoppingCriteria):
    """Stops a row at the first generated token that cannot continue the number.

    Leading whitespace tokens are allowed before the first digit; after a digit, whitespace ends the
    number too. A row whose first token is not part of a number stops at once (its answer is `None`).
    """

    def __init__(self, classes: TokenClasses, prompt_length: int) -> None:
        self.classes = classes
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] == 0:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        last = generated[:, -1]
        digit_before = _lookup(self.classes.digit, generated[:, :-1]).any(dim=1)
        space = _lookup(self.classes.space, last)
        numeric = _lookup(self.classes.numeric, last)
        return (~numeric & ~space) | (space & digit_before)


def decode_numbers(processor: Any, classes: TokenClasses, generated: Generated, task: str) -> DepthPrediction:
    """Values in `task`'s unit, confidences and texts of `generated` (see the module docstring).

    A number still running at the last generated token may have been cut short by `max_new_tokens`:
    its value is `None` (better no answer than a wrong one).
    """
    values, confidence, texts = [], [], []
    for tokens, logprobs in zip(generated.tokens, generated.logprobs, strict=True):
        end = classes.number_end(tokens)
        text = processor.tokenizer.decode(tokens if end is None else tokens[: end + 1], skip_special_tokens=True)
        value = None if end is None else processor.parse_answer(text, task)
        values.append(value)
        confidence.append(math.nan if value is None else classes.confidence(tokens[:end], logprobs[:end]))
        texts.append(text)
    return DepthPrediction(values, np.array(confidence, dtype=np.float64), texts)
