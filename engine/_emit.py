"""The run events the loop and the tooling emit, built from their own state.

Every function here builds one event and hands it to `ctx.emit`; callers call them only
`if ctx.observers:`, so a run nobody observes builds nothing. Kept apart so the loop's phases
read as what they do, not as what they report.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from engine.compile import BoundAgent
from engine.events import (
    AgentEnded,
    AgentStarted,
    DecisionApplied,
    EntryAdded,
    GrantApplied,
    MessagesView,
    ModelCalled,
    ModelReplied,
    PendingInfo,
    PolicyAllowed,
    ToolErrorToModel,
    ToolFinished,
    ToolStarted,
    read_only,
)
from engine.frames import Frame, Pending
from engine.grants import Grant
from engine.models.base import ModelReply, model_identity
from engine.runners.base import Call, Done, Failure, Outcome
from engine.steps import End, Finish, Suspend
from engine.usage import reply_tokens

if TYPE_CHECKING:  # annotations only: the tooling imports this module
    from engine.tooling import RunContext

Status = Literal["done", "failed", "rejected"]


def caller(frame: Frame) -> str | None:
    """The id of the call that started `frame` (None for the entry agent)."""
    return frame.path.rpartition("/")[2] or None


def pending_info(frame: Frame, entry: Pending) -> PendingInfo:
    """The event view of `frame`'s entry."""
    return PendingInfo(
        path=frame.entry_path(entry.id),
        id=entry.id,
        reason=entry.reason,
        tool=entry.tool,
        detail=entry.detail,
        prompt=entry.prompt,
        arguments=read_only(entry.arguments),
        decisions=entry.decisions,
        why=None if entry.policy is None else entry.policy.line(),
    )


def policy_allowed(
    frame: Frame, call_id: str, tool: str, when: str, arguments: dict[str, Any], ctx: RunContext
) -> None:
    ctx.emit(
        PolicyAllowed(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=call_id,
            tool=tool,
            when=when,
            arguments=read_only(arguments),
        )
    )


def grant_applied(
    frame: Frame, call_id: str, tool: str, grant: Grant, arguments: dict[str, Any], ctx: RunContext
) -> None:
    ctx.emit(
        GrantApplied(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=call_id,
            tool=tool,
            grant=grant.kind,
            where=grant.where,
            source=grant.source,
            arguments=read_only(arguments),
        )
    )


def agent_started(frame: Frame, ctx: RunContext) -> None:
    ctx.emit(
        AgentStarted(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=caller(frame),
            agent=frame.agent,
        )
    )


def agent_ended(frame: Frame, result: End, ctx: RunContext) -> None:
    status: Literal["finished", "stopped", "suspended", "failed"]
    if isinstance(result, Finish):
        status = "stopped" if result.stopped else "finished"
    else:
        status = "suspended" if isinstance(result, Suspend) else "failed"
    ctx.emit(
        AgentEnded(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=caller(frame),
            agent=frame.agent,
            status=status,
        )
    )


def model_called(frame: Frame, agent: BoundAgent, ctx: RunContext) -> float:
    """Emit `ModelCalled`; return when the request goes out (for `model_replied`)."""
    name, provider = model_identity(agent.model)
    ctx.emit(
        ModelCalled(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=caller(frame),
            agent=frame.agent,
            model=name,
            provider=provider,
            turn=frame.turns + 1,
            messages=MessagesView(frame.messages),
        )
    )
    return time.perf_counter()


def model_replied(
    frame: Frame,
    agent: BoundAgent,
    ctx: RunContext,
    sent: float,
    reply: ModelReply | None,
    error: str | None = None,
) -> None:
    """Emit `ModelReplied` for `reply`, recorded as the frame's last message (or for the
    request's `error`)."""
    latency = time.perf_counter() - sent
    name, provider = model_identity(agent.model)
    tokens = reply_tokens(reply.usage) if reply is not None and reply.usage else None
    calls = (frame.messages[-1].get("tool_calls") or ()) if reply is not None else ()
    ctx.emit(
        ModelReplied(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=caller(frame),
            agent=frame.agent,
            model=name,
            provider=provider,
            turn=frame.turns if reply is not None else frame.turns + 1,
            latency=latency,
            input_tokens=tokens[0] if tokens else None,
            output_tokens=tokens[1] if tokens else None,
            finish_reason=reply.finish_reason if reply is not None else None,
            tool_calls=tuple(c["id"] for c in calls),
            content=reply.content if reply is not None else None,
            error=error,
            tools=tuple(c["function"]["name"] for c in calls),
        )
    )


def entry_added(frame: Frame, entry: Pending, ctx: RunContext) -> None:
    ctx.emit(
        EntryAdded(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=entry.id if entry.tool is not None else None,
            entry=pending_info(frame, entry),
        )
    )


def decision_applied(frame: Frame, entry: Pending, ctx: RunContext) -> None:
    assert entry.decision is not None
    ctx.emit(
        DecisionApplied(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=entry.id if entry.tool is not None else None,
            entry=entry.id,
            decision=entry.decision.kind,
            tool=entry.tool,
        )
    )


def tool_started(call: Call, carries_on: bool, ctx: RunContext) -> None:
    tool = call.tool
    ctx.emit(
        ToolStarted(
            run_id=ctx.run_id,
            path=call.frame.names,
            invocation=call.frame.invocation,
            call_id=call.id,
            tool=tool.name,
            tool_kind=tool.spec.kind,
            arguments=read_only(call.arguments),
            carries_on=carries_on,
            sub_agent=getattr(tool.spec, "agent", None),
        )
    )


def tool_finished(
    frame: Frame,
    call_id: str,
    tool: str,
    status: Status,
    result: str | None,
    ctx: RunContext,
    *,
    refused: bool = False,
) -> None:
    ctx.emit(
        ToolFinished(
            run_id=ctx.run_id,
            path=frame.names,
            invocation=frame.invocation,
            call_id=call_id,
            tool=tool,
            status=status,
            result=result,
            refused=refused,
        )
    )


def tool_outcome(call: Call, outcome: Outcome, ctx: RunContext) -> None:
    """`ToolFinished` for a call with an outcome, `EntryAdded` for a call that now waits on
    a person or the outside (a suspended sub-agent's own entries were announced already)."""
    frame, name = call.frame, call.tool.name
    if isinstance(outcome, Done):
        if outcome.to_model:
            ctx.emit(
                ToolErrorToModel(
                    run_id=ctx.run_id,
                    path=frame.names,
                    invocation=frame.invocation,
                    call_id=call.id,
                    tool=name,
                    error=outcome.text,
                    retry=outcome.to_model == "retry",
                )
            )
        tool_finished(frame, call.id, name, outcome.status, outcome.text, ctx)
    elif isinstance(outcome, Failure):
        tool_finished(frame, call.id, name, "failed", outcome.reason, ctx)
    elif outcome.entry.reason != "subagent":
        if outcome.entry.reason == "error":
            tool_finished(frame, call.id, name, "failed", outcome.entry.detail, ctx)
        entry_added(frame, outcome.entry, ctx)
