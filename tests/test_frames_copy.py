"""The spelled-out copies (`Pending.replaced`, `Frame.holding`, `Frame.copy`) and the drafted
frozen values (`engine._frozen`) carry every field, so a field added later is not lost by a
decision or a resume."""

from __future__ import annotations

import dataclasses

import pytest

from engine.continuation import PendingDecision, _view
from engine.decisions import Decide, decision_for
from engine.frames import Approve, Frame, Pending


def _distinct(cls: type) -> dict[str, object]:
    """A distinct object for every field of `cls` (identity tells each copy apart)."""
    return {f.name: object() for f in dataclasses.fields(cls)}


def test_a_replaced_entry_shares_every_field_but_decision_and_child() -> None:
    values = _distinct(Pending)
    entry = Pending(**values)  # type: ignore[arg-type]
    decision, child = Approve(fingerprint="f"), Frame(agent="a", messages=[])
    copy = entry.replaced(decision=decision, child=child)
    for name, value in values.items():
        expected = {"decision": decision, "child": child}.get(name, value)
        assert getattr(copy, name) is expected, name


def test_a_frame_holding_other_entries_shares_every_other_field() -> None:
    values = _distinct(Frame)
    frame = Frame(**values)  # type: ignore[arg-type]
    pending: list[Pending] = []
    copy = frame.holding(pending)
    for name, value in values.items():
        assert getattr(copy, name) is (pending if name == "pending" else value), name


COPIED = {"messages", "ledger", "results", "approved", "pending"}
"""The containers a frame's copy owns anew (`decoded` starts empty); the rest is shared."""


def test_a_copied_frame_carries_every_field_owning_its_containers() -> None:
    values: dict[str, object] = _distinct(Frame)
    entry = Pending(**_distinct(Pending))  # type: ignore[arg-type]
    entry.child = None
    values.update(
        messages=[{"role": "user", "content": "hi"}],
        ledger={"c": "pending"},
        results={"c": "r"},
        approved={"c": "f"},
        pending=[entry],
        decoded={"c": {}},
    )
    frame = Frame(**values)  # type: ignore[arg-type]
    copy = frame.copy()
    for name, value in values.items():
        if name == "decoded":
            assert copy.decoded == {}, name
        elif name in COPIED:
            assert getattr(copy, name) == value and getattr(copy, name) is not value, name
        else:
            assert getattr(copy, name) is value, name
    [copied] = copy.pending
    for field in dataclasses.fields(Pending):
        assert getattr(copied, field.name) is getattr(entry, field.name), field.name


def test_drafted_frozen_values_equal_the_ones_their_init_makes() -> None:
    """`engine._frozen` drafts (a pending view, `Decide`, `Approve`) write every field: each
    equals, hashes and prints like the value its class's own `__init__` makes, and stays
    frozen."""
    values = _distinct(Pending)
    entry = Pending(**values)  # type: ignore[arg-type]
    entry.decision = Approve(fingerprint="f")
    frame = Frame(agent="a", messages=[])
    view = _view("a/x", frame, entry, {"k": 1})
    expected = {f.name: getattr(entry, f.name, None) for f in dataclasses.fields(PendingDecision)}
    expected.update(path="a/x", agent="a", arguments={"k": 1}, decision="approve")
    assert type(view) is PendingDecision
    assert view == PendingDecision(**expected)  # type: ignore[arg-type]
    assert repr(view) == repr(PendingDecision(**expected))  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.id = "y"  # type: ignore[misc]

    made = [
        Decide.approve("a", scope="run", where="true"),
        Decide.edit("a", {"k": 1}),
        Decide.reject("a", "no", scope="run"),
        Decide.answer("a", [1]),
        Decide.extend("a", 3),
        Decide.stop("a"),
        Decide.resume("a"),
    ]
    by_init = [
        Decide(id="a", kind="approve", scope="run", where="true"),
        Decide(id="a", kind="edit", arguments={"k": 1}),
        Decide(id="a", kind="reject", reason="no", scope="run"),
        Decide(id="a", kind="answer", result=[1]),
        Decide(id="a", kind="extend", turns=3),
        Decide(id="a", kind="stop"),
        Decide(id="a", kind="resume"),
    ]
    assert made == by_init and [hash(repr(d)) for d in made] == [hash(repr(d)) for d in by_init]
    assert all(type(d) is Decide for d in made)
    approve = decision_for(Decide.approve("a", scope="run", where="x"))("fp")
    assert type(approve) is Approve
    assert approve == Approve(fingerprint="fp", scope="run", where="x")
    assert hash(approve) == hash(Approve(fingerprint="fp", scope="run", where="x"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        approve.scope = "call"  # type: ignore[misc]


def test_an_entry_for_a_call_sets_every_field_as_the_constructor_would() -> None:
    entry = Pending.for_call(id="c1", reason="approval", tool="t", arguments={"a": 1})
    made = Pending(
        id="c1",
        reason="approval",
        tool="t",
        arguments={"a": 1},
        decisions=entry.decisions,
        fingerprint=entry.fingerprint,
    )
    for field in dataclasses.fields(Pending):
        if field.name != "seal":
            assert getattr(entry, field.name) == getattr(made, field.name), field.name
    assert entry.seal is not None and entry.fingerprint_holds()


def test_a_new_frame_is_the_constructors_with_containers_of_its_own() -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "hi"}]
    made, new = Frame(agent="a", messages=messages), Frame.new("a", messages)
    for field in dataclasses.fields(Frame):
        value = getattr(new, field.name)
        assert value == getattr(made, field.name), field.name
        if isinstance(value, dict | list) and field.name != "messages":
            assert value is not Frame.new("a", messages).__getattribute__(field.name)
    assert new.messages is messages


def test_a_new_entry_is_the_constructors() -> None:
    args = {"id": "c", "reason": "approval", "tool": "t", "arguments": {"a": 1}}
    rest = {"decisions": ("approve",), "fingerprint": "f", "prompt": "p", "detail": "d"}
    made = Pending(**args, **rest)  # type: ignore[arg-type]
    new = Pending.new(*args.values(), *rest.values())  # type: ignore[arg-type]
    for field in dataclasses.fields(Pending):
        assert getattr(new, field.name) == getattr(made, field.name), field.name


def test_a_decided_continuation_carries_every_slot_its_constructor_would_set() -> None:
    from engine import Continuation

    entry = Pending.for_call(id="c1", reason="approval", tool="t", arguments={"a": 1})
    root = Frame.new("agent", [{"role": "user", "content": "hi"}])
    root.messages.append(
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "function": {"name": "t", "arguments": '{"a": 1}'}}],
        }
    )
    root.ledger["c1"] = "pending"
    root.pending.append(entry)
    made = Continuation(
        run_id="r", spec_name="s", spec_digest="d", root=root, spec_path="p", trace={"x": "y"}
    )
    decided = made.approve("c1")
    for slot in Continuation.__slots__:
        if slot not in ("_tree", "_index"):  # the decided stack, and the index it shares
            assert getattr(decided, slot) == getattr(made, slot), slot
    assert decided.trace is not made.trace  # its own copy, as the constructor makes
    [view] = decided.pending()
    assert view.decision == "approve"
