"""Tool calls of one turn: sort them (refuse, gate or run), apply decisions, run them.

Calls that need no decision run concurrently (a single call runs inline, the cheapest way);
each runs through the runner of its tool's kind (`engine.runners`: one registry, no branch
per kind here). Every outcome lands in the frame: a result, a pending entry, or the reason
the run must fail; and, when someone observes the run, in an event (`engine.events`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from engine import _emit
from engine._canonical import MAX_DEPTH, json_problem
from engine._frozen import quick_init
from engine._json import loads_plain
from engine.compile import BoundAgent, BoundTool, Program
from engine.errors import ContinuationError
from engine.events import Observers, RunEvent
from engine.frames import Frame, Pending, PolicyWhy
from engine.grants import Grant, covering, variables
from engine.runners import Call, Done, Outcome, Wait, runner_for
from engine.runners.base import (
    approval_entry,
    approval_question,
    argument_fault,
    argument_problem,
    rejected_text,
    render_prompt,
    tool_result_text,
)
from engine.runners.base import short_text as _short
from engine.steps import End

if TYPE_CHECKING:
    from engine.journal import Journal
    from engine.toolsets import Toolsets

__all__ = [
    "Driver",
    "RunContext",
    "approval_question",
    "argument_fault",
    "argument_problem",
    "classify",
    "decode_arguments",
    "parse_arguments",
    "refuse_call",
    "refuse_malformed",
    "render_prompt",
    "run_calls",
    "tool_result_text",
]

Driver: TypeAlias = "Callable[[Frame, RunContext], Awaitable[End]]"
"""The loop's driver (`engine.loop.drive`): steps a frame until it ends."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class RunContext:
    """What every step of one run shares: the compiled spec, the run's id, the driver, and
    the run's consumers (the loop reaches them only through `emit` and `checkpoint`)."""

    program: Program
    """The compiled spec."""
    run_id: str
    """The run's id, part of every tool's idempotency key."""
    drive: Driver
    """The loop's driver, passed in so a runner drives sub-agent frames without importing
    the loop."""
    journal: Journal | None = None
    """Where checkpoints go when the run is kept in a store."""
    observers: Observers = field(default_factory=Observers)
    """Who receives the run's events (`emit`); build an event only `if ctx.observers:`."""
    off_loop: bool = False
    """Run every sync tool on a worker thread, a lone one too (an async drive of a stored run:
    a task renews its lease, which a tool holding the event loop would starve)."""
    clock: Callable[[], float] = time.time
    """The run's wall clock, seconds since the epoch (`Runtime(clock=...)`): when a gated
    call expires is counted from it."""
    toolsets: Toolsets | None = None
    """The run's connections to tool servers (`kind: mcp`), when an agent uses one."""
    grants: tuple[Grant, ...] = ()
    """The run's grants (the root frame's, `engine.grants`): a call one covers that would
    wait for approval is approved or rejected by it instead."""

    def granted(self, frame: Frame, call_id: str, tool: str, args: dict[str, Any]) -> Grant | None:
        """The grant that answers a call that would wait for approval, or None (it asks);
        its application is an event (`grant_applied`)."""
        grant = covering(self.grants, frame, tool, args, self.run_id) if self.grants else None
        if grant is not None and self.observers:
            _emit.grant_applied(frame, call_id, tool, grant, args, self)
        return grant

    @property
    def durable(self) -> bool:
        """True when the run is kept in a store (`checkpoint` writes)."""
        return self.journal is not None

    async def tools_of(self, frame: Frame, agent: BoundAgent) -> BoundAgent:
        """`agent` with the tools of its servers, as this run lists them (`engine.toolsets`)."""
        if self.toolsets is None:
            raise ContinuationError(
                f"agent {agent.spec.name!r} uses tool servers, but this run has no "
                "connections to them (a RunContext made without `toolsets`)"
            )
        return await self.toolsets.bind(frame, agent, self)

    def emit(self, event: RunEvent) -> None:
        """Hand an event to the run's observers."""
        if self.observers:
            self.observers.emit(event)

    async def checkpoint(self, frame: Frame) -> None:
        """Keep `frame` in the run store, when the run is kept in one."""
        if self.journal is not None:
            await self.journal.checkpoint(frame)


def classify(frame: Frame, agent: BoundAgent, call: dict[str, Any], ctx: RunContext) -> None:
    """Record a new call as refused (the model gets an error), gated (pending) or runnable."""
    call_id = call["id"]
    name = call["function"]["name"]
    tool = agent.tools.get(name)
    if tool is None:
        known = ", ".join(sorted(agent.tools)) or "none"
        _refuse(
            frame, call_id, name, f"error: unknown tool {name!r}; available tools: {known}", ctx
        )
        return
    arguments, problem = parse_arguments(tool, call["function"]["arguments"])
    if arguments is None:
        _refuse(
            frame, call_id, name, f"error: {problem}; call {name} again with valid arguments", ctx
        )
        return
    text = call["function"]["arguments"]
    approval = tool.spec.approval
    asks, why = _asks(frame, tool, call_id, arguments, ctx) if approval.required else (False, None)
    grant = ctx.granted(frame, call_id, name, arguments) if asks else None
    if grant is not None and grant.kind == "reject":
        _reject(frame, call_id, name, rejected_text(grant.reason), ctx)
        return
    if grant is not None:  # approved for the run: as if a person approved it (a pause holds)
        frame.approved[call_id] = grant.fingerprint
        asks = False
    if asks:
        job = Call(frame=frame, tool=tool, id=call_id, arguments=arguments)
        entry = approval_entry(
            job, ctx, arguments=arguments, text=text, detail=tool.approval_detail, policy=why
        )
        _gate(frame, entry, ctx)
    elif name in agent.spec.suspend.before_tools:
        entry = Pending.for_call(
            id=call_id, reason="pause", tool=name, arguments=arguments, text=text
        )
        _gate(frame, entry, ctx)
    else:
        frame.ledger[call_id] = "running"
        frame.decoded[call_id] = arguments  # run_calls runs it with these: decoded once


def _asks(
    frame: Frame, tool: BoundTool, call_id: str, arguments: dict[str, Any], ctx: RunContext
) -> tuple[bool, PolicyWhy | None]:
    """Whether a call of a tool whose approval is required waits for a person, and why when a
    condition says so: it waits when the condition holds or cannot be evaluated (fail closed);
    a call it lets through is an event (`policy_allowed`)."""
    condition = tool.condition
    if condition is None:
        return True, None
    agent, run = variables(frame, ctx.run_id)  # the same a grant's `where` sees
    verdict = condition.evaluate(arguments, agent, run)
    if verdict.error is not None:
        return True, PolicyWhy(when=condition.text, outcome="error", error=verdict.error)
    if verdict.held:
        return True, PolicyWhy(when=condition.text, outcome="held")
    if ctx.observers:
        _emit.policy_allowed(frame, call_id, tool.name, condition.text, arguments, ctx)
    return False, None


def parse_arguments(tool: BoundTool, text: str) -> tuple[dict[str, Any] | None, str]:
    """The call's arguments, or None and what is wrong with them."""
    arguments, problem = decode_arguments(text)
    if problem:
        return None, problem
    if not isinstance(arguments, dict):
        return None, "the arguments must be a JSON object"
    problem = argument_problem(tool, arguments) or ""
    return (None, problem) if problem else (arguments, "")


def decode_arguments(text: str) -> tuple[Any, str]:
    """A call's arguments text decoded, and `""`; or None and why it is not plain JSON (not
    JSON, NaN or Infinity, a lone surrogate, nesting deeper than any tool needs)."""
    if text.count("[") + text.count("{") < MAX_DEPTH:  # so it cannot nest deeper
        done, arguments = loads_plain(text)
        if done:
            return arguments, ""
    try:  # the standard library reads it (blank text) or says what is wrong
        arguments = _ARGUMENTS.decode(text) if text.strip() else {}
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        return None, f"the arguments are not valid JSON ({exc})"
    problem = json_problem(arguments)
    if problem is not None:
        where, what = problem
        return None, f"the arguments are not plain JSON: {where or 'the value'} {what}"
    return arguments, ""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_ARGUMENTS = json.JSONDecoder(parse_constant=_no_constant)
"""Reads a model's arguments; NaN and Infinity are not JSON, so they are refused."""


def refuse_malformed(frame: Frame, call_id: str, tool: str, problem: str, ctx: RunContext) -> None:
    """Answer a call the server sent malformed (see `ToolCall.problem`) with the error."""
    _refuse(frame, call_id, tool, f"error: {problem}; nothing was run, call the tool again", ctx)


def refuse_call(frame: Frame, call_id: str, tool: str, message: str, ctx: RunContext) -> None:
    """Answer a call with `message` instead of running it (the ledger marks it failed)."""
    _refuse(frame, call_id, tool, message, ctx)


def _refuse(frame: Frame, call_id: str, tool: str, message: str, ctx: RunContext) -> None:
    frame.ledger[call_id] = "failed"
    frame.results[call_id] = message
    if ctx.observers:
        _emit.tool_finished(frame, call_id, tool, "rejected", message, ctx, refused=True)


def _reject(frame: Frame, call_id: str, tool: str, text: str, ctx: RunContext) -> None:
    """Answer a call a reject-grant covers without running it (`engine.grants`)."""
    frame.ledger[call_id] = "rejected"
    frame.results[call_id] = text
    if ctx.observers:
        _emit.tool_finished(frame, call_id, tool, "rejected", text, ctx)


def _gate(frame: Frame, entry: Pending, ctx: RunContext) -> None:
    """Make the call `entry` is for wait on it."""
    frame.ledger[entry.id] = "pending"
    frame.pending.append(entry)
    if ctx.observers:
        _emit.entry_added(frame, entry, ctx)


async def run_calls(
    frame: Frame, agent: BoundAgent, calls: list[dict[str, Any]], ctx: RunContext
) -> tuple[str | None, bool]:
    """Run every call that may run now; return why the run must fail (if it must) and whether
    a result was recorded that no checkpoint holds yet (a lone call run inline)."""
    entries = {p.id: p for p in frame.pending if p.tool is not None} if frame.pending else {}
    observed = bool(ctx.observers)
    jobs: list[tuple[str, BoundTool, dict[str, Any], Pending | None]] = []
    for call in calls:
        call_id = call["id"]
        if call_id in frame.results:
            continue
        entry = entries.get(call_id)
        if entry is None:
            if frame.ledger.get(call_id) == "running":  # classified: its arguments are valid
                tool = agent.tools[call["function"]["name"]]
                arguments = frame.decoded.pop(call_id, None)
                if arguments is None:  # a frame read from a document: decoded only here
                    text = call["function"]["arguments"]
                    arguments = json.loads(text) if text.strip() else {}
                jobs.append((call_id, tool, arguments, None))
            continue
        tool = agent.tools[entry.tool or ""]
        if entry.reason == "subagent":  # it waits inside its runner: carry on
            assert entry.child is not None
            frame.pending.remove(entry)
            jobs.append((call_id, tool, entry.arguments or {}, entry))
            continue
        decision = entry.decision
        if decision is None:
            continue
        frame.pending.remove(entry)
        if observed:
            _emit.decision_applied(frame, entry, ctx)
        if decision.kind == "reject":
            frame.ledger[call_id] = "rejected"
            text = rejected_text(decision.reason)
            frame.results[call_id] = text
            if observed:
                _emit.tool_finished(frame, call_id, tool.name, "rejected", text, ctx)
        elif decision.kind == "answer":
            frame.ledger[call_id] = "done"
            text = _short(decision.result)
            frame.results[call_id] = text
            if observed:
                _emit.tool_finished(frame, call_id, tool.name, "done", text, ctx)
        elif decision.kind == "edit":
            _rewrite_arguments(frame, call_id, decision.arguments)
            if entry.reason == "approval":
                frame.approved[call_id] = entry.fingerprint
            jobs.append((call_id, tool, decision.arguments, None))
        elif decision.kind in ("approve", "resume"):  # run it (again, for an `error` entry)
            if entry.reason == "approval":
                frame.approved[call_id] = entry.fingerprint
            jobs.append((call_id, tool, entry.arguments or {}, None))
        else:  # the document check refuses these first; never run a call on them
            raise ContinuationError(
                f"decision {decision.kind!r} cannot apply to the call {call_id!r}"
            )
    if not jobs:
        return None, False
    durable = ctx.durable
    for call_id, _, _, _ in jobs:
        frame.ledger[call_id] = "running"
    if durable:  # mark them running before any side effect happens
        await ctx.checkpoint(frame)
    if len(jobs) == 1:  # inline: its result is kept by the step's checkpoint
        call_id, tool, args, entry = jobs[0]
        job = Call(frame=frame, tool=tool, id=call_id, arguments=args, inline=True)
        failure = await _settle_one(job, entry, ctx, observed, keep=False)
        if len(frame.pending) > 1:
            _sort_pending(frame, calls)
        return failure, True
    failures = await asyncio.gather(  # each result is kept the moment it exists
        *(
            _settle_one(
                Call(frame=frame, tool=t, id=i, arguments=a, inline=False),
                e,
                ctx,
                observed,
                keep=durable,
            )
            for i, t, a, e in jobs
        )
    )
    if len(frame.pending) > 1:
        _sort_pending(frame, calls)
    return next((f for f in failures if f is not None), None), False


def _sort_pending(frame: Frame, calls: list[dict[str, Any]]) -> None:
    """Keep the frame's entries in the order of the calls they are for."""
    order = {call["id"]: i for i, call in enumerate(calls)}
    frame.pending.sort(key=lambda p: order.get(p.id, -1))


async def _settle_one(
    call: Call, waiting: Pending | None, ctx: RunContext, observed: bool, *, keep: bool
) -> str | None:
    """Run (or carry on) one call and record its outcome; checkpoint it when `keep` (a
    lone inline call's result is kept by the checkpoint at the step's end instead)."""
    frame = call.frame
    runner = runner_for(call.tool.spec.kind)
    if observed:
        _emit.tool_started(call, waiting is not None, ctx)
    if waiting is None:
        outcome = await runner.run(call, ctx)
    else:
        outcome = await runner.carry_on(call, waiting, ctx)
    failure = _record(frame, call, outcome)
    if observed:
        _emit.tool_outcome(call, outcome, ctx)
    if failure is None and keep:
        await ctx.checkpoint(frame)
    return failure


def _record(frame: Frame, call: Call, outcome: Outcome) -> str | None:
    """Keep a runner's outcome in the frame; return why the run must fail, if it must."""
    call_id = call.id
    if isinstance(outcome, Done):
        frame.ledger[call_id] = outcome.status
        frame.results[call_id] = outcome.text
    elif isinstance(outcome, Wait):
        entry = outcome.entry
        frame.ledger[call_id] = "failed" if entry.reason == "error" else "pending"
        frame.pending.append(entry)
        if entry.reason == "approval" and entry.arguments != call.arguments:
            # a tool asked to act on arguments of its own: the call is now that one, as an
            # edit makes it (what the model reads, and what a recovery runs)
            _rewrite_arguments(frame, call_id, entry.arguments or {})
    elif outcome.entry is not None:  # a sub-agent failed where it can resume: keep it
        frame.ledger[call_id] = "pending"
        frame.pending.append(outcome.entry)
        return outcome.reason
    else:
        frame.ledger[call_id] = "failed"
        return outcome.reason
    return None


def _rewrite_arguments(frame: Frame, call_id: str, arguments: dict[str, Any]) -> None:
    """Make the model see the edited call: replace (never mutate) the assistant message."""
    message = frame.messages[-1]
    text = json.dumps(arguments, ensure_ascii=False)
    calls = [
        {**c, "function": {**c["function"], "arguments": text}} if c["id"] == call_id else c
        for c in message["tool_calls"]
    ]
    frame.messages[-1] = {**message, "tool_calls": calls}
