"""What happens in a run, as typed frozen events, and the observers that receive them.

The loop emits one event for each thing that happens (a model request sent, a tool call
finished, the run suspended) through `RunContext.emit`; it knows no consumer. Observers are
callables or objects with an `on_event` method: the CLI's progress lines, OpenTelemetry traces,
`Runtime.astream`, a service's live inbox. An observer that raises never breaks a run: its
error is logged once, and it keeps receiving events.

Every event carries the run id, the frame path of the agent invocation it concerns
(`hr_agent/account_agent`: agent names, root first; `invocation` adds the calls that started
each sub-agent, `hr_agent/account_agent@call_hr_1`), the call id where there is one, and the
wall-clock time it happened (`at`, seconds since the epoch).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeAlias, runtime_checkable

log = logging.getLogger("callcc")

__all__ = [
    "AgentEnded",
    "AgentStarted",
    "DecisionApplied",
    "EntryAdded",
    "GrantApplied",
    "MessagesView",
    "ModelCalled",
    "ModelReplied",
    "Observer",
    "Observers",
    "PendingInfo",
    "PolicyAllowed",
    "RunEvent",
    "RunFailed",
    "RunFinished",
    "RunForked",
    "RunResumed",
    "RunStarted",
    "RunSuspended",
    "ToolErrorToModel",
    "ToolFinished",
    "ToolStarted",
    "read_only",
]


class _ReadOnly:
    """Refuses every change: event data is the run's own, seen through a copy."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "event data is read-only (it shows the run's state as it was): copy it to change "
            "it, e.g. dict(event.arguments) or copy.deepcopy(event.messages)"
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        """A plain, changeable copy, as the refusal above tells observers to make (copying
        member by member would call the refused `__setitem__`)."""
        return _plain(self)


class ReadOnlyDict(_ReadOnly, dict):  # type: ignore[type-arg]
    """A dict that refuses changes (json, isinstance(x, dict) and reading all work)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _ReadOnly._refuse
    clear = pop = popitem = setdefault = update = _ReadOnly._refuse


class ReadOnlyList(_ReadOnly, list):  # type: ignore[type-arg]
    """A list that refuses changes."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _ReadOnly._refuse
    append = clear = extend = insert = pop = remove = reverse = sort = _ReadOnly._refuse


def read_only(value: Any) -> Any:
    """A read-only copy of plain JSON data (dicts and lists at any depth), for an event to
    hand out: an observer can read what the run holds but never change what it runs with."""
    if isinstance(value, dict):
        return ReadOnlyDict((k, read_only(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return ReadOnlyList(read_only(v) for v in value)
    return value


class MessagesView(Sequence[Mapping[str, Any]]):
    """The first `length` messages of a run's own list, as an event shows them: read-only
    copies (`read_only`), made when an observer first reads one, so a turn nobody reads costs
    nothing however long the conversation (copying it each turn made a run quadratic).

    Sound because a frame's messages only grow: a message is never changed, and only the
    last one is ever replaced (an edited call), never one a view already covers. Compares
    equal to the tuple of the same messages, as the event's tuple did."""

    __slots__ = ("_copies", "_length", "_source")

    def __init__(self, source: Sequence[Mapping[str, Any]], length: int | None = None) -> None:
        self._source: Sequence[Mapping[str, Any]] | None = source
        self._length = len(source) if length is None else length
        self._copies: tuple[Mapping[str, Any], ...] | None = None

    def _items(self) -> tuple[Mapping[str, Any], ...]:
        copies = self._copies
        if copies is None:
            source = self._source or ()
            copies = self._copies = tuple(read_only(m) for m in source[: self._length])
            self._source = None  # read once: the run's list is no longer needed
        return copies

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        return self._items()[index]

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self._items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessagesView):
            return self._items() == other._items()
        if isinstance(other, tuple):
            return self._items() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items())

    def __repr__(self) -> str:
        return repr(self._items())

    def __copy__(self) -> MessagesView:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[dict[str, Any], ...]:
        """Plain, changeable copies (`to_dict` and `copy.deepcopy(event.messages)`)."""
        return tuple(_plain(m) for m in self._items())


def _plain(value: Any) -> Any:
    """A plain copy of read-only JSON data (the inverse of `read_only`)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True, slots=True)
class RunEvent:
    """What every event carries."""

    kind: ClassVar[str] = "event"
    """The event's type as a string (`model_replied`), for logs and JSON streams."""
    run_id: str
    """The run."""
    path: str
    """The agent invocation, by agent names root first (`hr_agent/account_agent`)."""
    invocation: str = ""
    """The same invocation told apart from its siblings: each sub-agent with the id of the
    call that started it (`hr_agent/account_agent@call_hr_1`), as pending paths begin. Two
    invocations of one agent side by side (a fan-out) share a `path`, never an `invocation`."""
    call_id: str | None = None
    """The tool call this event concerns (for an agent: the call that started it)."""
    at: float = field(default_factory=time.time)
    """When it happened, seconds since the epoch."""

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data, with its `kind`."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStarted(RunEvent):
    """A new run began (not a resume or a recovery: see `RunResumed`)."""

    kind: ClassVar[str] = "run_started"
    agent: str
    """The entry agent."""
    prompt: str
    """The user's prompt."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResumed(RunEvent):
    """A suspended (or recovered) run goes on in this process."""

    kind: ClassVar[str] = "run_resumed"
    recovered: bool = False
    """True for a recovery (`recover`): the process that drove it before died."""
    trace: Mapping[str, str] | None = None
    """The trace context the continuation recorded when it suspended (W3C `traceparent`,
    `tracestate`), for a tracer to link the new spans to the old ones; None if none."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunForked(RunEvent):
    """A new run forked from a stored one goes on in this process (`Runtime.fork`): its
    history is that run's up to `step` (`engine.fork`)."""

    kind: ClassVar[str] = "forked"
    forked_from: str
    """The run it was forked from (never changed by the fork)."""
    step: int
    """The step of `forked_from` it was forked at."""
    agent: str
    """The entry agent."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentStarted(RunEvent):
    """An agent invocation starts or carries on stepping in this process (the entry agent,
    or a sub-agent started, re-driven or recovered by its calling tool)."""

    kind: ClassVar[str] = "agent_started"
    agent: str
    """The agent's name."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentEnded(RunEvent):
    """An agent invocation stopped stepping in this process."""

    kind: ClassVar[str] = "agent_ended"
    agent: str
    """The agent's name."""
    status: Literal["finished", "stopped", "suspended", "failed"]
    """How it ended here."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelCalled(RunEvent):
    """A model request was sent."""

    kind: ClassVar[str] = "model_called"
    agent: str
    """The asking agent."""
    model: str
    """The model's name as the server knows it (`gpt-4o-mini`, `scripted`)."""
    provider: str
    """`openai` (any OpenAI-compatible server) or `scripted`."""
    turn: int
    """Which model turn of this invocation this is, from 1."""
    messages: Sequence[Mapping[str, Any]] = ()
    """The conversation sent (without the system prompt), read-only: a `MessagesView`,
    copied only when read. Tracers record it only when the user opts in to message
    content."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelReplied(RunEvent):
    """A model reply arrived (or the request failed: `error`)."""

    kind: ClassVar[str] = "model_replied"
    agent: str
    """The asking agent."""
    model: str
    """The model's name."""
    provider: str
    """`openai` or `scripted`."""
    turn: int
    """Which model turn of this invocation this is, from 1."""
    latency: float
    """Seconds from the request to the reply."""
    input_tokens: int | None = None
    """Prompt tokens, when the server reported usage."""
    output_tokens: int | None = None
    """Completion tokens, when the server reported usage."""
    finish_reason: str | None = None
    """The reply's finish reason (None when the request failed)."""
    tool_calls: tuple[str, ...] = ()
    """The ids of the calls the reply asked for."""
    content: str | None = None
    """The reply's text."""
    error: str | None = None
    """Why the request failed, if it did."""
    tools: tuple[str, ...] = ()
    """The tools the calls name, in the order of `tool_calls`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolStarted(RunEvent):
    """A tool call starts running (a python tool, a sub-agent, an external hand-off)."""

    kind: ClassVar[str] = "tool_started"
    tool: str
    """The tool's name."""
    tool_kind: str
    """The tool's kind: `python`, `agent`, `external`."""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    """The arguments it runs with."""
    carries_on: bool = False
    """True when the call waited inside its runner and now goes on (a suspended sub-agent
    driven again after a resume or a recovery), rather than starting."""
    sub_agent: str | None = None
    """For an `agent` tool: the agent the call runs."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolFinished(RunEvent):
    """A tool call has an outcome. `status` is `done` (it ran, or a person answered it),
    `failed` (it raised or timed out: the model reads the error, `ToolErrorToModel`, or the run
    waits on an `error` entry to retry it or fails, as the tool's `on_error` says; or a
    sub-agent failed) or `rejected` (refused by the spec or a reviewer, or ended by a `stop`:
    never run). A call that now waits (an approval, a suspended sub-agent, an external result)
    has no outcome yet: `EntryAdded` and the run's `RunSuspended` list what it waits on."""

    kind: ClassVar[str] = "tool_finished"
    tool: str
    """The tool's name."""
    status: Literal["done", "failed", "rejected"]
    """The outcome."""
    result: str | None = None
    """The result text the model reads (for `failed`, the error)."""
    refused: bool = False
    """True for a call the spec refused (an unknown tool, arguments that do not fit, a call
    the server sent malformed): the model reads why. False for a reviewer's rejection."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolErrorToModel(RunEvent):
    """A python tool's error went back to the model as the call's result, so it can correct
    itself (`on_error: model`, or the tool raised `RetryWithModel`); no person was asked.
    The call's `ToolFinished` (status `failed`) follows."""

    kind: ClassVar[str] = "tool_error_to_model"
    tool: str
    """The tool's name."""
    error: str
    """What the model reads."""
    retry: bool = False
    """True when the tool chose the words itself (`RetryWithModel`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingInfo:
    """One entry a suspended run waits on."""

    path: str
    """The entry's pending path (`hr_agent/account_agent@call_hr_1/call_acc_2`)."""
    id: str
    """The entry's id (the call id, or `limit-1`, `pause-1`, `error-1`)."""
    reason: str
    """`approval`, `external`, `turn_limit`, `pause`, `error`."""
    tool: str | None = None
    """The tool, for call entries."""
    detail: str | None = None
    """More about the reason, as a person reads it: the limit reached, the error."""
    prompt: str | None = None
    """What the reviewer is asked (approvals, external calls)."""
    arguments: Mapping[str, Any] | None = None
    """The call's arguments (None for frame-level entries)."""
    decisions: tuple[str, ...] = ()
    """The decision kinds allowed."""
    why: str | None = None
    """Why a condition made the call wait (`approval.when`: that it held, or could not be
    evaluated), as `callcc pending` shows it after `why:`; None when every call waits."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PolicyAllowed(RunEvent):
    """A call of a tool whose approval has a condition (`approval.when`) runs without asking:
    the condition did not hold (it evaluated to false)."""

    kind: ClassVar[str] = "policy_allowed"
    tool: str
    """The tool's name."""
    when: str
    """The condition, as the spec wrote it."""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    """The arguments it was evaluated on (and the call runs with)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GrantApplied(RunEvent):
    """A call that would have waited for approval was answered by a run-scoped grant (a
    decision of scope `run`, `engine.grants`) without asking: run (`approve`) or rejected."""

    kind: ClassVar[str] = "grant_applied"
    tool: str
    """The tool's name."""
    grant: str
    """`approve` or `reject`: what the grant decided."""
    source: str
    """The path of the entry whose decision made the grant."""
    where: str | None = None
    """The grant's condition, None when it covers every call of the tool."""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    """The call's arguments."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryAdded(RunEvent):
    """A frame now waits on a new entry a decision must answer: a call gated for approval or
    paused before, an external call, a failed call, a budget used up, a pause, a failed model
    call. The run goes on with whatever else can run and suspends once nothing can."""

    kind: ClassVar[str] = "entry_added"
    entry: PendingInfo
    """The entry."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSuspended(RunEvent):
    """The run waits; `pending` lists every entry a decision must answer (sub-agents waiting
    on their own entries are not listed; their entries are)."""

    kind: ClassVar[str] = "run_suspended"
    pending: tuple[PendingInfo, ...] = ()
    """What it waits on, root first."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionApplied(RunEvent):
    """A recorded decision took effect on resume."""

    kind: ClassVar[str] = "decision_applied"
    entry: str
    """The id of the entry it answered."""
    decision: str
    """`approve`, `edit`, `reject`, `answer`, `extend`, `stop`, `resume`."""
    tool: str | None = None
    """The tool of the call it answered (None for a frame-level entry)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFinished(RunEvent):
    """The entry agent answered (or a `stop` decision ended it: `stopped`)."""

    kind: ClassVar[str] = "run_finished"
    output: str
    """The final reply."""
    stopped: bool = False
    """True when a `stop` decision ended the run."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFailed(RunEvent):
    """The run cannot go on."""

    kind: ClassVar[str] = "run_failed"
    reason: str
    """What went wrong, and where."""
    resumable: bool = False
    """True when a `resume` decision can retry it once the cause is fixed."""
    interrupted: bool = False
    """True when this drive ended by an exception rather than by the run failing (the task
    was cancelled, the store failed, the lease was lost): the exception reaches the caller,
    and a stored run stays as its last checkpoint left it, for `recover`."""


@runtime_checkable
class _HasOnEvent(Protocol):
    def on_event(self, event: RunEvent) -> None: ...


Observer: TypeAlias = Callable[[RunEvent], None] | _HasOnEvent
"""A callable taking each event, or an object with an `on_event(event)` method."""


class Observers:
    """The observers of one runtime (or of one run: `joined`); `emit` hands an event to each,
    shielding the run from their errors (each failing observer is logged once)."""

    __slots__ = ("_base", "_broken", "_calls")

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._calls: tuple[Callable[[RunEvent], None], ...] = tuple(_call(o) for o in observers)
        self._broken: set[int] = set()
        self._base: Observers | None = None

    def __bool__(self) -> bool:
        return bool(self._calls) or self._base is not None

    def add(self, observer: Observer) -> Callable[[], None]:
        """Add an observer (runs under way see it from their next event on); returns a
        function that removes it again."""
        call = _call(observer)
        self._calls = (*self._calls, call)  # replaced, never mutated: an emit under way

        def remove() -> None:  # goes on with the observers it started with
            self._calls = tuple(c for c in self._calls if c is not call)

        return remove

    def joined(self, observer: Observer) -> Observers:
        """These observers and then `observer`, for one run (`Runtime.astream`): observers
        added to these later reach the run too, and one that raises is logged once, whichever
        run it broke in."""
        joined = Observers((observer,))
        joined._base = self
        joined._broken = self._broken
        return joined

    def emit(self, event: RunEvent) -> None:
        """Hand `event` to every observer, in the order they were added."""
        if self._base is not None:
            self._base.emit(event)
        for call in self._calls:
            try:
                call(event)
            except Exception:  # an observer never breaks a run
                if id(call) not in self._broken:
                    self._broken.add(id(call))
                    log.exception("observer %r raised on %s; the run goes on", call, event.kind)


def _call(observer: Observer) -> Callable[[RunEvent], None]:
    """The function to call for each event; a TypeError, when the observer is added, for
    what could never receive one (an observer runs inside the loop's step: it must return
    at once, so a coroutine function would only make coroutines nobody awaits)."""
    call = observer.on_event if isinstance(observer, _HasOnEvent) else observer
    if not callable(call):
        raise TypeError(
            f"an observer must be a callable or have an on_event method, not {observer!r}"
        )
    if inspect.iscoroutinefunction(call):
        raise TypeError(
            f"observer {observer!r} is async: observers are called synchronously inside the "
            "run's steps; pass a plain function (it may hand events to a queue or a task), "
            "or consume `Runtime.astream` with `async for`"
        )
    return call
