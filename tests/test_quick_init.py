"""`engine._frozen.quick_init` gives frozen dataclasses an `__init__` that makes the very
instances the dataclass's own would, from the same arguments, and refuses the same mistakes."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine._frozen import quick_init
from engine.frames import Approve, Limit
from engine.models.base import ModelRequest
from engine.runtime import Finished
from engine.steps import Finish
from engine.tooling import RunContext


def _pair(**options: Any) -> tuple[type, type]:
    """The same class twice: with the dataclass's `__init__`, and with `quick_init`'s."""

    def make() -> type:
        @dataclass(frozen=True, slots=True, **options)
        class Thing:
            name: str
            count: int = 3
            tags: list[str] = field(default_factory=list)

        return Thing

    return make(), quick_init(make())


@pytest.mark.parametrize("kw_only", [False, True])
def test_the_quick_init_makes_what_the_dataclass_init_makes(kw_only: bool) -> None:
    plain, quick = _pair(kw_only=kw_only)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {"name": "a"}),
        ((), {"name": "a", "count": 7}),
        ((), {"name": "a", "tags": ["x"]}),
    ]
    if not kw_only:
        calls += [(("a",), {}), (("a", 7, ["y"]), {})]
    for args, kwargs in calls:
        assert dataclasses.asdict(quick(*args, **kwargs)) == dataclasses.asdict(
            plain(*args, **kwargs)
        )
    first, second = quick(name="a"), quick(name="b")
    assert first.tags == [] and first.tags is not second.tags  # a fresh default each time
    assert str(inspect.signature(quick)) == str(inspect.signature(plain))


@pytest.mark.parametrize("kw_only", [False, True])
def test_the_quick_init_refuses_what_the_dataclass_init_refuses(kw_only: bool) -> None:
    plain, quick = _pair(kw_only=kw_only)
    for cls in (plain, quick):
        with pytest.raises(TypeError):
            cls()  # the required field is missing
        with pytest.raises(TypeError):
            cls(name="a", colour="red")  # no such field
    if kw_only:
        with pytest.raises(TypeError):
            quick("a")  # keyword-only, as the dataclass's
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick(name="a").name = "b"  # still frozen


def test_a_class_quick_init_cannot_serve_is_refused_when_it_is_defined() -> None:
    with pytest.raises(TypeError, match="needs every field"):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class Later:
            name: str

            def __post_init__(self) -> None:
                pass


def test_the_engine_classes_made_every_turn_use_it_and_still_build_alike() -> None:
    for cls in (ModelRequest, RunContext, Finished, Finish, Approve, Limit):
        assert cls.__init__.__module__ == cls.__module__
        names = cls.__init__.__code__.co_names
        assert any(n.startswith("_set_") for n in names), cls  # slots set by descriptor
    request = ModelRequest(agent="a", instructions="i", messages=[], tools=[], attempt=0)
    assert (request.path, request.tool_choice) == ("", None)
    assert Finish("done") == Finish(output="done", kind="finish", stopped=False)


def test_a_class_with_an_init_only_variable_is_refused_too() -> None:
    with pytest.raises(TypeError, match="no fields"):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class Later:
            name: str
            hint: dataclasses.InitVar[int] = 0
