"""OpenTelemetry traces of runs, following the GenAI semantic conventions.

`SpanObserver` is a run observer (`engine.events`) that turns events into spans:
`invoke_agent {agent}` for each agent invocation (a sub-agent's nested under the
`execute_tool {tool}` span of the call that runs it), `chat {model}` for each model request,
`execute_tool {tool}` for each tool call. Every span carries `gen_ai.conversation.id` (the run
id); chat spans carry `gen_ai.provider.name`, `gen_ai.request.model` and the usage the server
reported (`gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`). Message contents, tool
arguments and results are recorded only when the user opts in with
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.

A suspension ends every open span with a `callcc.suspended` span event naming the reasons and
the pending entries. The context of the run's root span (W3C `traceparent` / `tracestate`,
nothing else: no exporter setting or credential) goes into the signed continuation as
`trace`; the drive that resumes it, in any process, days later, starts a new trace whose root
span links to it, so a trace viewer connects the halves.

Tracing is on when a tracer provider is configured globally (anything but OpenTelemetry's
default proxy), or when asked for: `Runtime(tracing=True)` or `CALLCC_TRACING=1`. Asked for
with no provider configured (the CLI, a script), `OTEL_TRACES_EXPORTER=console` prints each
span to stderr as it ends, through a provider of callcc's own (the global one is left alone).
Off, this module imports nothing of OpenTelemetry and the runtime has no observer: runs build
no events. This is the only module that imports `opentelemetry`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import UsageError
from engine.events import (
    AgentEnded,
    AgentStarted,
    DecisionApplied,
    EntryAdded,
    ModelCalled,
    ModelReplied,
    RunEvent,
    RunFailed,
    RunFinished,
    RunForked,
    RunResumed,
    RunStarted,
    RunSuspended,
    ToolFinished,
    ToolStarted,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Link, Span, Tracer

__all__ = ["CAPTURE_ENV", "TRACING_ENV", "SpanObserver", "observer"]

log = logging.getLogger("callcc")

TRACING_ENV = "CALLCC_TRACING"
"""Set to `1` (or `true`) to trace runs even without a tracer provider configured globally."""
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Set to `true` to record message contents, tool arguments and tool results on spans."""
EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
"""`console`: with tracing asked for and no provider configured, print spans to stderr."""
_YES = frozenset({"1", "true", "yes", "on"})
_REMEMBERED = 1_000
"""How many suspended runs' contexts are kept for the runtime to put in their documents."""


def observer(requested: bool | Any | None) -> SpanObserver | None:
    """The span observer for `Runtime(tracing=requested)`, or None when tracing is off.

    `False`: off. `True` (or `CALLCC_TRACING=1` when None): on, and OpenTelemetry must be
    installed. None: on when the application configured a tracer provider globally. A
    `TracerProvider`: on, with that provider rather than the global one."""
    if requested is False:
        return None
    if requested is not None and requested is not True:
        get_tracer = getattr(requested, "get_tracer", None)
        if get_tracer is None:
            raise UsageError(
                f"tracing must be True, False, None or a TracerProvider, not {requested!r}"
            )
        return SpanObserver(get_tracer("callcc", _version()))
    wanted = bool(requested) or os.environ.get(TRACING_ENV, "").strip().lower() in _YES
    if not wanted and not _provider_configured():
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        raise UsageError(
            "tracing needs OpenTelemetry, which is not installed: pip install 'callcc[otel]'"
            + ("" if requested else f" (or unset {TRACING_ENV})")
        ) from None
    if _provider_configured():
        return SpanObserver(trace.get_tracer("callcc", _version()))
    exporter = os.environ.get(EXPORTER_ENV, "").strip().lower()
    if exporter == "console":
        return SpanObserver(_console_provider().get_tracer("callcc", _version()))
    log.warning(
        "tracing is on but no tracer provider is configured, so the spans go nowhere: "
        "configure one with the OpenTelemetry SDK in your application%s, or set %s=console "
        "to print them to stderr",
        f" ({EXPORTER_ENV}={exporter} is not read by callcc itself)" if exporter else "",
        EXPORTER_ENV,
    )
    return SpanObserver(trace.get_tracer("callcc", _version()))


def _console_provider() -> Any:
    """A provider of callcc's own that prints every span to stderr as it ends."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        raise UsageError(
            f"{EXPORTER_ENV}=console needs the OpenTelemetry SDK, and only its API is "
            "installed: pip install 'callcc[otel]'"
        ) from None

    service = os.environ.get("OTEL_SERVICE_NAME") or "callcc"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    return provider


def _provider_configured() -> bool:
    """True when the application set a tracer provider (without importing OpenTelemetry:
    an application that configured one has imported it already)."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return False
    provider = api.get_tracer_provider()
    return not isinstance(provider, api.ProxyTracerProvider | api.NoOpTracerProvider)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("callcc")
    except PackageNotFoundError:  # pragma: no cover - a source checkout that is not installed
        return "0"


@dataclass(eq=False, slots=True)
class _Invocation:
    """One agent invocation's open spans."""

    run: _Run
    key: str
    """The events' `invocation` (`hr_agent/account_agent@call_hr_1`)."""
    span: Span
    tools: dict[str, Span] = field(default_factory=dict)
    """Open `execute_tool` spans by call id."""
    chat: Span | None = None
    """The open `chat` span, while a model request is out."""
    ended: bool = False


@dataclass(eq=False, slots=True)
class _Run:
    """One drive of a run in this process."""

    run_id: str
    links: list[Link] = field(default_factory=list)
    """Links for the root span: the context the suspended half of the run recorded."""
    resumed: bool = False
    recovered: bool = False
    root: _Invocation | None = None
    invocations: list[_Invocation] = field(default_factory=list)
    """Every invocation this drive traced, in the order they started."""
    open: dict[str, _Invocation] = field(default_factory=dict)
    """The invocations still stepping, by key."""
    context_taken: bool = False
    """True once the runtime took the root's context for the run's document."""


def _key(event: RunEvent) -> str:
    """Which invocation an event concerns (its `path` from an emitter that sets no
    `invocation`, where fan-outs cannot be told apart)."""
    return event.invocation or event.path


class SpanObserver:
    """Turns a runtime's run events into OpenTelemetry spans (see the module docstring)."""

    def __init__(self, tracer: Tracer, *, capture_content: bool | None = None) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._api = trace
        self._propagator = TraceContextTextMapPropagator()
        self.capture_content = (
            os.environ.get(CAPTURE_ENV, "").strip().lower() in _YES
            if capture_content is None
            else capture_content
        )
        """Whether message contents, tool arguments and results are recorded."""
        self._runs: dict[str, _Run] = {}
        self._contexts: dict[str, dict[str, str]] = {}
        self._handlers: dict[type[RunEvent], Callable[[Any], None]] = {
            RunStarted: self._run_started,
            RunForked: self._run_started,  # a new run, whose history another one made
            RunResumed: self._run_resumed,
            AgentStarted: self._agent_started,
            AgentEnded: self._agent_ended,
            ModelCalled: self._model_called,
            ModelReplied: self._model_replied,
            ToolStarted: self._tool_started,
            ToolFinished: self._tool_finished,
            DecisionApplied: self._decision_applied,
            EntryAdded: self._entry_added,
            RunSuspended: self._run_suspended,
            RunFinished: self._run_ended,
            RunFailed: self._run_ended,
        }

    def on_event(self, event: RunEvent) -> None:
        """Open, annotate or end the spans `event` concerns."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def context_of(self, run_id: str) -> dict[str, str] | None:
        """The W3C trace context of the run's root span in this process (`traceparent`,
        `tracestate`), for the continuation the run suspends with; None when not traced."""
        run = self._runs.get(run_id)
        if run is None or run.root is None:
            return self._contexts.pop(run_id, None)
        run.context_taken = True
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._api.set_span_in_context(run.root.span))
        return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate") and v} or (
            None
        )

    # -- runs --------------------------------------------------------------------------------

    def _run_started(self, event: RunStarted | RunForked) -> None:
        self._runs[event.run_id] = _Run(run_id=event.run_id)

    def _run_resumed(self, event: RunResumed) -> None:
        run = _Run(run_id=event.run_id, resumed=True, recovered=event.recovered)
        if event.trace:
            from opentelemetry.trace import Link

            earlier = self._api.get_current_span(self._propagator.extract(dict(event.trace)))
            context = earlier.get_span_context()
            if context.is_valid:
                run.links.append(Link(context, {"callcc.link": "suspended here"}))
        self._runs[event.run_id] = run

    def _run_suspended(self, event: RunSuspended) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        taken = run.context_taken
        context = self.context_of(event.run_id)
        self._runs.pop(event.run_id)
        if context is not None and not taken:  # kept for a document built after this event
            self._contexts[event.run_id] = context
            while len(self._contexts) > _REMEMBERED:
                del self._contexts[next(iter(self._contexts))]
        reasons = tuple(sorted({p.reason for p in event.pending}))
        attributes = {
            "callcc.suspend.reasons": reasons,
            "callcc.pending.ids": tuple(p.path for p in event.pending),
        }
        if run.root is not None:
            run.root.span.set_attribute("callcc.run.status", "suspended")
        self._end_all(run, _ns(event.at), "callcc.suspended", attributes)

    def _run_ended(self, event: RunFinished | RunFailed) -> None:
        run = self._runs.pop(event.run_id, None)
        if run is None:
            return
        if run.root is not None and not run.root.ended:  # else its AgentEnded said how
            status = "failed" if isinstance(event, RunFailed) else "finished"
            run.root.span.set_attribute("callcc.run.status", status)
        self._end_all(run, _ns(event.at), None, {})

    def _end_all(self, run: _Run, at: int, name: str | None, attributes: Any) -> None:
        """End every span of `run` still open, children first, each with the event `name`."""
        for invocation in reversed(run.invocations):
            spans = [*invocation.tools.values()]
            if invocation.chat is not None:
                spans.append(invocation.chat)
            if not invocation.ended:
                spans.append(invocation.span)
            for span in spans:
                if name is not None:
                    span.add_event(name, attributes, timestamp=at)
                span.end(end_time=at)
            invocation.tools.clear()
            invocation.chat = None
            invocation.ended = True
        run.open.clear()

    # -- agents ------------------------------------------------------------------------------

    def _agent_started(self, event: AgentStarted) -> None:
        run = self._runs.get(event.run_id)
        if run is None:  # a drive that announced no start: trace it all the same
            run = self._runs[event.run_id] = _Run(run_id=event.run_id)
        key = _key(event)
        caller = run.open.get(key.rpartition("/")[0]) if event.call_id is not None else None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": event.agent,
            "gen_ai.conversation.id": event.run_id,
            "callcc.agent.path": event.path,
            "callcc.agent.invocation": key,
        }
        if caller is None:
            parent = None  # the application's current span, if any, is the parent
            links = run.links
            attributes["callcc.run.resumed"] = run.resumed
            if run.recovered:
                attributes["callcc.run.recovered"] = True
        else:
            parent_span = caller.tools.get(event.call_id or "", caller.span)
            parent = self._api.set_span_in_context(parent_span)
            links = []
            attributes["gen_ai.tool.call.id"] = event.call_id
        span = self._tracer.start_span(
            f"invoke_agent {event.agent}",
            context=parent,
            kind=self._api.SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            start_time=_ns(event.at),
        )
        invocation = _Invocation(run=run, key=key, span=span)
        run.invocations.append(invocation)
        run.open[key] = invocation
        if caller is None and run.root is None:
            run.root = invocation

    def _agent_ended(self, event: AgentEnded) -> None:
        invocation = self._find(event)
        if invocation is None:
            return
        if event.status == "suspended":
            return  # it stays open until the run suspends, which ends it with the reason
        span = invocation.span
        span.set_attribute("callcc.agent.status", event.status)
        run = self._runs.get(event.run_id)
        if run is not None and run.root is invocation:  # the run's root span says it too
            span.set_attribute("callcc.run.status", event.status)
        if event.status == "failed":
            span.set_status(self._api.Status(self._api.StatusCode.ERROR, "the agent failed"))
            span.set_attribute("error.type", "agent_failed")
        span.end(end_time=_ns(event.at))
        invocation.ended = True
        del invocation.run.open[invocation.key]

    def _find(self, event: RunEvent) -> _Invocation | None:
        """The open invocation `event` concerns, by its `invocation` (unique among the
        invocations of a run, where sub-agents of a fan-out share a `path`)."""
        run = self._runs.get(event.run_id)
        return run.open.get(_key(event)) if run is not None else None

    # -- model requests ----------------------------------------------------------------------

    def _chat_attributes(self, event: ModelCalled | ModelReplied) -> dict[str, Any]:
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": event.provider,
            "gen_ai.request.model": event.model,
            "gen_ai.agent.name": event.agent,
            "gen_ai.conversation.id": event.run_id,
        }

    def _model_called(self, event: ModelCalled) -> None:
        invocation = self._find(event)
        if invocation is None:
            return
        attributes = self._chat_attributes(event)
        if self.capture_content:
            attributes["gen_ai.input.messages"] = _json(_input_messages(event.messages))
        invocation.chat = self._tracer.start_span(
            f"chat {event.model}",
            context=self._api.set_span_in_context(invocation.span),
            kind=self._api.SpanKind.CLIENT,
            attributes=attributes,
            start_time=_ns(event.at),
        )

    def _model_replied(self, event: ModelReplied) -> None:
        invocation = self._find(event)
        if invocation is None:
            return
        span = invocation.chat
        invocation.chat = None
        if span is None:  # the request was not seen: the reply knows when it went out
            span = self._tracer.start_span(
                f"chat {event.model}",
                context=self._api.set_span_in_context(invocation.span),
                kind=self._api.SpanKind.CLIENT,
                attributes=self._chat_attributes(event),
                start_time=_ns(event.at - event.latency),
            )
        if event.input_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", event.input_tokens)
        if event.output_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", event.output_tokens)
        if event.finish_reason is not None:
            span.set_attribute("gen_ai.response.finish_reasons", (event.finish_reason,))
        if event.error is not None:
            span.set_status(self._api.Status(self._api.StatusCode.ERROR, event.error))
            span.set_attribute("error.type", "model_error")
        elif self.capture_content:
            span.set_attribute("gen_ai.output.messages", _json([_output_message(event)]))
        span.end(end_time=_ns(event.at))

    # -- tool calls --------------------------------------------------------------------------

    def _tool_span(self, invocation: _Invocation, event: ToolStarted | ToolFinished) -> Span:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.tool,
            "gen_ai.tool.call.id": event.call_id or "",
            "gen_ai.tool.type": "function",
            "gen_ai.conversation.id": event.run_id,
        }
        if isinstance(event, ToolStarted):
            attributes["callcc.tool.kind"] = event.tool_kind
            if self.capture_content:
                attributes["gen_ai.tool.call.arguments"] = _json(event.arguments)
        return self._tracer.start_span(
            f"execute_tool {event.tool}",
            context=self._api.set_span_in_context(invocation.span),
            kind=self._api.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=_ns(event.at),
        )

    def _tool_started(self, event: ToolStarted) -> None:
        invocation = self._find(event)
        if invocation is not None and event.call_id is not None:
            invocation.tools[event.call_id] = self._tool_span(invocation, event)

    def _tool_finished(self, event: ToolFinished) -> None:
        invocation = self._find(event)
        if invocation is None:
            return
        span = invocation.tools.pop(event.call_id or "", None)
        if span is None:  # refused or rejected: it never ran, but the trace shows it
            span = self._tool_span(invocation, event)
        span.set_attribute("callcc.tool.status", event.status)
        if event.status == "failed":
            span.set_status(self._api.Status(self._api.StatusCode.ERROR, event.result))
            span.set_attribute("error.type", "tool_error")
        elif self.capture_content and event.result is not None:
            span.set_attribute("gen_ai.tool.call.result", event.result)
        span.end(end_time=_ns(event.at))

    def _decision_applied(self, event: DecisionApplied) -> None:
        invocation = self._find(event)
        run = self._runs.get(event.run_id)
        target = invocation or (run.root if run is not None else None)
        if target is not None:
            target.span.add_event(
                "callcc.decision",
                {"callcc.entry.id": event.entry, "callcc.decision": event.decision},
                timestamp=_ns(event.at),
            )

    def _entry_added(self, event: EntryAdded) -> None:
        """A wait begins: a span event on the call's span if it ran, else its agent's."""
        invocation = self._find(event)
        if invocation is None:
            return
        entry = event.entry
        span = invocation.tools.get(entry.id, invocation.span)
        attributes = {"callcc.entry.id": entry.id, "callcc.entry.reason": entry.reason}
        if entry.tool is not None:
            attributes["gen_ai.tool.name"] = entry.tool
        span.add_event("callcc.waits", attributes, timestamp=_ns(event.at))


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _input_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI Chat Completions messages as the GenAI input-messages format (role, parts)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role", "user")
        parts: list[dict[str, Any]] = []
        if message.get("content"):
            if role == "tool":
                parts.append(
                    {
                        "type": "tool_call_response",
                        "id": message.get("tool_call_id"),
                        "response": message["content"],
                    }
                )
            else:
                parts.append({"type": "text", "content": message["content"]})
        for call in message.get("tool_calls") or ():
            parts.append(_tool_call_part(call))
        out.append({"role": role, "parts": parts})
    return out


def _tool_call_part(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "tool_call",
        "id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments"),
    }


def _output_message(event: ModelReplied) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if event.content:
        parts.append({"type": "text", "content": event.content})
    parts.extend({"type": "tool_call", "id": call_id} for call_id in event.tool_calls)
    return {"role": "assistant", "parts": parts, "finish_reason": event.finish_reason}
