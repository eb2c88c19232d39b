"""Closed sets of choices: each is one `typing.Literal` alias in the module that owns the concept (`FocalMode` in
`geometry`, `MarkerShape` in `prompting.markers`, ...); its tuple is `typing.get_args` of it, and this module
checks values against it, so every error lists the valid values from that one source.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, get_args, get_origin


def check_choice(name: str, value: Any, choices: Any) -> Any:
    """`value` when it is one of the `Literal` `choices`, else a `ValueError` naming `name`, the value and the choices.

    >>> check_choice("focal_mode", "fx", Literal["xy", "fx"])
    'fx'
    >>> check_choice("focal_mode", "yy", Literal["xy", "fx"])
    Traceback (most recent call last):
    ...
    ValueError: `focal_mode` must be one of xy, fx, got 'yy'.
    """
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(map(str, allowed))}, got {value!r}.")
    return value


def literal_of(hint: Any) -> tuple[Any, bool] | None:
    """The `Literal` inside a type hint and whether `None` is allowed too (`Literal[...] | None`), or `None` when
    the hint is no such type.

    >>> literal_of(Literal["a", "b"] | None)
    (typing.Literal['a', 'b'], True)
    >>> literal_of(list[str]) is None
    True
    """
    if get_origin(hint) is Literal:
        return hint, False
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = get_args(hint)
        literals = [arg for arg in args if get_origin(arg) is Literal]
        if len(literals) == 1 and len(args) == 2 and type(None) in args:
            return literals[0], True
    return None


def check_dataclass_choices(obj: Any) -> None:
    """Check every field of dataclass `obj` typed with a `Literal` (or `Literal | None`) with `check_choice`.

    Command-line flags are checked by the argument parser, which reads the same hints; this also covers the values
    of a `--config` YAML file and of code that builds the dataclass directly.
    """
    hints = typing.get_type_hints(type(obj))
    for field in dataclasses.fields(obj):
        found = literal_of(hints.get(field.name))
        value = getattr(obj, field.name)
        if found is not None and not (found[1] and value is None):
            check_choice(field.name, value, found[0])
