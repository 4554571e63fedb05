"""The suspended call stack as plain data: frames, pending entries and decisions.

A `Frame` is one agent invocation: its OpenAI-format messages, its counters, the ledger of its
tool calls and the entries it waits on. A `Pending` entry of reason `subagent` holds the child's
whole frame, so the root frame holds the entire stack. The interpreter mutates frames while it
runs; a `Continuation` hands out copies, so a document once returned never changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

from engine._canonical import fingerprint
from engine._frozen import quick_init
from engine._json import _orjson
from engine.waits import CALL_WAITS, FRAME_WAITS, Reason

if TYPE_CHECKING:  # annotations only: engine.grants reads frames
    from engine.grants import Grant

CallStatus: TypeAlias = Literal["pending", "running", "done", "rejected", "failed"]
Message: TypeAlias = dict[str, Any]
Scope: TypeAlias = Literal["call", "run"]

REASONS: tuple[Reason, ...] = ("approval", "subagent", "external", "turn_limit", "pause", "error")
CALL_STATUSES: tuple[CallStatus, ...] = ("pending", "running", "done", "rejected", "failed")

_new = object.__new__
"""Makes an instance without running its `__init__`, every slot then written by hand."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Approve:
    """Run the call as the model asked (for `error` entries: run it again)."""

    kind: Literal["approve"] = "approve"
    fingerprint: str
    """Fingerprint of the entry this decision answers."""
    scope: Scope = "call"
    """`call`: this call only; `run`: also later calls of the tool in this run, while `where`
    holds (the resume makes it a grant: `engine.grants`)."""
    where: str | None = None
    """With scope `run`: the CEL condition over `args`, `agent`, `run` a later call must meet
    to be covered; None: every call of the tool."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Edit:
    """Run the call with other arguments; the model sees the edited call."""

    kind: Literal["edit"] = "edit"
    fingerprint: str
    """Fingerprint of the entry this decision answers."""
    arguments: dict[str, Any]
    """The arguments to run with instead (validated against the tool's parameters)."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Reject:
    """Never run the call; the model is told it was rejected and why."""

    kind: Literal["reject"] = "reject"
    fingerprint: str
    """Fingerprint of the entry this decision answers."""
    reason: str
    """Why, in words the model will read."""
    scope: Scope = "call"
    """`call`: this call only; `run`: also later calls of the tool in this run, while `where`
    holds (the resume makes it a grant: `engine.grants`)."""
    where: str | None = None
    """With scope `run`: the CEL condition a later call must meet to be rejected too."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """Supply the result of an external call (or of a failed call) without running anything."""

    kind: Literal["answer"] = "answer"
    fingerprint: str
    """Fingerprint of the entry this decision answers."""
    result: Any
    """Any JSON value; text is passed to the model as is, anything else as JSON."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Extend:
    """Grant more budget after a `turn_limit` suspension."""

    kind: Literal["extend"] = "extend"
    fingerprint: str
    """Fingerprint of the entry this decision answers."""
    turns: int
    """More model turns, tool calls or seconds, whichever limit was reached."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Stop:
    """End the agent now with its reply so far."""

    kind: Literal["stop"] = "stop"
    fingerprint: str
    """Fingerprint of the entry this decision answers."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Resume:
    """Carry on after a `pause` or a model `error`."""

    kind: Literal["resume"] = "resume"
    fingerprint: str
    """Fingerprint of the entry this decision answers."""


Decision: TypeAlias = Approve | Edit | Reject | Answer | Extend | Stop | Resume
DECISION_KINDS = ("approve", "edit", "reject", "answer", "extend", "stop", "resume")


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class PolicyWhy:
    """Why a condition made a call wait: the tool's `approval.when`, and that it held, or
    that it could not be evaluated (the call then waits all the same: fail closed)."""

    kind: Literal["when"] = "when"
    """What asked: the tool's `approval.when` (a grant's `where` may be another kind)."""
    when: str
    """The condition, as the spec wrote it."""
    outcome: Literal["held", "error"]
    """`held`: it evaluated to true; `error`: it could not be evaluated."""
    error: str | None = None
    """Why it could not be evaluated (`error` only)."""

    def line(self) -> str:
        """The one line `callcc pending`, `inspect` and the picture show after `why:`."""
        if self.outcome == "held":
            return f"when {self.when} held"
        return f"when {self.when} could not be evaluated ({self.error}): approval required"


LimitName: TypeAlias = Literal["max_turns", "max_tool_calls", "timeout"]
LIMIT_NAMES: tuple[LimitName, ...] = ("max_turns", "max_tool_calls", "timeout")


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Limit:
    """The budget a `turn_limit` entry reached: which limit, how much was used, how much was
    allowed (extra budget granted before included). `extend` grants more of exactly this."""

    kind: Literal["limit"] = "limit"
    name: LimitName
    """`max_turns` (model turns), `max_tool_calls` (tool calls) or `timeout` (seconds)."""
    used: int | float
    """Turns or tool calls used, or seconds spent, when the entry was made."""
    allowed: int | float
    """The budget in force then: the spec's limit plus what `extend` granted."""


def call_fingerprint(
    call_id: str, tool: str, arguments: Any, reason: str, decisions: tuple[str, ...]
) -> str:
    """What a decision on a call is bound to: the call as the reviewer saw it, why it waits,
    and what may be decided (so relabelling an entry breaks the binding too)."""
    return fingerprint(call_id, tool, arguments, reason, list(decisions))


def frame_fingerprint(entry_id: str, reason: str, detail: Any, decisions: tuple[str, ...]) -> str:
    """The same for a wait no tool call caused (a limit, a pause, a model error)."""
    return fingerprint(entry_id, reason, detail, list(decisions))


@dataclass(kw_only=True, slots=True)
class Pending:
    """One thing a frame waits on."""

    id: str
    """The tool call id, or a synthetic id (`limit-3`, `pause-2`, `error-1`) for frame-level
    waits that no tool call caused."""
    reason: Reason
    """Why the frame waits."""
    tool: str | None
    """The tool called; None for frame-level waits."""
    arguments: dict[str, Any] | None
    """The call's arguments as the model gave them (None for frame-level waits)."""
    decisions: tuple[str, ...]
    """Decision kinds allowed; empty for `subagent` (decide inside the child)."""
    fingerprint: str
    """Hash of id, tool, canonical arguments, reason and decisions (or of id, reason, detail
    and decisions for frame-level waits)."""
    prompt: str | None = None
    """What the reviewer is asked, with the arguments filled in."""
    detail: str | None = None
    """More about the reason: the limit reached, the error message."""
    decision: Decision | None = None
    """The decision once made, until the run resumes."""
    child: Frame | None = None
    """For `subagent`: the suspended child's frame."""
    expires_at: float | None = None
    """When an undecided `approval` entry is rejected (seconds since the epoch, from the
    tool's `approval.expires_after` and the run's clock when the call was gated); None: it
    waits as long as it takes. Not covered by `fingerprint` (a signature covers it)."""
    approvers: tuple[str, ...] = ()
    """Who may decide (the tool's `approval.approvers`: roles or user names); empty: any
    approver. Not covered by `fingerprint`."""
    policy: PolicyWhy | None = None
    """Why a condition made the call wait (`approval.when`); None when every call of the
    tool waits. Not covered by `fingerprint`."""
    limit: Limit | None = None
    """For `turn_limit`: the limit reached (`detail` says it in words); None otherwise.
    Not covered by `fingerprint` (computed from `detail`, which says the same)."""
    seal: Seal | None = field(default=None, repr=False, compare=False)
    """In memory only: what `fingerprint` was computed from, when this process computed it
    (see `Seal`); None for an entry read from a document, whose fingerprint is a claim
    (until a check finds the seal this process made with it, `Seal.made`)."""

    @staticmethod
    def for_call(
        *,
        id: str,
        reason: Reason,
        tool: str,
        arguments: dict[str, Any],
        decisions: tuple[str, ...] | None = None,
        prompt: str | None = None,
        detail: str | None = None,
        child: Frame | None = None,
        text: str | None = None,
        expires_at: float | None = None,
        approvers: tuple[str, ...] = (),
        policy: PolicyWhy | None = None,
    ) -> Pending:
        """An entry for a tool call, fingerprinted on what the reviewer sees; it allows
        `decisions`, by default those `engine.waits.CALL_WAITS` gives its reason."""
        if decisions is None:
            decisions = CALL_WAITS[reason]
        entry: Pending = _new(Pending)  # plain slot writes (see `replaced`)
        entry.id = id
        entry.reason = reason
        entry.tool = tool
        entry.arguments = arguments
        entry.decisions = decisions
        entry.fingerprint = call_fingerprint(id, tool, arguments, reason, decisions)
        entry.prompt = prompt
        entry.detail = detail
        entry.decision = None
        entry.child = child
        entry.expires_at = expires_at
        entry.approvers = approvers
        entry.policy = policy
        entry.limit = None
        entry.seal = Seal.of(entry, text)
        return entry

    @staticmethod
    def new(
        id: str,
        reason: Reason,
        tool: str | None,
        arguments: dict[str, Any] | None,
        decisions: tuple[str, ...],
        fingerprint: str,
        prompt: str | None = None,
        detail: str | None = None,
    ) -> Pending:
        """`Pending(id=id, ..., detail=detail)`, every other field at its default, in plain
        slot writes (see `replaced`): one is made for every entry of every document read."""
        entry: Pending = _new(Pending)
        entry.id = id
        entry.reason = reason
        entry.tool = tool
        entry.arguments = arguments
        entry.decisions = decisions
        entry.fingerprint = fingerprint
        entry.prompt = prompt
        entry.detail = detail
        entry.decision = entry.child = entry.expires_at = entry.policy = entry.limit = None
        entry.approvers = ()
        entry.seal = None
        return entry

    @staticmethod
    def for_frame(*, id: str, reason: Reason, detail: str, limit: Limit | None = None) -> Pending:
        """An entry for a wait no tool call caused (a limit, a pause, a model error), allowing
        the decisions `engine.waits.FRAME_WAITS` gives its reason; a `turn_limit` entry
        carries the `limit` reached."""
        decisions = FRAME_WAITS[reason]
        entry = Pending(
            id=id,
            reason=reason,
            tool=None,
            arguments=None,
            decisions=decisions,
            fingerprint=frame_fingerprint(id, reason, detail, decisions),
            detail=detail,
            limit=limit,
        )
        entry.seal = Seal.of(entry, None)
        return entry

    def fingerprint_holds(self) -> bool:
        """True when `fingerprint` is the fingerprint of the entry as it is now: its seal
        says so when nothing changed since it was computed (an entry read from a document
        takes the seal this process made with that fingerprint, when it is still exactly
        what the seal was taken of: see `Seal.made`), else it is computed again."""
        if self.sealed():
            return True
        if self.tool is None:
            expected = frame_fingerprint(self.id, self.reason, self.detail, self.decisions)
        else:
            expected = call_fingerprint(
                self.id, self.tool, self.arguments, self.reason, self.decisions
            )
        return self.fingerprint == expected

    def replaced(self, *, decision: Decision | None, child: Frame | None) -> Pending:
        """A copy holding `decision` and `child`, every other field's value shared (spelled
        out as plain slot writes: the generated `__init__` with fifteen keywords costs three
        times as much, `dataclasses.replace` ten, and one is made per decision)."""
        new: Pending = _new(Pending)
        new.id = self.id
        new.reason = self.reason
        new.tool = self.tool
        new.arguments = self.arguments
        new.decisions = self.decisions
        new.fingerprint = self.fingerprint
        new.prompt = self.prompt
        new.detail = self.detail
        new.decision = decision
        new.child = child
        new.expires_at = self.expires_at
        new.approvers = self.approvers
        new.policy = self.policy
        new.limit = self.limit
        new.seal = self.seal
        return new

    def decoded_from(self, text: str) -> bool:
        """True when the entry's arguments are known to be `text` decoded: it was made from
        that very text and has not changed since (else decode `text` to compare)."""
        return self.sealed() and self.seal is not None and self.seal.text == text

    def sealed(self) -> bool:
        """True when the entry has a seal that holds for it as it is now: its own, or (read
        from a document) the one this process made with its fingerprint, which it takes.
        One snapshot of the arguments: a caller asking both `fingerprint_holds` and
        `decoded_from` of an entry it has not changed in between asks this once."""
        if self.seal is None:
            self.seal = Seal.made(self)  # found only when it holds
            return self.seal is not None
        return self.seal.holds(self)


class Seal(NamedTuple):
    """What a `Pending` entry's fingerprint was computed from, so a later check (the one
    before a resume) need not compute it again: the fingerprint holds while the entry still
    matches its seal. The arguments are kept as orjson's sorted-keys JSON (a tenth of the cost
    of the canonical JSON and SHA-256 of a fingerprint), taken again at every check, so an
    edit of the arguments in place breaks the seal as surely as a new value does. Never
    written to a document: an entry read from one is checked the long way, unless this
    process made a seal with its fingerprint that holds for it (`made`). (A named tuple:
    one is made with every gated call, and a frozen dataclass costs a microsecond more.)"""

    fields: tuple[Any, ...]
    """`(fingerprint, id, tool, reason, decisions, detail)` when sealed."""
    arguments: bytes
    """orjson's JSON of the arguments, sorted keys (`b""` for a frame-level entry)."""
    text: str | None
    """The arguments text the entry's arguments were decoded from, if that is known."""

    @staticmethod
    def of(entry: Pending, text: str | None) -> Seal | None:
        """The seal of `entry` as it is now, or None when its arguments have no snapshot
        that surely tells every change apart (see `_snapshot`)."""
        arguments = _snapshot(entry.arguments)
        if arguments is None:
            return None
        seal = Seal(_fields(entry), arguments, text)
        if len(_MADE) >= _MADE_MAX:
            _MADE.clear()  # rare, and only costs the next checks a fingerprint each
        _MADE[entry.fingerprint] = seal
        return seal

    @staticmethod
    def made(entry: Pending) -> Seal | None:
        """The seal this process made with `entry`'s fingerprint, if it holds for `entry`:
        then the fingerprint was computed from exactly what `entry` holds (the seal keeps
        every input of it), so an entry read back from a document this process wrote needs
        neither the fingerprint nor the decode of its call's arguments again. A memo of a
        pure function, not state: without it every answer is the same, only slower."""
        seal = _MADE.get(entry.fingerprint)
        return seal if seal is not None and seal.holds(entry) else None

    def holds(self, entry: Pending) -> bool:
        """True when `entry` is still exactly what the seal was taken of."""
        return _fields(entry) == self.fields and _snapshot(entry.arguments) == self.arguments


_MADE: dict[str, Seal] = {}
"""The seals this process made lately, by fingerprint (see `Seal.made`)."""
_MADE_MAX = 4096
"""Emptied when this full: a few hundred kB at most."""


def _fields(entry: Pending) -> tuple[Any, ...]:
    return (entry.fingerprint, entry.id, entry.tool, entry.reason, entry.decisions, entry.detail)


def _snapshot(arguments: dict[str, Any] | None) -> bytes | None:
    """Sorted-keys JSON of `arguments` by orjson; None when orjson is missing or refuses
    them (integers beyond 64 bits, lone surrogates, non-string keys) or when they hold a
    `null`: orjson writes NaN as null too, and a seal must tell the two apart."""
    if arguments is None:
        return b""
    orjson = _orjson()  # imported on first use: `callcc pending` never seals anything
    if orjson is None:  # pragma: no cover - orjson is a dependency; without it nothing is sealed
        return None
    try:
        snapshot = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if b"null" in snapshot:
        return None
    # a copy of its exact size: orjson's bytes keep the whole buffer it wrote into (4 kB for
    # `{"amount": 5}`), and a sealed entry lives as long as its suspended run
    return bytes(memoryview(snapshot))


@dataclass(kw_only=True, slots=True)
class Frame:
    """One agent invocation: messages, counters, ledger and what it waits on."""

    agent: str
    """The agent running in this frame."""
    messages: list[Message]
    """OpenAI Chat Completions messages, without the system prompt (it comes from the spec)."""
    turns: int = 0
    """Model replies received."""
    attempts: int = 0
    """Model calls made, failed ones included."""
    tool_calls: int = 0
    """Tool calls counted against `max_tool_calls`."""
    extra_turns: int = 0
    """Model turns granted by `extend` beyond the spec's `max_turns`."""
    extra_tool_calls: int = 0
    """Tool calls granted by `extend` beyond the spec's `max_tool_calls`."""
    extra_seconds: float = 0.0
    """Seconds granted by `extend` beyond the spec's `limits.timeout`."""
    elapsed: float = 0.0
    """Seconds of active running (suspended time does not count)."""
    pause_turns: int = 0
    """Model turns since the last pause."""
    pause_elapsed: float = 0.0
    """Seconds of active running since the last pause."""
    serial: int = 0
    """Counter for synthetic pending ids."""
    input_tokens: int = 0
    """Prompt tokens of this invocation's model replies and of its ended sub-agents'
    (`engine.usage`)."""
    output_tokens: int = 0
    """Completion tokens, counted the same way."""
    ledger: dict[str, CallStatus] = field(default_factory=dict)
    """Every tool call of this frame by id, with its status."""
    results: dict[str, str] = field(default_factory=dict)
    """Results of the current turn's calls, until all are in and become tool messages."""
    pending: list[Pending] = field(default_factory=list)
    """What the frame waits on, in tool-call order."""
    path: str = ""
    """Where the frame sits, by the calls that started it: `""` for the root, `"/call_1"`
    for the sub-agent call_1 started (in memory only; a run store keys deltas by it)."""
    names: str = ""
    """The agent names from the root to this frame (`hr_agent/account_agent`): the `path` of
    the run events about it. Set with `path` (`assign_paths`, `child`), in memory only."""
    invocation: str = ""
    """This frame as pending paths name it: each sub-agent with the id of the call that
    started it (`hr_agent/account_agent@call_hr_1`); unlike `names`, two invocations of one
    agent side by side differ. Set with `path`, in memory only."""
    toolsets: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per tool server this frame's agent was shown (`kind: mcp`): its tools by the name the
    model sees -> the fingerprint of the tool's schema then (see `engine.toolsets`)."""
    decoded: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Arguments of the current turn's calls marked running, as decoded when the turn was
    sorted, until they run (in memory only: a frame read from a document decodes again)."""
    approved: dict[str, str] = field(default_factory=dict)
    """Calls of the current turn a person approved (or edited) on an `approval` entry, by id
    -> that entry's fingerprint, until the turn closes: their tool runs with
    `ToolContext.approved` and may not ask again (`engine.NeedsApproval`), also when it runs
    again after a recovery or a retry."""
    grants: tuple[Grant, ...] = ()
    """The root frame only: the run's grants (decisions of scope `run`, `engine.grants`),
    in the order they were made; the document writes them at its top level."""

    def copy(self) -> Frame:
        """A deep copy of this frame and all its children (messages are shared: they are
        never mutated, only replaced). Iterative, so any depth is fine."""
        copies: dict[int, Frame] = {}
        frames = stack_frames(self)
        for frame in frames:
            copies[id(frame)] = _shallow(frame)
        for new in copies.values():
            for entry in new.pending:
                if entry.child is not None:
                    entry.child = copies[id(entry.child)]
        return copies[id(self)]

    def holding(self, pending: list[Pending]) -> Frame:
        """A copy holding `pending`, every other field's value shared with this frame (not
        copied: see `copy` for that). Plain slot writes, a quarter of the cost of the
        generated `__init__` with its 24 keywords (`tests/test_frames_copy.py` checks that
        every field is carried)."""
        new: Frame = _new(Frame)
        new.agent = self.agent
        new.messages = self.messages
        new.turns = self.turns
        new.attempts = self.attempts
        new.tool_calls = self.tool_calls
        new.extra_turns = self.extra_turns
        new.extra_tool_calls = self.extra_tool_calls
        new.extra_seconds = self.extra_seconds
        new.elapsed = self.elapsed
        new.pause_turns = self.pause_turns
        new.pause_elapsed = self.pause_elapsed
        new.serial = self.serial
        new.input_tokens = self.input_tokens
        new.output_tokens = self.output_tokens
        new.ledger = self.ledger
        new.results = self.results
        new.pending = pending
        new.path = self.path
        new.names = self.names
        new.invocation = self.invocation
        new.toolsets = self.toolsets
        new.decoded = self.decoded
        new.approved = self.approved
        new.grants = self.grants
        return new

    @staticmethod
    def new(agent: str, messages: list[Message]) -> Frame:
        """`Frame(agent=agent, messages=messages)`, every other field at its default, in
        plain slot writes (see `holding`): one is made for every run and every document read
        (`tests/test_frames_copy.py` holds it to the constructor)."""
        new: Frame = _new(Frame)
        new.agent = agent
        new.messages = messages
        new.turns = new.attempts = new.tool_calls = new.extra_turns = new.extra_tool_calls = 0
        new.extra_seconds = new.elapsed = new.pause_elapsed = 0.0
        new.pause_turns = new.serial = new.input_tokens = new.output_tokens = 0
        new.ledger = {}
        new.results = {}
        new.pending = []
        new.path = new.names = new.invocation = ""
        new.toolsets = {}
        new.decoded = {}
        new.approved = {}
        new.grants = ()
        return new

    def child(self, agent: str, call_id: str, messages: list[Message]) -> Frame:
        """A new frame for the sub-agent `agent` that this frame's call `call_id` starts,
        with its `path`, `names` and `invocation` set."""
        child = Frame.new(agent, messages)
        child.path = f"{self.path}/{call_id}"
        child.names = f"{self.names or self.agent}/{agent}"
        child.invocation = f"{self.invocation or self.agent}/{agent}@{call_id}"
        return child

    def entry_path(self, entry_id: str) -> str:
        """The pending path of this frame's entry `entry_id`, as `Continuation.pending()`
        names it (`hr_agent/account_agent@call_hr_1/call_acc_2`)."""
        return f"{self.invocation or self.agent}/{entry_id}"

    def in_flight(self) -> list[dict[str, Any]]:
        """The tool calls of the last assistant message while they still await results."""
        if not self.messages:
            return []
        last = self.messages[-1]
        if last.get("role") != "assistant":
            return []
        calls: list[dict[str, Any]] = last.get("tool_calls") or []
        return calls

    def last_text(self) -> str:
        """The latest assistant text, the agent's reply so far."""
        for message in reversed(self.messages):
            if message.get("role") == "assistant" and message.get("content"):
                return str(message["content"])
        return ""

    def next_id(self, prefix: str) -> str:
        """A fresh synthetic id such as `limit-3`."""
        self.serial += 1
        return f"{prefix}-{self.serial}"


def _shallow(frame: Frame) -> Frame:
    """A copy of `frame` owning its own lists and dicts (messages, ledger, results, approved,
    pending and each entry; `decoded` starts empty), sharing what is never mutated in place
    (`toolsets` is replaced whole, `grants` is a tuple of frozen grants)."""
    copy = frame.holding([p.replaced(decision=p.decision, child=p.child) for p in frame.pending])
    copy.messages = list(frame.messages)
    copy.ledger = dict(frame.ledger)
    copy.results = dict(frame.results)
    copy.decoded = {}
    copy.approved = dict(frame.approved)
    return copy


def assign_paths(root: Frame) -> None:
    """Set every frame's `path`, `names` and `invocation` from the calls and agents that lead
    to it, without recursion."""
    stack = [root]
    root.path = ""
    root.names = root.invocation = root.agent
    while stack:
        frame = stack.pop()
        for entry in frame.pending:
            child = entry.child
            if child is not None:
                child.path = f"{frame.path}/{entry.id}"
                child.names = f"{frame.names}/{child.agent}"
                child.invocation = f"{frame.invocation}/{child.agent}@{entry.id}"
                stack.append(child)


def lone(root: Frame) -> bool:
    """True when `root` waits on no sub-agent: the stack is this one frame (the usual case,
    which the walks over a stack take a shortcut for)."""
    for entry in root.pending:  # noqa: SIM110  (a loop: `all` of a generator costs twice as much)
        if entry.child is not None:
            return False
    return True


def walk(root: Frame) -> list[tuple[tuple[str, ...], Frame]]:
    """Every frame with its path, root first, depth first, without recursion: the root's
    agent, then one `agent@CALL` segment a sub-agent, `CALL` being the id of the parent's
    call that started it (`("hr_agent", "account_agent@call_hr_1")`)."""
    if lone(root):  # the usual case: no stack to keep
        return [((root.agent,), root)]
    out: list[tuple[tuple[str, ...], Frame]] = []
    stack: list[tuple[tuple[str, ...], Frame]] = [((root.agent,), root)]
    while stack:
        path, frame = stack.pop()
        out.append((path, frame))
        for entry in reversed(frame.pending):  # pushed last first: popped in stack order
            child = entry.child
            if child is not None:
                stack.append(((*path, f"{child.agent}@{entry.id}"), child))
    return out


def stack_frames(root: Frame) -> list[Frame]:
    """Every frame of the stack, in `walk`'s order, without building their paths."""
    out: list[Frame] = []
    stack = [root]
    while stack:
        frame = stack.pop()
        out.append(frame)
        for entry in reversed(frame.pending):
            if entry.child is not None:
                stack.append(entry.child)
    return out
