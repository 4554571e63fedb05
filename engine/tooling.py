"""Tool calls of one turn: sort them (refuse, gate or run), apply decisions, run them.

Calls that need no decision run concurrently (a single call runs inline, the cheapest way);
sub-agents run as tasks of their own so any nesting depth costs no Python stack. Every
outcome lands in the frame: a result, a pending entry, or the reason the run must fail.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import best_match

from engine._canonical import json_problem
from engine.compile import AGENT_TOOL_PARAMETERS, BoundAgent, BoundTool, Program
from engine.errors import ContinuationError
from engine.events import Observers, RunEvent
from engine.frames import Frame, Pending
from engine.tools import Deferred, ToolContext
from engine.waits import CALL_WAITS

log = logging.getLogger("callcc.run")
DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("callcc_depth", default=0)
"""How deep in sub-agents the current task runs (for indented progress logs)."""
if TYPE_CHECKING:
    from engine.journal import Journal

_TEMPLATE = re.compile(r"\{\{\s*args\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True, kw_only=True, slots=True)
class RunContext:
    """What every step of one run shares: the compiled spec and the run's id."""

    program: Program
    """The compiled spec."""
    run_id: str
    """The run's id, part of every tool's idempotency key."""
    journal: Journal | None = None
    """Where checkpoints go when the run is kept in a store."""
    observers: Observers = field(default_factory=Observers)
    """Who receives the run's events (`emit`)."""
    off_loop: bool = False
    """Run every sync tool on a worker thread, a lone one too (an async drive of a stored run:
    a task renews its lease, which a tool holding the event loop would starve)."""

    def emit(self, event: RunEvent) -> None:
        """Hand an event to the run's observers."""
        if self.observers:
            self.observers.emit(event)

    async def checkpoint(self, frame: Frame) -> None:
        """Keep `frame` in the run store, when the run is kept in one."""
        if self.journal is not None:
            await self.journal.checkpoint(frame)


@dataclass(frozen=True, slots=True)
class _Done:
    text: str


@dataclass(frozen=True, slots=True)
class _Wait:
    entry: Pending


@dataclass(frozen=True, slots=True)
class _Failed:
    reason: str
    entry: Pending | None = None
    """The failed sub-agent's entry, holding its frame, when the failure can be resumed."""


_Outcome = _Done | _Wait | _Failed


def classify(frame: Frame, agent: BoundAgent, call: dict[str, Any]) -> None:
    """Record a new call as refused (the model gets an error), gated (pending) or runnable."""
    call_id = call["id"]
    name = call["function"]["name"]
    tool = agent.tools.get(name)
    if tool is None:
        known = ", ".join(sorted(agent.tools)) or "none"
        _refuse(frame, call_id, f"error: unknown tool {name!r}; available tools: {known}")
        return
    arguments, problem = parse_arguments(tool, call["function"]["arguments"])
    if arguments is None:
        _refuse(frame, call_id, f"error: {problem}; call {name} again with valid arguments")
        return
    approval = tool.spec.approval
    if approval.required:
        prompt = approval_question(approval.prompt, name, arguments)
        _gate(frame, call_id, name, arguments, "approval", approval.decisions, prompt)
        say(frame, "%s waits for approval (%s)", name, call_id)
    elif name in agent.spec.suspend.before_tools:
        _gate(frame, call_id, name, arguments, "pause", CALL_WAITS["pause"], None)
        say(frame, "pauses before %s (%s)", name, call_id)
    else:
        frame.ledger[call_id] = "running"


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
    try:
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


def argument_problem(tool: BoundTool, arguments: dict[str, Any]) -> str | None:
    """What makes `arguments` violate the tool's parameters, or None."""
    if tool.quick_check(arguments) or tool.validator.is_valid(arguments):
        return None
    error = best_match(tool.validator.iter_errors(arguments))
    where = "/".join(str(p) for p in error.absolute_path)
    return f"the arguments do not match the parameters of {tool.name}" + (
        f" at {where}: {error.message}" if where else f": {error.message}"
    )


def approval_question(template: str | None, tool: str, arguments: dict[str, Any]) -> str:
    """What the reviewer of a call is asked: the spec's `approval.prompt` filled in, or a
    default question naming the tool when the spec gives none."""
    if template:
        return render_prompt(template, arguments)
    return f"Run {tool} with these arguments?"


def render_prompt(template: str, arguments: dict[str, Any]) -> str:
    """Fill `{{ args.NAME }}` with argument values (nothing else is ever evaluated)."""
    return _TEMPLATE.sub(lambda m: _short(arguments.get(m.group(1), "")), template)


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def say(frame: Frame, message: str, *args: Any) -> None:
    """Log one progress line for `frame`, indented by sub-agent depth."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s%s: " + message, "  " * DEPTH.get(), frame.agent, *args)


def refuse_malformed(frame: Frame, call_id: str, problem: str) -> None:
    """Answer a call the server sent malformed (see `ToolCall.problem`) with the error."""
    _refuse(frame, call_id, f"error: {problem}; nothing was run, call the tool again")


def _refuse(frame: Frame, call_id: str, message: str) -> None:
    say(frame, "call %s refused: %s", call_id, message)
    frame.ledger[call_id] = "failed"
    frame.results[call_id] = message


def _gate(
    frame: Frame,
    call_id: str,
    tool: str,
    arguments: dict[str, Any],
    reason: Any,
    decisions: tuple[str, ...],
    prompt: str | None,
) -> None:
    frame.ledger[call_id] = "pending"
    frame.pending.append(
        Pending.for_call(
            id=call_id,
            reason=reason,
            tool=tool,
            arguments=arguments,
            decisions=decisions,
            prompt=prompt,
        )
    )


async def run_calls(
    frame: Frame, agent: BoundAgent, calls: list[dict[str, Any]], ctx: RunContext
) -> tuple[str | None, bool]:
    """Run every call that may run now; return why the run must fail (if it must) and whether
    a result was recorded that no checkpoint holds yet (a lone call run inline)."""
    entries = {p.id: p for p in frame.pending if p.tool is not None}
    jobs: list[tuple[str, Awaitable[_Outcome] | None, BoundTool, dict[str, Any]]] = []
    for call in calls:
        call_id = call["id"]
        if call_id in frame.results:
            continue
        entry = entries.get(call_id)
        if entry is None:
            if frame.ledger.get(call_id) == "running":  # classified: its arguments are valid
                tool = agent.tools[call["function"]["name"]]
                text = call["function"]["arguments"]
                jobs.append((call_id, None, tool, json.loads(text) if text.strip() else {}))
            continue
        tool = agent.tools[entry.tool or ""]
        if entry.reason == "subagent":
            assert entry.child is not None
            frame.pending.remove(entry)
            jobs.append((call_id, _child(entry.child, entry, ctx), tool, entry.arguments or {}))
            continue
        decision = entry.decision
        if decision is None:
            continue
        frame.pending.remove(entry)
        say(frame, "%s (%s) decided: %s", entry.tool, call_id, decision.kind)
        if decision.kind == "reject":
            frame.ledger[call_id] = "rejected"
            frame.results[call_id] = f"rejected: the call was not executed ({decision.reason})"
        elif decision.kind == "answer":
            frame.ledger[call_id] = "done"
            frame.results[call_id] = _short(decision.result)
        elif decision.kind == "edit":
            _rewrite_arguments(frame, call_id, decision.arguments)
            jobs.append((call_id, None, tool, decision.arguments))
        elif decision.kind in ("approve", "resume"):  # run it (again, for an `error` entry)
            jobs.append((call_id, None, tool, entry.arguments or {}))
        else:  # the document check refuses these first; never run a call on them
            raise ContinuationError(
                f"decision {decision.kind!r} cannot apply to the call {call_id!r}"
            )
    if not jobs:
        return None, False
    durable = ctx.journal is not None
    for call_id, _, _, _ in jobs:
        frame.ledger[call_id] = "running"
    if durable:  # mark them running before any side effect happens
        await ctx.checkpoint(frame)
    inline = len(jobs) == 1

    async def settle_one(call_id: str, job: Awaitable[_Outcome]) -> str | None:
        outcome = await job
        if isinstance(outcome, _Done):
            frame.ledger[call_id] = "done"
            frame.results[call_id] = outcome.text
        elif isinstance(outcome, _Wait):
            frame.ledger[call_id] = "failed" if outcome.entry.reason == "error" else "pending"
            frame.pending.append(outcome.entry)
        elif outcome.entry is not None:  # a sub-agent failed where it can resume: keep it
            frame.ledger[call_id] = "pending"
            frame.pending.append(outcome.entry)
            return outcome.reason
        else:
            frame.ledger[call_id] = "failed"
            return outcome.reason
        if durable and not inline:  # each result is kept the moment it exists;
            await ctx.checkpoint(frame)  # a lone inline call's result is kept by the step's end
        return None

    jobs_now = [
        settle_one(
            call_id, job if job is not None else _execute(frame, tool, call_id, args, ctx, inline)
        )
        for call_id, job, tool, args in jobs
    ]
    failures = [await jobs_now[0]] if inline else list(await asyncio.gather(*jobs_now))
    order = {call["id"]: i for i, call in enumerate(calls)}
    frame.pending.sort(key=lambda p: order.get(p.id, -1))
    return next((f for f in failures if f is not None), None), inline


async def _execute(
    frame: Frame,
    tool: BoundTool,
    call_id: str,
    arguments: dict[str, Any],
    ctx: RunContext,
    inline: bool,
) -> _Outcome:
    spec = tool.spec
    if spec.kind == "external":
        return _Wait(_external(call_id, tool, arguments, prompt=spec.description))
    if spec.kind == "agent":
        say(frame, "starts sub-agent %s (%s)", spec.agent, call_id)
        child = Frame(
            agent=spec.agent,
            messages=[{"role": "user", "content": _request(tool, arguments)}],
            path=f"{frame.path}/{call_id}",
        )
        entry = Pending.for_call(id=call_id, reason="subagent", tool=tool.name, arguments=arguments)
        return await _child(child, entry, ctx)
    return await _python(frame, tool, call_id, arguments, ctx, inline)


def _request(tool: BoundTool, arguments: dict[str, Any]) -> str:
    if tool.parameters is AGENT_TOOL_PARAMETERS:
        return str(arguments.get("request", ""))
    return json.dumps(arguments, ensure_ascii=False)


async def _child(child: Frame, entry: Pending, ctx: RunContext) -> _Outcome:
    from engine.loop import Finish, Suspend, drive

    token = DEPTH.set(DEPTH.get() + 1)
    try:
        task = asyncio.ensure_future(drive(child, ctx))  # a task: no stack per level
    finally:
        DEPTH.reset(token)
    outcome = await task
    if isinstance(outcome, Finish):
        return _Done(outcome.output)
    if isinstance(outcome, Suspend):
        entry.child = child
        entry.decision = None
        return _Wait(entry)
    reason = f"sub-agent {child.agent!r} (call {entry.id}) failed: {outcome.reason}"
    if outcome.resumable:  # the child recorded where to resume: keep its frame
        entry.child = child
        entry.decision = None
        return _Failed(reason, entry)
    return _Failed(reason)


async def _python(
    frame: Frame,
    tool: BoundTool,
    call_id: str,
    arguments: dict[str, Any],
    ctx: RunContext,
    inline: bool,
) -> _Outcome:
    assert tool.func is not None
    kwargs = dict(arguments)
    if tool.context_param:
        kwargs[tool.context_param] = ToolContext(
            run_id=ctx.run_id, call_id=call_id, agent=frame.agent, tool=tool.name
        )
    timeout = tool.spec.timeout
    say(frame, "runs %s (%s)", tool.name, call_id)
    try:
        if tool.is_async:
            value = await asyncio.wait_for(tool.func(**kwargs), timeout)
        elif inline and timeout is None and not ctx.off_loop:
            value = tool.func(**kwargs)
        else:
            value = await asyncio.wait_for(asyncio.to_thread(tool.func, **kwargs), timeout)
    except Deferred as exc:
        return _Wait(_external(call_id, tool, arguments, detail=exc.reason or None))
    except TimeoutError:
        return _Wait(_error(call_id, tool, arguments, f"timed out after {timeout:g} s"))
    except Exception as exc:  # a tool's failure must not lose the run: ask a person
        return _Wait(_error(call_id, tool, arguments, f"{type(exc).__name__}: {exc}"))
    return _Done(tool_result_text(value))


def _external(
    call_id: str,
    tool: BoundTool,
    arguments: dict[str, Any],
    *,
    prompt: str | None = None,
    detail: str | None = None,
) -> Pending:
    """The call waits for a result from outside (`answer`), or to be `reject`ed."""
    return Pending.for_call(
        id=call_id,
        reason="external",
        tool=tool.name,
        arguments=arguments,
        prompt=prompt,
        detail=detail,
    )


def _error(call_id: str, tool: BoundTool, arguments: dict[str, Any], message: str) -> Pending:
    return Pending.for_call(
        id=call_id,
        reason="error",
        tool=tool.name,
        arguments=arguments,
        detail=f"tool {tool.name} failed: {message}; approve to retry, answer to supply "
        "the result, reject to skip",
    )


def _rewrite_arguments(frame: Frame, call_id: str, arguments: dict[str, Any]) -> None:
    """Make the model see the edited call: replace (never mutate) the assistant message."""
    message = frame.messages[-1]
    text = json.dumps(arguments, ensure_ascii=False)
    calls = [
        {**c, "function": {**c["function"], "arguments": text}} if c["id"] == call_id else c
        for c in message["tool_calls"]
    ]
    frame.messages[-1] = {**message, "tool_calls": calls}


def tool_result_text(value: Any) -> str:
    """What the model reads for a tool's return value: text as is, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
