"""`kind: python` tools: call the function (awaited, in a worker thread, or inline).

A single sync call of a turn with no timeout runs inline, the cheapest way; concurrent or
timed sync calls run in a worker thread. What the function raises decides what happens next:
`Deferred` makes the call wait for an external result, `NeedsApproval` for a person's approval
(after which it runs again, with `ToolContext.approved`), `RetryWithModel` hands the model its
message; any other exception, or the timeout, is handled as the tool's `on_error` says (the
model reads the error, a person decides on an `error` entry, or the run fails), except that
the timeout of a tool that is not idempotent never goes to the model (`timed_out`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from engine._canonical import json_problem
from engine.runners.base import (
    Call,
    Done,
    Failure,
    Outcome,
    Runner,
    Wait,
    approval_entry,
    argument_problem,
    error_entry,
    external_entry,
    register,
    rejected_text,
    tool_result_text,
)
from engine.spec.model import PythonTool
from engine.tools import Deferred, NeedsApproval, RetryWithModel, ToolContext

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
                run_id=ctx.run_id,
                call_id=call.id,
                agent=call.frame.agent,
                tool=tool.name,
                approved=call.id in call.frame.approved,
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
            if not isinstance(exc.reason, str):  # it goes into the document: text only
                return tool_error(call, f"{_not_text('Deferred reason', exc.reason)}")
            return Wait(external_entry(call, detail=exc.reason or None))
        except NeedsApproval as exc:
            return await self._asked(call, exc, ctx)
        except RetryWithModel as exc:
            return Done(tool_result_text(exc.message), failed=True, to_model="retry")
        except TimeoutError:
            return timed_out(call, f"timed out after {timeout:g} s")
        except Exception as exc:  # a tool's failure must not lose the run: its on_error says
            return tool_error(call, f"{type(exc).__name__}: {exc}")
        return Done(tool_result_text(value))

    async def _asked(self, call: Call, request: NeedsApproval, ctx: RunContext) -> Outcome:
        """A tool that asks: a run-scoped grant covering the call answers it (an approve runs
        it again, approved; a reject rejects it), else a person does (`asked`). A grant
        covers only a request about the call's own arguments."""
        own = request.arguments is None or request.arguments == call.arguments
        grant = None
        if own and call.id not in call.frame.approved:
            grant = ctx.granted(call.frame, call.id, call.tool.name, call.arguments)
        if grant is None:
            return asked(call, request, ctx)
        if grant.kind == "reject":
            return Done(rejected_text(grant.reason), rejected=True)
        call.frame.approved[call.id] = grant.fingerprint
        return await self.run(call, ctx)


def asked(call: Call, request: NeedsApproval, ctx: RunContext) -> Outcome:
    """The call waits for a person's approval, as the tool asked: the arguments it will act
    on (checked against its parameters), its prompt, why it asks. A tool that asks again
    after its call was approved is a fault of the tool, never a second question."""
    name = call.tool.name
    if call.id in call.frame.approved:
        return tool_error(
            call,
            f"{name} raised NeedsApproval for a call a person approved already; a tool that "
            "asks must take a ToolContext parameter and ask only while `ctx.approved` is false",
        )
    for field, value in (("prompt", request.prompt), ("reason", request.reason)):
        if value is not None and not isinstance(value, str):  # the document holds text only
            return tool_error(call, _not_text(f"NeedsApproval {field}", value))
    arguments = call.arguments if request.arguments is None else request.arguments
    problem = _argument_problem(call, arguments)
    if problem is not None:
        return tool_error(call, f"{name} raised NeedsApproval with arguments that {problem}")
    detail = f"{name} asked for approval itself" + (f": {request.reason}" if request.reason else "")
    return Wait(
        approval_entry(call, ctx, arguments=arguments, prompt=request.prompt, detail=detail)
    )


def _not_text(what: str, value: object) -> str:
    return f"the tool raised a {what} of type {type(value).__name__}, not text"


def _argument_problem(call: Call, arguments: object) -> str | None:
    if not isinstance(arguments, dict):
        return f"are a {type(arguments).__name__}, not a JSON object"
    plain = json_problem(arguments)
    if plain is not None:
        return f"are not plain JSON ({plain[0] or 'the value'} {plain[1]})"
    problem = argument_problem(call.tool, arguments)
    return None if problem is None else f"do not fit: {problem}"


def timed_out(call: Call, message: str) -> Outcome:
    """A timeout is a tool error, with one exception: a tool that is not idempotent may
    still be running, or have taken effect, so the model is not asked to call it again (it
    might do it twice): a person decides instead, unless `on_error: fail` ends the run."""
    spec = call.tool.spec
    if isinstance(spec, PythonTool) and spec.on_error == "model" and not spec.idempotent:
        return Wait(error_entry(call, f"{message}; it is not idempotent and may have taken effect"))
    return tool_error(call, message)


def tool_error(call: Call, message: str) -> Outcome:
    """What a tool's error does, by the tool's `on_error`: the model reads it (`model`), a
    person decides (`suspend`: an `error` entry), or the run fails (`fail`)."""
    spec = call.tool.spec
    policy = spec.on_error if isinstance(spec, PythonTool) else "suspend"
    name = call.tool.name
    if policy == "model":
        return Done(
            f"error: {name} failed: {message}; correct the arguments and call it again, "
            "or go on without it",
            failed=True,
            to_model="error",
        )
    if policy == "fail":
        return Failure(f"tool {name} failed: {message} (on_error: fail)")
    return Wait(error_entry(call, message))


register("python", PythonRunner())
