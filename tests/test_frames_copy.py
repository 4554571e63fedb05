"""The spelled-out copies decisions make (`Pending.replaced`, `Frame.holding`) carry every
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
