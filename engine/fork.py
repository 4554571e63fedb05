"""Forks: a new run whose history is a stored run's up to one of its steps, going on from there.

A run's steps are its store events, numbered from 1 (`engine.history` describes them). A fork
at step N copies the first N events into a new run, adds one event for each frame the fork
changes, and drives the new run on from there: the model calls after step N are made afresh.
The run forked from is only read, never changed. What becomes of the calls of step N, so that
nothing runs twice:

- A call with a result by step N keeps it: its result is in the copied events.
- A call the original had **started** by step N (marked `running`) is never started again. If
  the original recorded its result after step N, the fork takes that result; if it never did
  (its process died, or it is still running), the fork does what `recover` does: an
  `idempotent` tool runs again, any other waits for a person (reason `error`: approve to run
  it, answer to supply its result, reject to skip it).
- A call **waiting** at step N (approval, an external result, a pause) waits in the fork too:
  the fork suspends on it with its own nonce, so the two runs are decided apart. A decision the
  original had recorded by step N is part of the history: if the original ran the call after
  it, the fork takes that result (with the arguments it ran with, an edit's); if it started
  the call and recorded no result, the call is one left running (the rule above); if it never
  started it, the decision is applied in the fork. Fork at the step before it (the
  suspension) to decide again.
- A sub-agent under way carries on from its own checkpoint at step N, by these same rules; one
  without a checkpoint yet starts afresh.

Grants never cross runs: the fork starts with none, whatever run-scoped grants
(`engine.grants`) the original held at step N; a decision of scope `run` the original had
recorded by step N and not yet turned into a grant answers its own call in the fork, and
grants nothing.

`prompt` replaces the text of the root frame's last user message as of step N (nothing else
changes: tool results before the step stay); at a step where the run had answered already it
is refused, since no model would read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.continuation import Continuation
from engine.durable import keep_spec
from engine.errors import ForkError, SpecChangedError
from engine.frames import Frame
from engine.journal import Journal, rebuild, replay
from engine.spec.model import Spec
from engine.store.base import AsyncRunStore, AuditEntry, Event, Lease, RunRecord


@dataclass(frozen=True, kw_only=True, slots=True)
class ForkPlan:
    """What a fork starts with, worked out from the events alone (nothing written yet)."""

    record: RunRecord
    """The fork's row: running, at version 0, naming the run and step it comes from."""
    events: list[Event]
    """Its first events: the source's first `step`, then the fork's own changes."""
    reused: tuple[str, ...]
    """`frame path/call id` of each call started by the step whose result the fork takes
    from what the source recorded after it."""


def plan(
    source: RunRecord,
    events: Sequence[Event],
    step: int,
    *,
    spec: Spec,
    run_id: str,
    prompt: str | None = None,
    allow_spec_change: bool = False,
) -> ForkPlan:
    """The fork of `source` (whose events are `events`) at `step`, as run `run_id` of `spec`."""
    check_step(source.run_id, step, len(events))
    if spec.digest != source.spec_digest and not allow_spec_change:
        raise SpecChangedError(
            f"the spec differs from the one run {source.run_id!r} ran with "
            f"({source.spec_digest[:19]} then, {spec.digest[:19]} now)",
            suggestion="fork with the spec it ran with (leave out --spec), or pass "
            "--allow-spec-change (allow_spec_change=True) to run the fork under this one",
        )
    if spec.name != source.spec_name:
        raise SpecChangedError(
            f"run {source.run_id!r} belongs to spec {source.spec_name!r}, not {spec.name!r}"
        )
    frames = replay(list(events[:step]))
    later: dict[str, dict[str, Any]] | None = None
    starts: dict[str, int | None] = {}  # changed frames: where their messages changed, if they did
    reused: list[str] = []
    for path in _live(frames, spec):
        slot = frames[path]
        for call_id in _started(slot, spec):
            if later is None:
                later = replay(list(events))
            found = _result(later.get(path), call_id)
            state = slot["state"]
            if found is None and _started_later(later.get(path), call_id):
                # decided by the step, started after it, never finished (its process died, or
                # it still runs): a call left running, which `rebuild` gives recover's rule
                state["ledger"][call_id] = "running"
                state["pending"] = [p for p in state.get("pending", []) if p["id"] != call_id]
                changed = _ran_as(slot, later.get(path), call_id)
                start = starts.get(path)
                starts[path] = changed if start is None else min(start, changed or start)
            if found is not None:
                state.setdefault("results", {})[call_id] = found[0]
                state["ledger"][call_id] = found[1]
                # a decided entry's call ran after the step: its result is taken, not re-run
                if state.get("pending"):
                    state["pending"] = [p for p in state["pending"] if p["id"] != call_id]
                changed = _ran_as(slot, later.get(path), call_id)
                start = starts.get(path)
                if changed is not None:  # edited, or the tool asked about other arguments
                    start = changed if start is None else min(start, changed)
                starts[path] = start
                reused.append(f"{path}/{call_id}")
    root_state = frames[""]["state"] if "" in frames else None
    if root_state is not None and root_state.pop("grants", None) is not None:
        starts.setdefault("", None)  # grants never cross runs: the fork's root has none
    for path in _live(frames, spec):
        if _unscoped(frames[path]["state"]):  # nor do decisions that would make one
            starts.setdefault(path, None)
    if prompt is not None:
        starts[""] = _reprompt(frames[""], prompt, source.run_id, step)
    extra = [_event(path, frames[path], start) for path, start in starts.items()]
    now = time.time()
    record = RunRecord(
        run_id=run_id,
        spec_name=spec.name,
        spec_digest=spec.digest,
        spec_path=str(Path(spec.path).resolve()) if spec.path else source.spec_path,
        agent=source.agent,
        status="running",
        version=0,
        nonce=None,
        output=None,
        created_at=now,
        updated_at=now,
        forked_from=source.run_id,
        forked_at=step,
    )
    return ForkPlan(record=record, events=[*events[:step], *extra], reused=tuple(reused))


async def start(
    store: AsyncRunStore,
    spec: Spec,
    planned: ForkPlan,
    *,
    key: bytes | None,
    check: Callable[[Continuation], None],
    lease: Lease,
    user: str,
) -> tuple[Frame, Journal]:
    """Write the planned fork (its row, its first events and its lease in one transaction,
    then its `forked` audit entry) once `check` accepted the stack it rebuilds to, and return
    that stack with the journal that goes on writing it. Calls the source left running
    without a result get `recover`'s rule here (`rebuild` with the spec)."""
    record = planned.record
    continuation = rebuild(record, planned.events, key=key, spec=spec)
    check(continuation)  # refused before anything is written
    await keep_spec(store, spec)
    version = await store.start_run(record, planned.events, lease=lease)
    await store.add_audit([audit_entry(record, user=user, at=time.time())])
    root = continuation.root
    journal = Journal(
        store=store,
        run_id=record.run_id,
        version=version,
        lease=lease,
        user=user,
        unsnapped=len(planned.events),
    )
    journal.prime(root)
    return root, journal


def check_step(run_id: str, step: int, steps: int) -> None:
    """Refuse a step run `run_id` (with `steps` stored steps) does not have."""
    if not 1 <= step <= steps:
        have = f"steps 1 to {steps}" if steps > 1 else "only step 1" if steps else "no steps"
        raise ForkError(
            f"run {run_id!r} has {have}; step {step} is not one of them "
            f"(`callcc runs history {run_id}` lists them)",
            run_id=run_id,
            step=step,
            steps=steps,
        )


def audit_entry(record: RunRecord, *, user: str, at: float) -> AuditEntry:
    """The fork's first audit entry: `forked`, naming the run and step it comes from."""
    return AuditEntry(
        run_id=record.run_id,
        at=at,
        user=user,
        action="forked",
        detail={"forked_from": record.forked_from, "forked_at": record.forked_at},
    )


def _live(frames: dict[str, dict[str, Any]], spec: Spec) -> list[str]:
    """The paths of the frames on the stack at the step, root first: a sub-agent is on it
    while its caller waits on it or runs it."""
    live: list[str] = []
    todo = [""]
    while todo:
        path = todo.pop()
        slot = frames.get(path)
        if slot is None or slot["state"] is None:
            continue
        live.append(path)
        state = slot["state"]
        ledger = state.get("ledger", {})
        children = [p["id"] for p in state.get("pending", []) if p.get("child")]
        children += [
            c["id"]
            for c in _calls(slot)
            if ledger.get(c["id"]) == "running" and _is_agent(spec, c["function"]["name"])
        ]
        todo.extend(f"{path}/{call_id}" for call_id in children)
    return live


def _calls(slot: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls of the frame's current turn (none once the turn closed)."""
    messages = slot["messages"]
    if not messages or messages[-1].get("role") != "assistant":
        return []
    calls: list[dict[str, Any]] = messages[-1].get("tool_calls") or []
    return calls


def _is_agent(spec: Spec, name: str) -> bool:
    tool = spec.tools.get(name)
    return tool is not None and tool.kind == "agent"


def _started(slot: dict[str, Any], spec: Spec) -> list[str]:
    """The frame's calls marked running, or waiting on an entry already decided, without a
    result: started (or let run) by the step, so the source may have run them after it (a
    sub-agent's call is left to carry on instead)."""
    state = slot["state"]
    ledger = state.get("ledger", {})
    results = state.get("results", {})
    pending = state.get("pending", [])
    decided = {p["id"] for p in pending if p.get("decision") is not None}
    waiting = {p["id"] for p in pending} - decided
    return [
        c["id"]
        for c in _calls(slot)
        if (ledger.get(c["id"]) == "running" or c["id"] in decided)
        and c["id"] not in results
        and c["id"] not in waiting
        and not _is_agent(spec, c["function"]["name"])
    ]


def _ran_as(slot: dict[str, Any], later: dict[str, Any] | None, call_id: str) -> int | None:
    """Give the step's call the arguments the source ran it with after the step (an edit, or
    a tool that asked about other ones, rewrites the call), so the result taken is paired with
    them; the index of the message changed, or None when nothing changed."""
    index = len(slot["messages"]) - 1
    if later is None or index >= len(later["messages"]):
        return None
    ran = {c["id"]: c for c in later["messages"][index].get("tool_calls") or []}.get(call_id)
    message = slot["messages"][index]
    calls = message.get("tool_calls") or []
    mine = next((c for c in calls if c["id"] == call_id), None)
    if ran is None or mine is None or ran["function"] == mine["function"]:
        return None
    slot["messages"][index] = {
        **message,
        "tool_calls": [ran if c["id"] == call_id else c for c in calls],
    }
    return index


def _started_later(slot: dict[str, Any] | None, call_id: str) -> bool:
    """Whether the source, as it stands now, has `call_id` marked running (started, no
    result)."""
    state = (slot or {}).get("state") or {}
    return bool(state.get("ledger", {}).get(call_id) == "running")


def _result(slot: dict[str, Any] | None, call_id: str) -> tuple[str, str] | None:
    """The result the source recorded for `call_id` after all (text, ledger status), or None:
    a call rejected later (a `stop` ended its turn) never ran, so it has none."""
    if slot is None:
        return None
    state = slot["state"] or {}
    status = state.get("ledger", {}).get(call_id, "done")
    if status == "rejected":
        return None
    kept = "failed" if status == "failed" else "done"
    for message in slot["messages"]:
        if message.get("role") == "tool" and message.get("tool_call_id") == call_id:
            return str(message.get("content") or ""), kept
    text = state.get("results", {}).get(call_id)
    return (str(text), kept) if text is not None else None


def _reprompt(root: dict[str, Any], prompt: str, run_id: str, step: int) -> int:
    """Put `prompt` in place of the root frame's last user message; return its index."""
    messages = root["messages"]
    last = messages[-1] if messages else {}
    if last.get("role") == "assistant" and not last.get("tool_calls"):
        raise ForkError(
            f"at step {step} run {run_id!r} had answered already, so no model would read a "
            "new prompt; fork at an earlier step (`callcc runs history` lists them)",
            run_id=run_id,
            step=step,
        )
    index = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    messages[index] = {**messages[index], "content": prompt}
    return index


def _event(path: str, slot: dict[str, Any], start: int | None) -> Event:
    """The event that records a frame as the fork changed it: its whole state, and its
    messages from `start` when they changed."""
    if start is None:
        return Event(frame=path, kind="state", data=slot["state"])
    data = {"start": start, "messages": slot["messages"][start:], "state": slot["state"]}
    return Event(frame=path, kind="messages", data=data)


def _unscoped(state: dict[str, Any] | None) -> bool:
    """Make every decision of scope `run` in a frame's pending entries answer its own call
    only (in place); True when one did."""
    changed = False
    for entry in (state or {}).get("pending", []):
        decision = entry.get("decision")
        if isinstance(decision, dict) and decision.pop("scope", "call") != "call":
            decision.pop("where", None)
            changed = True
    return changed
