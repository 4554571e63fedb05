"""`kind: agent` tools: a sub-agent, driven in a frame of its own by the loop's driver.

The driver comes in with the run's context (`ctx.drive`), so this module imports no loop.
A child is awaited in place, and every `TASK_EVERY`-th level of nesting is driven as a task of its
own, so any nesting depth costs a bounded Python stack while a shallow nest costs no event-loop
round trip per sub-agent (a task takes two, more than a whole scripted model turn). A child
that suspends leaves a `subagent` entry holding its frame; `carry_on` drives it again after a
resume or a recovery.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from engine.compile import AGENT_TOOL_PARAMETERS, BoundTool
from engine.frames import Pending
from engine.runners.base import Call, Done, Failure, Outcome, Runner, Wait, register
from engine.spec.model import AgentTool
from engine.steps import Finish, Suspend
from engine.usage import fold as fold_usage

if TYPE_CHECKING:
    from engine.tooling import RunContext


TASK_EVERY = 8
"""Every this-many levels of sub-agent nesting, the child runs as a task (about six Python
frames a level, so a task's stack stays far below the recursion limit at any depth)."""


class AgentRunner(Runner):
    """Runs sub-agent tools."""

    async def run(self, call: Call, ctx: RunContext) -> Outcome:
        """Start the sub-agent on the call's request and drive it."""
        spec = call.tool.spec
        assert isinstance(spec, AgentTool)
        message = {"role": "user", "content": _request(call.tool, call.arguments)}
        entry = Pending.for_call(
            id=call.id,
            reason="subagent",
            tool=call.tool.name,
            arguments=call.arguments,
            child=call.frame.child(spec.agent, call.id, [message]),
        )
        return await self.carry_on(call, entry, ctx)

    async def carry_on(self, call: Call, entry: Pending, ctx: RunContext) -> Outcome:
        """Drive the child frame `entry` holds until it finishes, fails or suspends."""
        child = entry.child
        assert child is not None
        driving = ctx.drive(child, ctx)
        if child.path.count("/") % TASK_EVERY:
            outcome = await driving
        else:  # a task: the stack of the levels above it ends here
            outcome = await asyncio.ensure_future(driving)
        if isinstance(outcome, Finish):
            fold_usage(call.frame, child)  # the child's frame is dropped: its tokens stay counted
            return Done(outcome.output)
        entry.decision = None
        if isinstance(outcome, Suspend):
            return Wait(entry)
        reason = f"sub-agent {child.agent!r} (call {entry.id}) failed: {outcome.reason}"
        if not outcome.resumable:
            fold_usage(call.frame, child)
        # a child that recorded where to resume keeps its frame
        return Failure(reason, entry if outcome.resumable else None)


def _request(tool: BoundTool, arguments: dict[str, Any]) -> str:
    if tool.parameters is AGENT_TOOL_PARAMETERS:
        return str(arguments.get("request", ""))
    return json.dumps(arguments, ensure_ascii=False)


register("agent", AgentRunner())
