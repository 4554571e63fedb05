"""The runner interface, and the one registry that maps a tool kind to its runner.

A runner executes the tool calls of one kind (`python`, `agent`, `external`, `mcp`). The
loop sorts a turn's calls (refused, gated, runnable) and applies decisions the same way for
every kind; once a call may run, `engine.tooling` looks its kind up here and awaits the
runner. A new kind is one module that subclasses `Runner` and calls
`register(kind, runner)` when imported (`engine.runners` imports the built-in ones), never
another branch in the loop.

The interface:

- `await runner.run(call, ctx) -> Outcome`: run `call` (a `Call`: the calling frame, the
  bound tool, the call id, its validated arguments, and `inline`, true when it is the only
  call of its turn, so a sync function may run on the event loop's own thread). `ctx` is the
  run's `RunContext`: its id, its observers, and `ctx.drive`, the loop's driver, for a runner
  that drives frames of its own (a sub-agent).
- `await runner.carry_on(call, entry, ctx) -> Outcome`: go on with a call that waits inside
  the runner (a `Pending` entry of reason `subagent`, holding the child's frame) after a
  resume or a recovery. Runners whose calls never wait inside them keep the default, which
  refuses.
- The outcome says what happened, and the tooling records it in the frame and emits the
  events: `Done(text)` (the result the model reads; `Done(text, failed=True)` a failure the
  model reads, such as an MCP tool's `isError`; `to_model` marks a tool's error handed
  to the model, `on_error: model` or `RetryWithModel`), `Wait(entry)` (the call now waits on a
  `Pending` entry: an external result, an `error` entry a person decides on, a suspended
  sub-agent), or `Failure(reason, entry)` (the run must fail; `entry`, when given, holds
  where a `resume` can go on).
- A runner keeps no state between calls: everything a resume in another process needs is in
  the entries it returns. It raises only for bugs; a tool's own failure is an outcome.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from jsonschema.exceptions import best_match

from engine._frozen import quick_init
from engine.compile import BoundTool
from engine.errors import ContinuationError, UsageError
from engine.frames import Frame, Pending, PolicyWhy

if TYPE_CHECKING:  # annotations only: the tooling imports this registry
    from engine.tooling import RunContext

__all__ = [
    "Call",
    "Done",
    "Failure",
    "Outcome",
    "Runner",
    "Wait",
    "approval_entry",
    "approval_question",
    "argument_fault",
    "argument_problem",
    "error_entry",
    "external_entry",
    "register",
    "rejected_text",
    "render_prompt",
    "runner_for",
    "short_text",
    "tool_result_text",
]

_TEMPLATE = re.compile(r"\{\{\s*args\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(kw_only=True, slots=True)
class Call:
    """One tool call a runner runs."""

    frame: Frame
    """The calling agent's frame."""
    tool: BoundTool
    """The tool called."""
    id: str
    """The call's id."""
    arguments: dict[str, Any]
    """Its arguments, validated against the tool's parameters (or a reviewer's edit)."""
    inline: bool = False
    """True when it is the only call of its turn: a sync function may run inline."""


@quick_init
@dataclass(frozen=True, slots=True)
class Done:
    """The call has its result."""

    text: str
    """What the model reads."""
    failed: bool = False
    """True when the result reports the tool's own failure (an MCP `isError`): the ledger
    marks the call `failed` and the model reads why."""
    to_model: Literal["", "error", "retry"] = ""
    """Set when `text` is a python tool's error handed to the model so it can correct itself
    (`error`: `on_error: model`; `retry`: the tool raised `RetryWithModel`): a
    `tool_error_to_model` event says so."""
    rejected: bool = False
    """True when a reject-grant answered the call instead of running it (`engine.grants`):
    the ledger marks it `rejected`."""

    @property
    def status(self) -> Literal["done", "failed", "rejected"]:
        """The call's ledger status."""
        return "rejected" if self.rejected else "failed" if self.failed else "done"


@quick_init
@dataclass(frozen=True, slots=True)
class Wait:
    """The call waits on `entry`."""

    entry: Pending


@quick_init
@dataclass(frozen=True, slots=True)
class Failure:
    """The run must fail."""

    reason: str
    entry: Pending | None = None
    """The failed sub-agent's entry, holding its frame, when the failure can be resumed."""


Outcome: TypeAlias = Done | Wait | Failure


class Runner:
    """Runs the calls of one tool kind; subclass it and `register` an instance."""

    async def run(self, call: Call, ctx: RunContext) -> Outcome:
        """Run `call`."""
        raise NotImplementedError

    async def carry_on(self, call: Call, entry: Pending, ctx: RunContext) -> Outcome:
        """Go on with `call`, which waits inside this runner on `entry`."""
        raise ContinuationError(
            f"the call {call.id!r} of tool {call.tool.name!r} (kind {call.tool.spec.kind}) "
            "cannot wait on a sub-agent; the document's entry is wrong"
        )


_RUNNERS: dict[str, Runner] = {}


def register(kind: str, runner: Runner) -> None:
    """Make `runner` run the tools of `kind` (replacing any runner registered before)."""
    _RUNNERS[kind] = runner


def runner_for(kind: str) -> Runner:
    """The runner of `kind`, or a `UsageError` naming the kinds that have one."""
    try:
        return _RUNNERS[kind]
    except KeyError:
        known = ", ".join(sorted(_RUNNERS)) or "none"
        raise UsageError(
            f"no runner for tools of kind {kind!r} (kinds with a runner: {known}); import the "
            "module that registers it"
        ) from None


def external_entry(call: Call, *, prompt: str | None = None, detail: str | None = None) -> Pending:
    """The call waits for a result from outside (`answer`), or to be `reject`ed."""
    return Pending.for_call(
        id=call.id,
        reason="external",
        tool=call.tool.name,
        arguments=call.arguments,
        prompt=prompt,
        detail=detail,
    )


def approval_entry(
    call: Call,
    ctx: RunContext,
    *,
    arguments: dict[str, Any],
    text: str | None = None,
    prompt: str | None = None,
    detail: str | None = None,
    policy: PolicyWhy | None = None,
) -> Pending:
    """The call waits for a person's approval, with the decisions, approvers and expiry its
    tool's `approval` gives (the spec's gate, or a tool that asked: `NeedsApproval`), and why
    when an `approval.when` condition made it wait."""
    approval = call.tool.spec.approval
    expires = approval.expires_after
    return Pending.for_call(
        id=call.id,
        reason="approval",
        tool=call.tool.name,
        arguments=arguments,
        decisions=approval.decisions,
        prompt=prompt or approval_question(approval.prompt, call.tool.name, arguments),
        text=text,
        expires_at=None if expires is None else ctx.clock() + expires,
        approvers=approval.approvers,
        detail=detail,
        policy=policy,
    )


def approval_question(template: str | None, tool: str, arguments: dict[str, Any]) -> str:
    """What the reviewer of a call is asked: the spec's `approval.prompt` filled in, or a
    default question naming the tool when the spec gives none."""
    if template:
        return render_prompt(template, arguments)
    return f"Run {tool} with these arguments?"


def render_prompt(template: str, arguments: dict[str, Any]) -> str:
    """Fill `{{ args.NAME }}` with argument values (nothing else is ever evaluated)."""
    return _TEMPLATE.sub(lambda m: short_text(arguments.get(m.group(1), "")), template)


def short_text(value: Any) -> str:
    """A value as a person or model reads it inline: text as is, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def rejected_text(reason: str | None) -> str:
    """What the model reads for a call rejected by a person or a reject-grant."""
    return f"rejected: the call was not executed ({reason})"


def error_entry(call: Call, message: str) -> Pending:
    """The call failed: a person retries it (`approve`), supplies its result, or skips it."""
    name = call.tool.name
    return Pending.for_call(
        id=call.id,
        reason="error",
        tool=name,
        arguments=call.arguments,
        detail=f"tool {name} failed: {message}; approve to retry, answer to supply "
        "the result, reject to skip",
    )


def argument_problem(tool: BoundTool, arguments: dict[str, Any]) -> str | None:
    """What makes `arguments` violate the tool's parameters, or None."""
    fault = argument_fault(tool, arguments)
    return None if fault is None else fault[0]


def argument_fault(tool: BoundTool, arguments: dict[str, Any]) -> tuple[str, str] | None:
    """What makes `arguments` violate the tool's parameters and the JSON pointer of the
    offending value inside them (`""`: the object as a whole), or None."""
    if tool.quick_check(arguments) or tool.validator.is_valid(arguments):
        return None
    error = best_match(tool.validator.iter_errors(arguments))
    where = "/".join(str(p) for p in error.absolute_path)
    pointer = "".join(
        "/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.absolute_path
    )
    problem = f"the arguments do not match the parameters of {tool.name}" + (
        f" at {where}: {error.message}" if where else f": {error.message}"
    )
    return problem, pointer


def tool_result_text(value: Any) -> str:
    """What the model reads for a tool's return value: text as is, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
