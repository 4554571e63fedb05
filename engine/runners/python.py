"""`kind: python` tools: call the function (awaited, in a worker thread, or inline).

A single sync call of a turn with no timeout runs inline, the cheapest way; concurrent or
timed sync calls run in a worker thread. `Deferred` makes the call wait for an external
result; any other exception, or the timeout, makes it wait for a person (an `error` entry).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from engine.runners.base import (
    Call,
    Done,
    Outcome,
    Runner,
    Wait,
    error_entry,
    external_entry,
    register,
    tool_result_text,
)
from engine.tools import Deferred, ToolContext

if TYPE_CHECKING:
    from engine.tooling import RunContext


class PythonRunner(Runner):
    """Runs python tools."""

    async def run(self, call: Call, ctx: RunContext) -> Outcome:
        """Call the tool's function with the call's arguments (and its `ToolContext`)."""
        tool = call.tool
        assert tool.func is not None
        kwargs = dict(call.arguments)
        if tool.context_param:
            kwargs[tool.context_param] = ToolContext(
                run_id=ctx.run_id, call_id=call.id, agent=call.frame.agent, tool=tool.name
            )
        timeout = tool.spec.timeout
        try:
            if tool.is_async:
                value = await asyncio.wait_for(tool.func(**kwargs), timeout)
            elif call.inline and timeout is None and not ctx.off_loop:
                value = tool.func(**kwargs)
            else:
                value = await asyncio.wait_for(asyncio.to_thread(tool.func, **kwargs), timeout)
        except Deferred as exc:
            return Wait(external_entry(call, detail=exc.reason or None))
        except TimeoutError:
            return Wait(error_entry(call, f"timed out after {timeout:g} s"))
        except Exception as exc:  # a tool's failure must not lose the run: ask a person
            return Wait(error_entry(call, f"{type(exc).__name__}: {exc}"))
        return Done(tool_result_text(value))


register("python", PythonRunner())
