"""Frozen dataclasses filled in at the cost of a plain class, for the few made on hot paths.

A frozen slotted dataclass's `__init__` writes each field with `object.__setattr__` (its own
`__setattr__` refuses), after matching every keyword: for the fifteen fields of a
`PendingDecision` that is six times the cost of writing fifteen slots. `draft_of(cls)` is a
class with exactly `cls`'s slots and nothing else; a hot path fills an instance of it with
plain slot writes, then makes it a `cls` (`draft.__class__ = cls`). Python allows that `__class__`
assignment only between classes of the very same slots (and refuses it otherwise), so the
result is an ordinary `cls` instance: equal, hashed, printed and frozen like one built by its
`__init__`. Whoever fills a draft writes every field (its tests compare it with `cls(...)`);
a field left out is an `AttributeError` at first read, never a wrong value.
"""

from __future__ import annotations

from typing import Any


def draft_of(cls: type[Any]) -> Any:
    """A writable class with the slots of the frozen slotted dataclass `cls`."""
    slots = cls.__dict__["__slots__"]
    return type(f"{cls.__name__}Draft", (), {"__slots__": slots, "__module__": cls.__module__})
