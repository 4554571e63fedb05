"""The agent loop: `step(frame) -> Continue | Suspend | Finish | Fail` and its driver.

One step does one thing: settle the current turn's tool calls (run them, apply decisions,
re-drive suspended sub-agents), or check budgets and pauses, or ask the model. Everything a
step needs to know is in the frame, so a frame loaded from a continuation in a fresh process
steps exactly as the one that suspended would have.

The loop names no consumer: it keeps checkpoints through `ctx.checkpoint` and reports what
happens through `ctx.emit`, building an event only when the run has observers.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from engine import _emit
from engine.compile import BoundAgent
from engine.errors import ModelError, ScriptError, ToolServerError
from engine.frames import Frame, Limit, Pending
from engine.models.base import ModelReply, ModelRequest
from engine.steps import (
    CLOSED_TURN,
    CONTINUE,
    SUSPEND,
    Continue,
    End,
    Fail,
    Finish,
    Step,
    Suspend,
)
from engine.tooling import RunContext, classify, refuse_malformed, run_calls
from engine.usage import count as count_usage

__all__ = [
    "Continue",
    "Fail",
    "Finish",
    "PauseClock",
    "RunContext",
    "Suspend",
    "drive",
    "external_pause",
    "step",
]
_FINISH_REASONS = frozenset({"stop", "tool_calls", "function_call"})


@dataclass(kw_only=True)
class PauseClock:
    """`suspend.after_seconds` counted outside the process (Temporal's durable timer): while
    one is set in `external_pause`, a frame with `after_seconds` pauses at its next step
    boundary once `due` is set, or when its own clock says so first (a sub-agent started
    during the advance has no timer of its own until the next one); either way one pause
    ends the advance, so the two never pause a run twice."""

    due: bool = False
    """Set when the outside timer fired: the next frame with `after_seconds` to reach a step
    boundary pauses, as if its clock had passed `after_seconds`."""


external_pause: ContextVar[PauseClock | None] = ContextVar("callcc_external_pause", default=None)
"""The drive's outside pause clock (None: each frame counts its own active seconds)."""


async def drive(frame: Frame, ctx: RunContext) -> End:
    """Step until the frame finishes, fails or suspends; count active time in the frame."""
    agent = ctx.program.agents[frame.agent]
    clock = time.perf_counter
    durable = ctx.durable
    if ctx.observers:
        _emit.agent_started(frame, ctx)
    if agent.toolsets:  # its servers' tools: listed (connecting) when the agent first runs
        try:
            agent = await ctx.tools_of(frame, agent)
        except ToolServerError as exc:
            failed = fail_resumably(frame, str(exc))
            if ctx.observers:
                _emit.agent_ended(frame, failed, ctx)
            return failed
    while True:
        started = clock()
        result = await step(frame, agent, ctx)
        spent = clock() - started
        frame.elapsed += spent
        frame.pause_elapsed += spent
        if durable and _keeps(result):
            await ctx.checkpoint(frame)
        if not isinstance(result, Continue):
            if ctx.observers:
                _emit.agent_ended(frame, result, ctx)
            return result


def _keeps(result: Step) -> bool:
    """Whether the frame is checkpointed after this step. Not after a closed turn whose
    results are kept already, and not after a `stop`: the last checkpoint then still holds the
    decided `stop`, so a process that dies before the run is marked stopped leaves a run whose
    recovery stops it again (the same reply, no model asked) rather than one that looks like
    it waits for the model's next turn."""
    if isinstance(result, Continue):
        return result.checkpoint
    return not (isinstance(result, Finish) and result.stopped)


async def step(frame: Frame, agent: BoundAgent, ctx: RunContext) -> Step:
    """One phase of the loop, chosen by the frame's state alone."""
    if frame.pending:
        return await settle(frame, agent, ctx)
    messages = frame.messages
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "assistant":
        if last.get("tool_calls"):  # calls in flight (`Frame.in_flight`)
            return await settle(frame, agent, ctx)
        # the agent answered already: a recovered run whose process died after keeping the
        # answer and before reporting it ends as it would have, asking no model again
        if "finish_reason" in last:
            return Fail(_incomplete(frame, last["finish_reason"]))
        return Finish(last.get("content") or "")
    gate = check_limits(frame, agent) or check_pause(frame, agent)
    if gate is not None:
        frame.pending.append(gate)
        if ctx.observers:
            _emit.entry_added(frame, gate, ctx)
        return SUSPEND
    return await ask_model(frame, agent, ctx)


def check_limits(frame: Frame, agent: BoundAgent) -> Pending | None:
    """A `turn_limit` entry when a budget is used up before the next model call."""
    limits = agent.spec.limits
    allowed = limits.max_turns + frame.extra_turns
    if frame.turns >= allowed:
        detail = f"max_turns: {frame.turns} model turns used of {allowed}"
        limit = Limit(name="max_turns", used=frame.turns, allowed=allowed)
    elif limits.timeout is not None and frame.elapsed >= limits.timeout + frame.extra_seconds:
        seconds = limits.timeout + frame.extra_seconds
        detail = f"timeout: {frame.elapsed:.1f} s of {seconds:g} s"
        limit = Limit(name="timeout", used=round(frame.elapsed, 3), allowed=seconds)
    else:
        return None
    return Pending.for_frame(
        id=frame.next_id("limit"), reason="turn_limit", detail=detail, limit=limit
    )


def check_pause(frame: Frame, agent: BoundAgent) -> Pending | None:
    """A `pause` entry when `suspend: every_turns / after_seconds` says so."""
    rules = agent.spec.suspend
    if rules.every_turns is not None and frame.pause_turns >= rules.every_turns:
        detail = f"every_turns: paused after {frame.pause_turns} turns"
    elif rules.after_seconds is not None and _seconds_up(frame, rules.after_seconds):
        detail = f"after_seconds: paused after {frame.pause_elapsed:.1f} s"
    else:
        return None
    return Pending.for_frame(id=frame.next_id("pause"), reason="pause", detail=detail)


def _seconds_up(frame: Frame, after_seconds: float) -> bool:
    """Whether `after_seconds` of active running passed: the outside timer fired (when one is
    set), or the frame's own clock."""
    outside = external_pause.get()
    if outside is not None and outside.due:
        return True
    return frame.pause_elapsed >= after_seconds


async def ask_model(frame: Frame, agent: BoundAgent, ctx: RunContext) -> Step:
    """Call the model once and record its reply."""
    request = ModelRequest(
        agent=frame.agent,
        instructions=agent.spec.instructions,
        messages=frame.messages,
        tools=agent.tool_defs,
        attempt=frame.attempts,
        path=frame.path,
        tool_choice=agent.spec.tool_choice_at(frame.turns) if agent.tool_defs else None,
    )
    frame.attempts += 1
    observed = bool(ctx.observers)
    sent = _emit.model_called(frame, agent, ctx) if observed else 0.0
    try:
        reply = await agent.model.complete(request)
    except ModelError as exc:
        if observed:
            _emit.model_replied(frame, agent, ctx, sent, None, str(exc))
        if not exc.transient:
            return fail_resumably(frame, f"model call of agent {frame.agent!r} failed: {exc}")
        entry = Pending.for_frame(
            id=frame.next_id("error"),
            reason="error",
            detail=f"model call failed: {exc}",
        )
        frame.pending.append(entry)
        if observed:
            _emit.entry_added(frame, entry, ctx)
        return SUSPEND
    except ScriptError as exc:
        if observed:
            _emit.model_replied(frame, agent, ctx, sent, None, str(exc))
        return Fail(str(exc))
    count_usage(frame, reply.usage)
    frame.turns += 1
    frame.pause_turns += 1
    if reply.finish_reason not in _FINISH_REASONS:  # kept for the record, its calls never run
        frame.messages.append(
            {
                "role": "assistant",
                "content": reply.content or "",
                "finish_reason": reply.finish_reason,  # marks it no answer, should a recovery look
            }
        )
        if observed:
            _emit.model_replied(frame, agent, ctx, sent, reply, None)
        return Fail(_incomplete(frame, reply.finish_reason))
    message, malformed = _assistant_message(frame, reply)
    frame.messages.append(message)
    if observed:
        _emit.model_replied(frame, agent, ctx, sent, reply, None)
    if reply.tool_calls:
        for call_id, name, problem in malformed:  # recorded as sent, answered, never run
            refuse_malformed(frame, call_id, name, problem, ctx)
        # sorted now, so the checkpoint of the reply also marks its calls running
        return open_turn(frame, agent, message["tool_calls"], ctx)
    return Finish(reply.content or "")


def _incomplete(frame: Frame, finish_reason: Any) -> str:
    return (
        f"model reply of agent {frame.agent!r} ended with finish_reason "
        f"{finish_reason!r} (expected stop or tool_calls); the reply is incomplete"
    )


_UNSAFE_ID = re.compile(r"[/@\s\x00-\x1f\x7f\ud800-\udfff]")


def _assistant_message(
    frame: Frame, reply: ModelReply
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """The reply as an assistant message, and the calls the server sent malformed (id, name,
    problem), to answer with their error once the message is recorded."""
    if not reply.tool_calls:
        return {"role": "assistant", "content": reply.content or ""}, []
    seen: set[str] = set()
    malformed: list[tuple[str, str, str]] = []
    calls = []
    for i, call in enumerate(reply.tool_calls):
        # `/` and `@` separate the parts of pending paths and store frame paths, so a model's
        # id holding them (or blanks, control characters) is kept readable but made plain
        call_id = _UNSAFE_ID.sub("_", call.id) if call.id else f"call_{frame.turns}_{i}"
        while call_id in seen or call_id in frame.ledger:  # a model reused an id: keep unique
            call_id = f"{call_id}~{frame.turns}"
        seen.add(call_id)
        if call.problem is not None:
            malformed.append((call_id, call.name, call.problem))
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
        )
    return {"role": "assistant", "content": reply.content or "", "tool_calls": calls}, malformed


async def settle(frame: Frame, agent: BoundAgent, ctx: RunContext) -> Step:
    """Apply decisions, run what may run, and close the turn once every call has a result."""
    for entry in [p for p in frame.pending if p.tool is None] if frame.pending else ():
        decision = entry.decision
        if decision is None:
            return SUSPEND
        frame.pending.remove(entry)
        if ctx.observers:
            _emit.decision_applied(frame, entry, ctx)
        if decision.kind == "stop":
            return stop_early(frame, ctx)
        if decision.kind == "extend":
            _grant(frame, entry.limit, decision.turns)
        elif entry.reason == "pause":
            frame.pause_turns = 0
            frame.pause_elapsed = 0.0
    calls = frame.in_flight()
    if not calls:
        return CONTINUE
    if open_turn(frame, agent, calls, ctx) is SUSPEND:
        return SUSPEND
    failure, unsaved = await run_calls(frame, agent, calls, ctx)
    if failure is not None:
        return Fail(failure, resumable=not _stuck(frame, calls))
    if frame.pending:
        return SUSPEND
    for call in calls:
        content = frame.results.pop(call["id"])
        frame.messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    if frame.approved:  # approvals hold for the turn's calls only
        frame.approved.clear()
    return CONTINUE if unsaved else CLOSED_TURN  # the closed turn is kept with its messages


def fail_resumably(frame: Frame, reason: str) -> Fail:
    """Fail the run, recording an `error` entry in the frame so its continuation can be
    resumed (`resume`: ask the model again) once the cause is fixed, or stopped."""
    frame.pending.append(
        Pending.for_frame(
            id=frame.next_id("error"),
            reason="error",
            detail=f"{reason}; fix the cause, then resume to ask the model again",
        )
    )
    return Fail(reason, resumable=True)


def _stuck(frame: Frame, calls: list[dict[str, Any]]) -> bool:
    """True when a call failed with neither a result nor a pending entry: a sub-agent whose
    failure left nothing to resume, so neither can this frame."""
    settled = {p.id for p in frame.pending}.union(frame.results)
    return any(frame.ledger.get(c["id"]) == "failed" and c["id"] not in settled for c in calls)


def open_turn(
    frame: Frame, agent: BoundAgent, calls: list[dict[str, Any]], ctx: RunContext
) -> Step:
    """Sort the calls not yet in the ledger (refused, gated or runnable) within the tool-call
    budget, or suspend with `turn_limit` before any of them runs."""
    fresh = [c for c in calls if c["id"] not in frame.ledger]
    if not fresh:
        return CONTINUE
    allowed = agent.spec.limits.max_tool_calls + frame.extra_tool_calls
    if frame.tool_calls + len(fresh) > allowed:
        entry = Pending.for_frame(
            id=frame.next_id("limit"),
            reason="turn_limit",
            detail=f"max_tool_calls: {frame.tool_calls} used of {allowed}, "
            f"the model asks for {len(fresh)} more",
            limit=Limit(name="max_tool_calls", used=frame.tool_calls, allowed=allowed),
        )
        frame.pending.append(entry)
        if ctx.observers:
            _emit.entry_added(frame, entry, ctx)
        return SUSPEND
    frame.tool_calls += len(fresh)
    for call in fresh:
        classify(frame, agent, call, ctx)
    return CONTINUE


def stop_early(frame: Frame, ctx: RunContext) -> Finish:
    """End the frame with its reply so far; calls without a result are marked not run."""
    for call in frame.in_flight():
        call_id = call["id"]
        if call_id not in frame.results:
            frame.ledger[call_id] = "rejected"
            text = "not executed: the run was stopped by the reviewer"
            frame.results[call_id] = text
            if ctx.observers:
                _emit.tool_finished(frame, call_id, call["function"]["name"], "rejected", text, ctx)
        frame.messages.append(
            {"role": "tool", "tool_call_id": call_id, "content": frame.results.pop(call_id)}
        )
    frame.pending.clear()
    frame.approved.clear()
    return Finish(frame.last_text(), stopped=True)


def _grant(frame: Frame, limit: Limit | None, amount: int) -> None:
    """More of the budget `limit` names (a `turn_limit` entry always has one)."""
    name = "max_turns" if limit is None else limit.name
    if name == "max_tool_calls":
        frame.extra_tool_calls += amount
    elif name == "timeout":
        frame.extra_seconds += amount
    else:
        frame.extra_turns += amount
