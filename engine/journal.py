"""Checkpoints as deltas, and the continuation rebuilt from them.

`Journal.checkpoint(frame)` writes what changed in one frame since its last checkpoint: the
messages added (each message is stored once; an edited call rewrites only the last one) and
the frame's small state (counters, ledger exceptions, the current turn's results, pending
entries). Storage therefore grows with the messages, not with the number of steps.

When a long run suspends, `settle` also keeps a snapshot: every frame of the stack as the
events so far rebuild it. A store hands a rebuild the latest snapshot and only the events after
it, so loading a run costs about what parsing its document does, at any length of history.

`rebuild` replays a run's events into the continuation document; `recoverable` also decides
what to do with calls a dead process left `running`: sub-agents carry on from their own last
checkpoint, idempotent tools run again, any other tool waits for a person (`error`: approve to
run it again, answer to supply its result, reject to skip) because nobody knows whether its
side effect happened.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from engine._codec import frame_state_data, ledger_data, policy_to_data
from engine.continuation import FORMAT, VERSION, Continuation
from engine.errors import ContinuationError
from engine.frames import Frame, assign_paths, call_fingerprint, walk
from engine.spec.model import Spec
from engine.store.base import AsyncRunStore, Event, Lease, PendingRow, RunRecord, RunStatus
from engine.usage import Usage
from engine.waits import CALL_WAITS

SNAPSHOT_EVENTS = 64
"""A run that suspends (or fails) with at least this many events since its latest snapshot
keeps a new one: a rebuild then replays fewer events than this after it. Short runs keep
none, so an approval cycle writes no more than before."""


@dataclass(kw_only=True)
class Journal:
    """Writes one run's checkpoints; holds the version it expects the store to be at."""

    store: AsyncRunStore
    """Where the run is kept: the store's async face (`arun`), or the blocking store behind
    the async protocol (`run`, see `engine.store._aio.Blocking`)."""
    run_id: str
    """The run."""
    version: int
    """The store version after our last write."""
    lease: Lease | None = None
    """The run's lease this process holds, renewed by every checkpoint."""
    user: str = ""
    """Who drives the run now, as its audit trail names them (`engine.audit`)."""
    unsnapped: int = 0
    """Events the run has after its latest snapshot (all of them, when it has none)."""
    _messages: dict[str, tuple[int, int]] = field(default_factory=dict)
    _states: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ledgers: dict[str, tuple[Frame, int]] = field(default_factory=dict)
    """Per path: the frame last checkpointed there and how many ledger entries it had."""
    _writing: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while a checkpoint computes, appends and records its delta."""

    def prime(self, root: Frame) -> None:
        """Mark the messages of every frame of `root` as stored already (a loaded run)."""
        assign_paths(root)
        for _, frame in walk(root):
            last = id(frame.messages[-1]) if frame.messages else 0
            self._messages[frame.path] = (len(frame.messages), last)

    async def checkpoint(self, frame: Frame) -> None:
        """Append what changed in `frame` since its last checkpoint (nothing if nothing did).
        One at a time: the calls of one turn finish concurrently, and on the async face each
        append awaits the store, so a second checkpoint must wait for the version the first
        one writes (an uncontended lock costs no event-loop round trip)."""
        async with self._writing:
            delta = self.delta(frame)
            if delta is None:
                return
            events, state = delta
            self.version = await self.store.append(
                self.run_id, self.version, events, lease=self.lease
            )
            self.unsnapped += len(events)
            self.saved(frame, state)

    def delta(self, frame: Frame) -> tuple[list[Event], dict[str, Any]] | None:
        """The events of `frame`'s next checkpoint and the state they record, or None when
        nothing changed; `saved` marks them written."""
        messages = frame.messages
        saved, last = self._messages.get(frame.path, (0, 0))
        start = saved
        if saved > len(messages):
            start = 0
        elif saved and id(messages[saved - 1]) != last:  # an edit replaced the last message
            start = saved - 1
        data: dict[str, Any] = {}
        if start < len(messages):
            if start != saved:  # a rewrite; otherwise the messages append where the last ended
                data["start"] = start
            data["messages"] = messages[start:]
        before = self._states.get(frame.path)
        state = frame_state_data(frame, self._ledger(frame, before))
        if before is None:
            data["state"] = state
        else:
            if "messages" in data:
                before = _closed(before, messages[start:])
            patch = _diff(before, state)
            if patch:
                data["patch"] = patch
        if not data:
            return None
        # One event a checkpoint: `messages` when messages came (with the state or its patch
        # alongside), else `state` (a whole state or a patch).
        if "messages" in data:
            events = [Event(frame=frame.path, kind="messages", data=data)]
        elif "state" in data:
            events = [Event(frame=frame.path, kind="state", data=state)]
        else:
            events = [Event(frame=frame.path, kind="state", data={"patch": data["patch"]})]
        return events, state

    def _ledger(self, frame: Frame, before: dict[str, Any] | None) -> dict[str, Any]:
        """The ledger part of `frame`'s state, looking only at what can have changed since
        its last checkpoint: the exceptions written then, the current turn's calls and the
        entries added since (the ledger only grows, in call order, and only the calls of the
        current turn change status). So a checkpoint costs the same at any length of
        history; a frame seen for the first time is read whole."""
        known = self._ledgers.get(frame.path)
        ledger = frame.ledger
        if before is None or known is None or known[0] is not frame or known[1] > len(ledger):
            return ledger_data(frame)
        added = islice(reversed(ledger), len(ledger) - known[1])
        return ledger_data(frame, chain(before.get("ledger", ()), added))

    def saved(self, frame: Frame, state: dict[str, Any]) -> None:
        """Note that `frame` is stored as it is now, with `state` (from `delta`)."""
        messages = frame.messages
        self._messages[frame.path] = (len(messages), id(messages[-1]) if messages else 0)
        self._states[frame.path] = state
        self._ledgers[frame.path] = (frame, len(frame.ledger))

    async def checkpoint_all(self, root: Frame) -> None:
        """Checkpoint every frame of the stack (after a claim: persists the decisions)."""
        for _, frame in walk(root):
            await self.checkpoint(frame)

    async def settle(
        self,
        *,
        status: RunStatus,
        continuation: Continuation | None,
        output: str | None,
        spec_digest: str,
        resumable: bool = False,
        usage: Usage | None = None,
    ) -> None:
        """Record the outcome and the pending decisions, queryable without the document.
        A `resumable` failed run keeps the nonce of its continuation, so it can be claimed
        (resumed once the cause is fixed) like a suspended run. `usage` is the run's token
        total; the continuation's trace context is kept for the next resume to link to."""
        now = time.time()
        rows = [
            PendingRow(
                run_id=self.run_id,
                path=p.path,
                call_id=p.id,
                tool=p.tool,
                reason=p.reason,
                created_at=now,
                agent=p.agent,
                arguments=p.arguments,
                prompt=p.prompt,
                detail=p.detail,
                decisions=p.decisions,
                fingerprint=p.fingerprint,
                expires_at=p.expires_at,
                approvers=p.approvers,
                policy=None if p.policy is None else policy_to_data(p.policy),
            )
            for p in (continuation.pending() if continuation and status == "suspended" else [])
        ]
        snapshot = None
        if continuation is not None and self.unsnapped >= SNAPSHOT_EVENTS:
            snapshot = snapshot_event(continuation.frames()[0][1])
        self.version = await self.store.settle(
            self.run_id,
            self.version,
            status=status,
            nonce=continuation.nonce
            if continuation and (status == "suspended" or resumable)
            else None,
            output=output,
            pending=rows,
            spec_digest=spec_digest,
            usage=(usage.input_tokens, usage.output_tokens) if usage is not None else None,
            trace=continuation.trace if continuation is not None else None,
            snapshot=snapshot,
        )
        if snapshot is not None:
            self.unsnapped = 0


def snapshot_event(root: Frame) -> Event:
    """The `snapshot` event of the stack under `root`: every frame's messages and state, by
    store path, as replaying the run's events gives them (see `replay`)."""
    frames: dict[str, Any] = {}
    stack = [("", root)]
    while stack:
        path, frame = stack.pop()
        frames[path] = {"messages": frame.messages, "state": frame_state_data(frame)}
        stack.extend((f"{path}/{p.id}", p.child) for p in frame.pending if p.child is not None)
    return Event(frame="", kind="snapshot", data={"frames": frames})


def unsnapped(events: list[Event]) -> int:
    """How many of a store's `snapshot()` events came after its snapshot (all, without one)."""
    return sum(1 for event in events if event.kind != "snapshot")


_MAPS = ("counters", "ledger", "results", "toolsets", "approved")
_WHOLE = ("pending", "grants")
"""Parts of a frame state a patch holds whole when they changed (`grants`: the root's)."""


def _closed(state: dict[str, Any], new_messages: list[dict[str, Any]]) -> dict[str, Any]:
    """`state` without `running` ledger entries whose tool message is among `new_messages`:
    a running call whose result is in the messages is done, so nothing needs writing."""
    answered = {m.get("tool_call_id") for m in new_messages if m.get("role") == "tool"}
    ledger = state.get("ledger", {})
    if not answered.intersection(ledger):
        return state
    kept = {k: v for k, v in ledger.items() if not (v == "running" and k in answered)}
    return {**state, "ledger": kept}


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed between two frame states: per map the changed keys (None: removed),
    and `pending` whole when it changed."""
    patch: dict[str, Any] = {}
    for name in _MAPS:
        old, new = before.get(name, {}), after.get(name, {})
        if old != new:
            changes = {k: v for k, v in new.items() if old.get(k) != v}
            changes.update({k: None for k in old if k not in new})
            patch[name] = changes
    for name in _WHOLE:
        if before.get(name) != after.get(name):
            patch[name] = after.get(name, [])
    return patch


def _apply(state: dict[str, Any], patch: dict[str, Any]) -> None:
    for name in _MAPS:
        for key, value in patch.get(name, {}).items():
            target = state.setdefault(name, {})
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    for name in _WHOLE:
        if name in patch:
            state[name] = patch[name]


def replay(events: list[Event]) -> dict[str, dict[str, Any]]:
    """Every frame ever checkpointed, by path: `{"messages": [...], "state": {...}}`.

    A `messages` event holds new messages (from `start`, when it is not where the last ended)
    and the frame's `state` or `patch` of the same checkpoint; a `state` event holds a whole
    frame state, or `{"patch": ...}`: the changes since the frame's previous state (so a step
    that only moves a counter stores a few bytes)."""
    frames: dict[str, dict[str, Any]] = {}
    for event in events:
        frames = apply_event(frames, event)
    for slot in frames.values():  # a running call with a tool message is done (see _closed)
        state = slot["state"]
        if state is not None and state.get("ledger"):
            answered = {m.get("tool_call_id") for m in slot["messages"] if m.get("role") == "tool"}
            state["ledger"] = {
                k: v for k, v in state["ledger"].items() if not (v == "running" and k in answered)
            }
    return frames


def apply_event(frames: dict[str, dict[str, Any]], event: Event) -> dict[str, dict[str, Any]]:
    """`frames` (as `replay` keeps them) with one more event applied: changed in place and
    returned, or, for a `snapshot`, the frames it holds (`engine.history` walks a run's events
    one at a time with it)."""
    data = event.data
    if event.kind == "snapshot":  # the stack as every event before it left it
        return {path: _slot(path, kept) for path, kept in _frames_of(data).items()}
    slot = frames.setdefault(event.frame, {"messages": [], "state": None})
    if event.kind == "messages":
        start = data.get("start", len(slot["messages"]))
        slot["messages"][start:] = data["messages"]
        state = data.get("state")
        patch = data.get("patch")
    elif "patch" in data:
        state, patch = None, data["patch"]
    else:
        state, patch = data, None
    if state is not None:
        slot["state"] = json.loads(json.dumps(state))  # own copy: patches mutate it
    if patch is not None:
        if slot["state"] is None:
            raise ContinuationError(f"a state patch of frame {event.frame!r} before its state")
        _apply(slot["state"], patch)
    return frames


def _frames_of(data: dict[str, Any]) -> dict[str, Any]:
    frames = data.get("frames")
    if not isinstance(frames, dict) or "" not in frames:
        raise ContinuationError("the run's snapshot holds no frames; it was not written by callcc")
    return frames


def _slot(path: str, kept: Any) -> dict[str, Any]:
    """A frame of a snapshot as `replay` keeps it: its own lists, since later events extend
    the messages and patch the state."""
    if not isinstance(kept, dict) or not isinstance(kept.get("messages"), list):
        raise ContinuationError(f"the run's snapshot of frame {path!r} holds no messages")
    return {"messages": list(kept["messages"]), "state": json.loads(json.dumps(kept["state"]))}


def rebuild(
    run: RunRecord, events: list[Event], *, key: bytes | None = None, spec: Spec | None = None
) -> Continuation:
    """The run's continuation from its events. With `spec`, calls left `running` by a dead
    process are made safe to continue (see the module docstring)."""
    frames = replay(events)
    if "" not in frames or frames[""]["state"] is None:
        raise ContinuationError(f"run {run.run_id!r} has no checkpoint of its root frame")
    if spec is not None:
        for path in list(frames):
            _settle_running(path, frames, spec)
    documents: list[dict[str, Any]] = []
    grants = frames[""]["state"].get("grants")  # the root's: the document's top level
    order: list[tuple[str, int | None, int | None]] = [("", None, None)]
    while order:
        path, parent, slot = order.pop()
        data = {**frames[path]["state"], "messages": frames[path]["messages"]}
        data.pop("grants", None)
        data["pending"] = [dict(p) for p in data.get("pending", [])]
        index = len(documents)
        documents.append(data)
        if parent is not None and slot is not None:
            documents[parent]["pending"][slot]["child"] = index
        for j, entry in enumerate(data["pending"]):
            if entry.get("child"):
                child = f"{path}/{entry['id']}"
                if child not in frames:
                    raise ContinuationError(
                        f"run {run.run_id!r}: no checkpoint of sub-agent frame {child!r}"
                    )
                order.append((child, index, j))
            else:
                entry.pop("child", None)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run.run_id,
        "nonce": run.nonce or f"recovered-{run.version}",
        "spec": {"name": run.spec_name, "digest": run.spec_digest}
        | ({"path": run.spec_path} if run.spec_path else {}),
        "frames": documents,
    }
    if run.trace:
        document["trace"] = run.trace
    if grants:
        document["grants"] = grants
    return Continuation.from_dict(document, _key=key)


def _finished(frame: dict[str, Any]) -> bool:
    """True when a frame's last checkpoint holds its final answer."""
    messages, state = frame["messages"], frame["state"]
    return (
        state is not None
        and not state.get("pending")
        and bool(messages)
        and messages[-1].get("role") == "assistant"
        and not messages[-1].get("tool_calls")
        and "finish_reason" not in messages[-1]  # an incomplete reply is no answer
    )


def _settle_running(path: str, frames: Mapping[str, dict[str, Any]], spec: Spec) -> None:
    state = frames[path]["state"]
    messages = frames[path]["messages"]
    if state is None or not messages or messages[-1].get("role") != "assistant":
        return
    ledger = state.setdefault("ledger", {})
    results = state.setdefault("results", {})
    pending = state.setdefault("pending", [])
    waiting = {p["id"] for p in pending}
    for call in messages[-1].get("tool_calls") or []:
        call_id = call["id"]
        status = ledger.get(call_id)
        if status not in ("running", "failed") or call_id in results or call_id in waiting:
            continue
        name = call["function"]["name"]
        tool = spec.tools.get(name)
        served = any(name in tools for tools in state.get("toolsets", {}).values())
        if tool is None and not (served and status == "running"):
            continue
        is_agent = tool is not None and tool.kind == "agent"
        if status == "failed" and (not is_agent or f"{path}/{call_id}" not in frames):
            continue  # only a failed sub-agent leaves a call failed without a result: the
            # process died before the failure was recorded, so its frame is driven to it again
        try:
            arguments = json.loads(call["function"]["arguments"] or "{}")
        except json.JSONDecodeError:
            continue
        child = frames.get(f"{path}/{call_id}")
        if tool is None:  # an MCP server's tool: whether it is idempotent is the server's to say
            ledger[call_id] = "pending"
            pending.append(_unknown_outcome(call_id, name, arguments))
        elif tool.kind == "agent" and child is not None and _finished(child):
            ledger[call_id] = "done"  # the sub-agent answered; only its parent missed it
            results[call_id] = child["messages"][-1].get("content") or ""
            _fold_counts(state, child["state"])  # its frame is dropped: keep its tokens
        elif tool.kind == "agent" and child is not None:
            ledger[call_id] = "pending"
            pending.append(
                {
                    "id": call_id,
                    "reason": "subagent",
                    "tool": tool.name,
                    "arguments": arguments,
                    "decisions": [],
                    "fingerprint": call_fingerprint(call_id, tool.name, arguments, "subagent", ()),
                    "child": True,
                }
            )
        elif tool.kind == "external":  # it waited for its answer; the entry was not kept yet
            ledger[call_id] = "pending"
            pending.append(
                {
                    "id": call_id,
                    "reason": "external",
                    "tool": tool.name,
                    "arguments": arguments,
                    "decisions": list(CALL_WAITS["external"]),
                    "fingerprint": call_fingerprint(
                        call_id, tool.name, arguments, "external", CALL_WAITS["external"]
                    ),
                }
                | ({"prompt": tool.description} if tool.description else {})
            )
        elif tool.kind == "python" and not tool.idempotent:
            ledger[call_id] = "pending"
            pending.append(_unknown_outcome(call_id, tool.name, arguments))
        # idempotent python tools and sub-agents without a checkpoint simply run again


def _unknown_outcome(call_id: str, tool: str, arguments: Any) -> dict[str, Any]:
    """The `error` entry of a call that was running when its process stopped."""
    return {
        "id": call_id,
        "reason": "error",
        "tool": tool,
        "arguments": arguments,
        "decisions": list(CALL_WAITS["error"]),
        "fingerprint": call_fingerprint(call_id, tool, arguments, "error", CALL_WAITS["error"]),
        "detail": f"the process stopped while {tool} was running and nobody knows whether it "
        "took effect: approve to run it again, answer to supply its result, reject to skip it",
    }


def _fold_counts(state: dict[str, Any], child: dict[str, Any]) -> None:
    """Add an ended sub-agent's token counts to its caller's state (see `engine.usage`)."""
    counters = state.setdefault("counters", {})
    for name in ("input_tokens", "output_tokens"):
        spent = child.get("counters", {}).get(name, 0)
        if spent:
            counters[name] = counters.get(name, 0) + spent
