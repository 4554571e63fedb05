"""A cheaper `__init__` for the frozen, slotted dataclasses made on every turn.

`@dataclass(frozen=True)` writes each field with `object.__setattr__(self, name, value)`,
which looks `__setattr__` up on `object` and the field's slot up on the class again for every
field of every instance. A model request, a model reply, an outcome or a run's context is
made on every turn, so `quick_init` gives such a class an `__init__` that sets each slot
through its own descriptor, looked up once, when the class is defined: the same signature,
the same defaults and default factories, the same frozen instances, a third cheaper to make.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

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
    generated = cls.__dict__["__init__"]
    init.__doc__ = generated.__doc__
    init.__annotations__ = dict(generated.__annotations__)
    setattr(cls, "__init__", init)  # noqa: B010  (mypy refuses to assign __init__)
    return cls
