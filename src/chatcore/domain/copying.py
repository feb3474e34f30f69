"""Shallow copies of the domain's slotted dataclasses, without ``dataclasses.replace``.

``replace`` goes through ``fields()`` and ``__init__`` on every call; the message route
copies a few messages and a conversation per request (the history cache hands out
copies and keeps its own), where that costs more than the copy itself. A copier made
once per class sets every field of a new instance directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

__all__ = ["shallow_copier"]

T = TypeVar("T")


def shallow_copier(cls: type[T]) -> Callable[[T], T]:
    """A function returning a shallow copy of an instance of ``cls``: every field
    (``dataclasses.fields``) the same object as the original's.

    Raises:
        TypeError: ``cls`` is not a slotted dataclass, or has a ``__post_init__``,
            which a copy made this way would not run.
    """
    if not dataclasses.is_dataclass(cls) or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__")
    names = tuple(f.name for f in dataclasses.fields(cls))
    new = object.__new__
    assign = object.__setattr__  # frozen dataclasses too

    def copy(instance: T, /) -> T:
        duplicate = new(cls)
        for name in names:
            assign(duplicate, name, getattr(instance, name))
        return duplicate

    copy.__qualname__ = copy.__name__ = f"copy_{cls.__name__}"
    return copy
