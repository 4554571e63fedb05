"""A stored run's steps, described: what `callcc runs history` lists and `fork --at` names.

A run's steps are its store events in append order, numbered from 1: each is one checkpoint of
one frame (see `engine.journal`). A step says which frame it concerns (the agent invocation,
`hr_agent/account_agent@call_hr_1`, as pending paths begin), that frame's model turns after
it, and what happened in it, read off the change it made: a user message, the model's reply
and the calls it asked for, calls marked running (about to start), results recorded, entries
the run now waits on (a suspension), decisions recorded on them. One checkpoint often holds
several of these (a reply, its calls marked running and one gated for approval).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from engine.journal import apply_event
from engine.store.base import Event

HappeningKind = Literal[
    "user", "reply", "answer", "incomplete", "running", "result", "waits", "decided"
]

TEXT_WIDTH = 60
"""How much of a message or result the text listing shows (the JSON keeps it whole)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Happening:
    """One thing a step recorded."""

    kind: HappeningKind
    """`user` (a user message), `reply` (the model asked for `calls`), `answer` (the model's
    final reply), `incomplete` (a reply cut off: `detail` is its finish reason), `running` (a
    call marked running: it starts now), `result` (a call's result recorded: `detail` is the
    ledger's status), `waits` (an entry the frame now waits on: `detail` is its reason),
    `decided` (a decision recorded on an entry: `detail` is its kind)."""
    text: str | None = None
    """The message's or the result's text (for `waits`: the prompt or the detail)."""
    call_id: str | None = None
    """The call (or entry) id."""
    tool: str | None = None
    """The call's tool."""
    detail: str | None = None
    """The reason, status, decision or finish reason (see `kind`)."""
    calls: tuple[tuple[str, str], ...] = ()
    """For `reply`: the calls asked for, `(id, tool)`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One stored step of a run."""

    step: int
    """Its number, from 1 (what `fork --at` takes)."""
    frame: str
    """The store path of its frame (`""` the root, `/call_hr_1` a sub-agent)."""
    agent: str
    """The agent invocation (`hr_agent/account_agent@call_hr_1`)."""
    turn: int
    """The frame's model turns after the step."""
    happened: tuple[Happening, ...]
    """What the step recorded, in the order it happened."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (`--format json`)."""
        data = asdict(self)
        data["happened"] = [
            {
                k: (list(map(list, v)) if k == "calls" else v)
                for k, v in h.items()
                if v not in (None, ())
            }
            for h in data["happened"]
        ]
        return data

    def summary(self) -> str:
        """What happened, on one line."""
        return " · ".join(_said(h) for h in self.happened) or "checkpoint (nothing new)"


def steps(events: list[Event]) -> Iterator[Step]:
    """Each of `events` (a run's, in append order) as a `Step`."""
    frames: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    tools: dict[tuple[str, str], str] = {}
    for number, event in enumerate(events, start=1):
        before = _marks(frames.get(event.frame))
        frames = apply_event(frames, event)
        slot = frames[event.frame]
        state = slot["state"] or {}
        agent = _invocation(event.frame, str(state.get("agent", "?")), names)
        new = event.data.get("messages", []) if event.kind == "messages" else []
        said = _said_in(new, event.frame, tools, before[1])
        happened = [*said, *_changes(before, state, event.frame, tools)]
        turn = int(state.get("counters", {}).get("turns", 0))
        yield Step(step=number, frame=event.frame, agent=agent, turn=turn, happened=tuple(happened))


def _invocation(path: str, agent: str, names: dict[str, str]) -> str:
    """The frame's invocation path, its parent's first (a sub-agent's parent is checkpointed
    before it)."""
    known = names.get(path)
    if known is not None:
        return known
    parent, _, call_id = path.rpartition("/")
    name = agent if not path else f"{names.get(parent, '?')}/{agent}@{call_id}"
    names[path] = name
    return name


def _marks(slot: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """What a frame's ledger, results and pending entries were before a step (copies: the
    next event changes the state in place)."""
    state = (slot or {}).get("state") or {}
    pending = {p["id"]: p.get("decision") for p in state.get("pending", [])}
    return dict(state.get("ledger", {})), dict(state.get("results", {})), pending


def _said_in(
    messages: list[dict[str, Any]],
    frame: str,
    tools: dict[tuple[str, str], str],
    results: dict[str, Any],
) -> Iterator[Happening]:
    """What new messages say; a tool message whose result a step before listed is left out
    (the calls of a turn that ran side by side keep each result as it comes)."""
    for message in messages:
        role = message.get("role")
        text = message.get("content")
        text = text if isinstance(text, str) else None
        if role == "user":
            yield Happening(kind="user", text=text)
        elif role == "assistant" and message.get("tool_calls"):
            calls = tuple((c["id"], c["function"]["name"]) for c in message["tool_calls"])
            tools.update({(frame, call_id): name for call_id, name in calls})
            yield Happening(kind="reply", text=text or None, calls=calls)
        elif role == "assistant" and "finish_reason" in message:
            yield Happening(kind="incomplete", text=text, detail=str(message["finish_reason"]))
        elif role == "assistant":
            yield Happening(kind="answer", text=text)
        elif role == "tool" and message.get("tool_call_id") not in results:
            call_id = str(message.get("tool_call_id"))
            tool = tools.get((frame, call_id))
            yield Happening(kind="result", text=text, call_id=call_id, tool=tool, detail="done")


def _changes(
    before: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    state: dict[str, Any],
    frame: str,
    tools: dict[tuple[str, str], str],
) -> Iterator[Happening]:
    ledger, results, pending = before
    now = state.get("ledger", {})
    for call_id, status in now.items():
        if status == "running" and ledger.get(call_id) != "running":
            yield Happening(kind="running", call_id=call_id, tool=tools.get((frame, call_id)))
    for call_id, text in state.get("results", {}).items():
        if results.get(call_id) != text:
            status = str(now.get(call_id, "done"))
            tool = tools.get((frame, call_id))
            yield Happening(kind="result", text=text, call_id=call_id, tool=tool, detail=status)
    for entry in state.get("pending", []):
        entry_id = entry["id"]
        decision = entry.get("decision")
        if entry_id not in pending:
            said = entry.get("prompt") or entry.get("detail")
            yield Happening(
                kind="waits",
                call_id=entry_id,
                tool=entry.get("tool"),
                detail=entry["reason"],
                text=said,
            )
        if decision and decision != pending.get(entry_id):
            yield Happening(
                kind="decided",
                call_id=entry_id,
                tool=entry.get("tool"),
                detail=decision.get("kind"),
            )


def _said(h: Happening) -> str:
    """One happening as the text listing shows it."""
    who = f"{h.tool} ({h.call_id})" if h.tool else str(h.call_id)
    if h.kind == "user":
        return f"user: {_cut(h.text)}"
    if h.kind == "reply":
        asked = ", ".join(f"{tool} ({call_id})" for call_id, tool in h.calls)
        return f"model reply: calls {asked}"
    if h.kind == "answer":
        return f"model answer: {_cut(h.text)}"
    if h.kind == "incomplete":
        return f"model reply cut off ({h.detail})"
    if h.kind == "running":
        return f"runs {who}"
    if h.kind == "result":
        status = "" if h.detail == "done" else f" [{h.detail}]"
        return f"result of {who}{status}: {_cut(h.text)}"
    if h.kind == "waits" and h.detail == "subagent":
        return f"waits on sub-agent {who}"
    if h.kind == "waits":
        return f"waits: {h.detail} of {who}" if h.tool else f"waits: {h.detail} ({h.call_id})"
    return f"decided: {h.detail} {who}"


def _cut(text: str | None) -> str:
    one = " ".join((text or "").split())
    return one if len(one) <= TEXT_WIDTH else one[: TEXT_WIDTH - 1] + "…"
