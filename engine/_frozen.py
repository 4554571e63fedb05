"""Frozen dataclasses made at a fraction of their generated `__init__`'s cost, two ways.

`quick_init` (a class decorator) gives a frozen dataclass made on every turn (a model request
or reply, a run's context, an outcome, a step) an `__init__` that sets each slot through its
own descriptor, looked up once when the class is defined, instead of `object.__setattr__` per
field: the same signature, defaults and frozen instances, a third cheaper, every call site
unchanged.

For the few values made on the hottest paths (a pending view, a decision), a draft is cheaper
still, at the price of spelling every field out where it is made: the generated `__init__`
matches every keyword and then writes each field with `object.__setattr__` (its own
`__setattr__` refuses), which for the fifteen fields of a `PendingDecision` is six times the
cost of writing fifteen slots. `draft_of(cls)` is a class with exactly `cls`'s slots and
nothing else; a hot path fills an instance of it with plain slot writes, then makes it a `cls`
(`draft.__class__ = cls`). Python allows that `__class__` assignment only between classes of
the very same slots (and refuses it otherwise), so the result is an ordinary `cls` instance:
equal, hashed, printed and frozen like one built by its `__init__`. Whoever fills a draft
writes every field (its tests compare it with `cls(...)`); a field left out is an
`AttributeError` at first read, never a wrong value.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar


def draft_of(cls: type[Any]) -> Any:
    """A writable class with the slots of the frozen slotted dataclass `cls`."""
    slots = cls.__dict__["__slots__"]
    return type(f"{cls.__name__}Draft", (), {"__slots__": slots, "__module__": cls.__module__})


C = TypeVar("C", bound=type)


class _Factory:
    """The default of a field with a `default_factory`: the factory is called when it is given
    (shown as `<factory>` in the signature, as dataclasses shows it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def quick_init(cls: C) -> C:
    """Replace the `__init__` that `@dataclass(frozen=True, slots=True)` generated for `cls`
    (apply it above the dataclass decorator). Only for classes without `__post_init__` or
    init-only variables, whose fields are all keyword-only or none is."""
    params = dataclasses.fields(cls)
    if not params or not all(f.init for f in params) or hasattr(cls, "__post_init__"):
        raise TypeError(f"quick_init: {cls.__name__} needs every field in __init__")
    generated = cls.__dict__["__init__"]
    taken = list(inspect.signature(generated).parameters)[1:]
    if taken != [f.name for f in params]:  # an `InitVar`: a parameter that is no field
        raise TypeError(f"quick_init: {cls.__name__} takes __init__ parameters that are no fields")
    kw_only = {f.kw_only for f in params}
    if len(kw_only) != 1:
        raise TypeError(f"quick_init: {cls.__name__} mixes keyword-only and other fields")
    names: dict[str, Any] = {"_FACTORY": _FACTORY}
    signature, body = [], []
    for f in params:
        names[f"_set_{f.name}"] = cls.__dict__[f.name].__set__  # the slot's own descriptor
        if f.default is not dataclasses.MISSING:
            names[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            names[f"_factory_{f.name}"] = f.default_factory
            signature.append(f"{f.name}=_FACTORY")
            body.append(f"    if {f.name} is _FACTORY: {f.name} = _factory_{f.name}()")
        else:
            signature.append(f.name)
        body.append(f"    _set_{f.name}(self, {f.name})")
    star = "*, " if kw_only == {True} else ""
    source = f"def __init__(self, {star}{', '.join(signature)}):\n" + "\n".join(body)
    exec(source, names)  # as dataclasses itself makes __init__
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = generated.__doc__
    init.__annotations__ = dict(generated.__annotations__)
    setattr(cls, "__init__", init)  # noqa: B010  (mypy refuses to assign __init__)
    return cls
