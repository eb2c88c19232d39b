"""One random generator per key: `rng(seed, index, ...)`, the same stream in every run, process and worker.

Rows, evaluation samples and demo scenes are pure functions of `(seed, index)`; their generators are
`np.random.default_rng(SeedSequence(key))`, never Python's `hash()` (salted per process) or global state.
"""

from __future__ import annotations

import numpy as np


def key_int(part: int | str) -> int:
    """A key part as an entropy integer: ints as they are, strings as the sum of their code points (stable
    across processes; e.g. a task name, as the evaluation sets have always been keyed).

    >>> key_int(7), key_int("distance")
    (7, 843)
    """
    if isinstance(part, str):
        return sum(map(ord, part))
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool):
        return int(part)
    raise TypeError(f"`key` parts must be ints or strings, got {type(part).__name__} {part!r}.")


def rng(*key: int | str) -> np.random.Generator:
    """The numpy generator of `key` (seed, index, ...): `default_rng(SeedSequence([...]))`.

    >>> int(rng(0, 3).integers(1000)) == int(np.random.default_rng(np.random.SeedSequence([0, 3])).integers(1000))
    True
    >>> float(rng(0, 5, "distance").random()) == float(rng(0, 5, 843).random())
    True
    """
    return np.random.default_rng(np.random.SeedSequence([key_int(part) for part in key]))
