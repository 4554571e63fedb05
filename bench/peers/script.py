"""The one script every system plays: which turn a model gives, as a function of the request.

Standard library only: it is imported inside every peer's environment and by the loopback
server. A model's answer depends only on the agent asking and how many tool results it has
seen since the user spoke, so the same fake model serves every iteration without state, as
callcc's scripted model does (`request.attempt`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TURNS = 50
"""Model turns that call a tool in `long_loop`."""
PROMPT = "pay bob 5"
TRANSFER_ARGS: dict[str, Any] = {"to": "bob", "amount": 5}
TRANSFER_RESULT = "sent 5 to bob"
FINAL = "paid"
LOOP_FINAL = "done"
NESTED = ("root", "child", "grandchild")
"""Agents of `nested_approval`: each calls the next as a tool; the last calls `transfer`."""


@dataclass(frozen=True)
class Turn:
    """One model answer: a tool call or a final text."""

    text: str | None = None
    """The final answer, when the turn calls no tool."""
    tool: str | None = None
    """Name of the tool called."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """Arguments of the call (for a sub-agent: `{"request": ...}`, adapted per system)."""
    call_id: str = ""
    """The call's id."""


def turn(agent: str, seen: int) -> Turn:
    """What `agent` answers after `seen` tool results since the user's message."""
    if agent == "payer":
        return (
            Turn(tool="transfer", arguments=TRANSFER_ARGS, call_id="c1")
            if seen == 0
            else (Turn(text=FINAL))
        )
    if agent == "looper":
        if seen < TURNS:
            return Turn(tool="echo", arguments={"text": f"t{seen}"}, call_id=f"c{seen}")
        return Turn(text=LOOP_FINAL)
    if agent in NESTED:
        depth = NESTED.index(agent)
        if seen:
            return Turn(text=f"{agent} done")
        if depth + 1 < len(NESTED):
            callee = NESTED[depth + 1]
            return Turn(tool=callee, arguments={"request": PROMPT}, call_id=f"c_{agent}")
        return Turn(tool="transfer", arguments=TRANSFER_ARGS, call_id=f"c_{agent}")
    raise KeyError(f"no script for agent {agent!r}; scripted: payer, looper, {', '.join(NESTED)}")


def transfer(to: str, amount: int) -> str:
    """Pretend to move money (the same body as bench/bench_tools.py)."""
    return f"sent {amount} to {to}"


def echo(text: str) -> str:
    """Return the text."""
    return text
