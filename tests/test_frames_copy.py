"""The spelled-out copies (`Pending.replaced`, `Frame.holding`, `Frame.copy`) carry every
field, so a field added later is not lost by a decision."""

from __future__ import annotations

import dataclasses

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
