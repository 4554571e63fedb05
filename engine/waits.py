"""Which decisions each wait allows: the one table, read by whoever writes or checks an entry.

A pending entry waits either on a tool call (`CALL_WAITS`) or on its frame as a whole, a wait
no tool call caused (`FRAME_WAITS`: a limit, a pause between turns, a model error). The same
reason can allow different decisions in the two places: an `error` of a tool call may be
retried (`approve`), answered or rejected, while a model `error` is resumed or stopped.

The order of each tuple is part of every entry's fingerprint, so it never changes; a new wait
reason or tool kind adds a row here and nowhere else. `approval` is the one reason whose
decisions the spec chooses (a tool's `approval.decisions`, a subset of `APPROVAL_DECISIONS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, TypeAlias

Reason: TypeAlias = Literal["approval", "subagent", "external", "turn_limit", "pause", "error"]
"""Why an entry waits."""
Kind: TypeAlias = Literal["approve", "edit", "reject", "answer", "extend", "stop", "resume"]
Decisions: TypeAlias = tuple[Kind, ...]
"""The decision kinds an entry allows, in the order its fingerprint holds them."""

APPROVAL_DECISIONS: Decisions = ("approve", "edit", "reject")
"""What a tool's `approval.decisions` may choose from."""

CALL_WAITS: Mapping[Reason, Decisions] = MappingProxyType(
    {
        "approval": APPROVAL_DECISIONS,  # at most: the tool's `approval.decisions` say which
        "subagent": (),  # none here: decide inside the sub-agent
        "external": ("answer", "reject"),  # kind `external`, or a tool that raised `Deferred`
        "pause": ("resume", "reject"),  # `suspend.before_tools`: the call runs, or never does
        "error": ("approve", "answer", "reject"),  # a python tool failed with `on_error:
        # suspend` (or its process died while it ran): run it again, supply its result, or skip
    }
)
"""Decisions a wait on a tool call allows, by reason."""
FRAME_WAITS: Mapping[Reason, Decisions] = MappingProxyType(
    {
        "turn_limit": ("extend", "stop"),  # a budget is used up: grant more, or end the agent
        "pause": ("resume", "stop"),  # `suspend.every_turns` / `after_seconds`
        "error": ("resume", "stop"),  # the model call failed: ask it again, or end the agent
    }
)
"""Decisions a wait of a whole frame (no tool call caused it) allows, by reason."""


def allowed(reason: Reason, *, call: bool) -> Decisions:
    """The decisions a wait of `reason` allows at most, on a tool call (`call=True`) or on a
    frame; `()` for a reason that cannot occur there."""
    return (CALL_WAITS if call else FRAME_WAITS).get(reason, ())
