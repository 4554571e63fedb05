"""The check of a continuation against the spec before a resume runs anything.

A document may have travelled through queues, browsers and people; a resume first makes sure
that it belongs to this spec, that it was verified when keys are configured, and that every
frame, pending entry and decision is one the spec allows and the document's own messages
agree with. Anything else is refused whole, with the JSON pointer of the fault: nothing runs.
"""

from __future__ import annotations

from typing import Any

from engine.compile import BoundAgent, BoundTool, Program
from engine.continuation import Continuation
from engine.errors import ContinuationError, DecisionError, SpecChangedError
from engine.frames import Approve, Decision, Frame, Message, Pending, Reject
from engine.grants import Grant, check_where, where_problem
from engine.spec.model import McpToolset
from engine.tooling import argument_fault, argument_problem, decode_arguments
from engine.waits import allowed


def check_document(
    program: Program,
    keys: tuple[bytes, ...],
    continuation: Continuation,
    *,
    allow_spec_change: bool = False,
) -> None:
    """Refuse a document this spec cannot resume, before anything executes."""
    if keys and not continuation.signed_with(keys):
        raise ContinuationError(
            "the continuation's signature was not verified with this runtime's keys",
            pointer="/signature",
            suggestion="load documents with runtime.load(text) or "
            "Continuation.from_json(text, keys=...)",
        )
    if continuation.spec_name != program.spec.name:
        raise SpecChangedError(
            f"the continuation belongs to spec {continuation.spec_name!r}, "
            f"not {program.spec.name!r}",
            pointer="/spec/name",
        )
    if continuation.spec_digest != program.spec.digest and not allow_spec_change:
        raise SpecChangedError(
            "the spec changed since the run suspended "
            f"({continuation.spec_digest[:19]} then, {program.spec.digest[:19]} now)",
            pointer="/spec/digest",
            suggestion="resume with the spec it suspended with, or pass "
            "allow_spec_change=True (--allow-spec-change) if the change is safe",
        )
    # `frames()` reads and checks the messages a lazily read document left unread
    for index, (_, frame) in enumerate(continuation.frames()):
        _check_frame(program, frame, f"/frames/{index}")
    changed = continuation.spec_digest != program.spec.digest  # allowed, or refused above
    for index, grant in enumerate(continuation.grants()):
        _check_grant(program, grant, f"/grants/{index}", changed)


def _check_grant(program: Program, grant: Grant, ptr: str, changed: bool) -> None:
    """A grant of the document answers calls of a tool of this spec (a tool server's tools
    are only known to its server; after an allowed spec change a grant for a tool the spec
    dropped covers nothing), with a `where` that compiles (one that does not would cover
    nothing, without a word)."""
    if grant.tool not in program.spec.tools and not program.has_toolsets and not changed:
        known = ", ".join(sorted(program.spec.tools)) or "none"
        raise ContinuationError(
            f"grant for tool {grant.tool!r}, which is not in the spec (tools: {known})",
            pointer=f"{ptr}/tool",
        )
    if grant.where is not None:
        problem = where_problem(grant.where, None)
        if problem is not None:
            raise ContinuationError(f"grant {problem}", pointer=f"{ptr}/where")


def _check_frame(program: Program, frame: Frame, ptr: str) -> None:
    agent = program.agents.get(frame.agent)
    if agent is None:
        raise ContinuationError(f"agent {frame.agent!r} is not in the spec", pointer=f"{ptr}/agent")
    in_flight = {c["id"]: c for c in frame.in_flight()}
    for call_id in frame.results:
        if call_id not in in_flight:
            raise ContinuationError(
                f"a result for {call_id!r}, which is not a call of the current turn",
                pointer=f"{ptr}/results",
            )
    waiting = {entry.id for entry in frame.pending}
    if len(waiting) != len(frame.pending):
        raise ContinuationError("two pending entries share an id", pointer=f"{ptr}/pending")
    served = _served(agent, frame)
    for call_id, call in in_flight.items():
        status = frame.ledger.get(call_id)
        if status == "running" and call_id not in waiting:
            tool = agent.tools.get(call["function"]["name"])
            arguments = _parsed(call)
            if call["function"]["name"] in served:  # its schema is the server's: not known yet
                pass
            elif (
                tool is None
                or not isinstance(arguments, dict)
                or argument_problem(tool, arguments)
                or _needs_a_decision(agent, tool)
            ):
                raise ContinuationError(
                    f"call {call_id!r} is marked running but is not a valid call of "
                    f"{frame.agent!r}: the document was modified",
                    pointer=f"{ptr}/ledger",
                )
        settled = call_id in frame.results or call_id in waiting
        if settled or status == "running" or (status is None and not frame.results):
            continue
        raise ContinuationError(
            f"call {call_id!r} of the current turn is {status or 'unrecorded'} but has "
            "neither a result nor a pending entry: the document was modified",
            pointer=f"{ptr}/ledger",
        )
    for j, entry in enumerate(frame.pending):
        where = f"{ptr}/pending/{j}"
        if entry.id in frame.results:
            raise ContinuationError(
                f"call {entry.id!r} is pending and has a result", pointer=f"{where}/id"
            )
        _check_entry(program, agent, entry, where, in_flight, served)


def _served(agent: BoundAgent, frame: Frame) -> frozenset[str]:
    """The names of the agent's server tools (`kind: mcp`) its frame records being shown;
    their schemas and approvals are known only once the servers are listed again, which
    `engine.toolsets` checks the calls against."""
    if not agent.toolsets or not frame.toolsets:
        return frozenset()
    return frozenset(name for t in agent.toolsets for name in frame.toolsets.get(t.name, {}))


def _check_entry(
    program: Program,
    agent: BoundAgent,
    entry: Pending,
    where: str,
    in_flight: dict[str, Message],
    served: frozenset[str] = frozenset(),
) -> None:
    if entry.tool is not None and entry.tool not in agent.tools and entry.tool not in served:
        raise ContinuationError(
            f"pending call {entry.id!r} names tool {entry.tool!r}, which its agent "
            "does not have in the spec",
            pointer=f"{where}/tool",
        )
    sealed = entry.sealed()  # one snapshot of the arguments answers both checks below
    if not sealed and not entry.fingerprint_holds():  # computed again: no seal holds
        raise ContinuationError(
            "the entry does not match its fingerprint: its call was modified",
            pointer=f"{where}/fingerprint",
        )
    if entry.tool is not None:
        call = in_flight.get(entry.id)
        if call is None:
            raise ContinuationError(
                f"pending call {entry.id!r} is not a call of the agent's current turn",
                pointer=f"{where}/id",
            )
        text = call["function"]["arguments"]
        if call["function"]["name"] != entry.tool or (
            not (sealed and entry.seal is not None and entry.seal.text == text)
            and _parsed(call) != entry.arguments
        ):
            raise ContinuationError(
                f"pending call {entry.id!r} differs from the call in the agent's messages: "
                "the document was modified",
                pointer=f"{where}/arguments",
            )
    allowed = _server_decisions(agent) if entry.tool in served else _allowed(program, entry)
    extra = () if allowed.issuperset(entry.decisions) else set(entry.decisions) - allowed
    if extra:
        raise ContinuationError(
            f"decisions {sorted(extra)} are not allowed for this entry by the spec",
            pointer=f"{where}/decisions",
        )
    decision = entry.decision
    if decision is None:
        return
    if decision.kind not in entry.decisions:
        raise ContinuationError(
            f"decision {decision.kind!r} is not one of {list(entry.decisions)}",
            pointer=f"{where}/decision",
        )
    if decision.fingerprint != entry.fingerprint:
        raise ContinuationError(
            "the decision answers another call than this entry (fingerprint mismatch)",
            pointer=f"{where}/decision/fingerprint",
        )
    if decision.kind == "edit":
        _check_edit(agent, entry, decision.arguments)
    _check_where(agent, entry, decision)


def check_edits(program: Program, continuation: Continuation) -> None:
    """Refuse (`DecisionError`, with the JSON pointer inside the arguments) an edit decision
    of `continuation` whose arguments fail its tool's parameters, and a run-scoped decision
    whose `where` names an argument the tool does not have: what `check_document` refuses of
    the decisions, without the rest of the document's checks."""
    for _, frame in continuation.frames():
        agent = program.agents.get(frame.agent)
        for entry in frame.pending:
            decision = entry.decision
            if agent is not None and decision is not None and decision.kind == "edit":
                _check_edit(agent, entry, decision.arguments)
            if agent is not None and decision is not None:
                _check_where(agent, entry, decision)


def _check_edit(agent: BoundAgent, entry: Pending, arguments: dict[str, Any]) -> None:
    tool = agent.tools.get(entry.tool or "")
    fault = argument_fault(tool, arguments) if tool is not None else None
    if fault is not None:
        problem, pointer = fault
        raise DecisionError(
            f"edit of {entry.id}: {problem}", pending_ids=[entry.id], pointer=pointer
        )


def _check_where(agent: BoundAgent, entry: Pending, decision: Decision) -> None:
    """A run-scoped decision's `where`, checked against its tool's parameters."""
    if not isinstance(decision, Approve | Reject) or decision.where is None:
        return
    tool = agent.tools.get(entry.tool or "")
    properties = tool.parameters.get("properties") if tool is not None else None
    fields = list(properties) if isinstance(properties, dict) else None
    check_where(decision.where, fields, f"{decision.kind} of {entry.id} for the run", entry.id)


def _allowed(program: Program, entry: Pending) -> frozenset[str]:
    if entry.tool is not None and entry.reason == "approval":
        tool = program.spec.tools.get(entry.tool)
        if tool is None or isinstance(tool, McpToolset):
            return frozenset()
        return frozenset(tool.approval.decisions)
    return frozenset(allowed(entry.reason, call=entry.tool is not None))


def _server_decisions(agent: BoundAgent) -> frozenset[str]:
    """Every decision a tool of the agent's servers may allow (the default approval's and
    every override's), or that an `error` entry allows."""
    kinds = set(allowed("error", call=True)) | set(allowed("approval", call=True))
    for toolset in agent.toolsets:
        for override in toolset.approval.tools.values():
            kinds.update(override.approval.decisions)
    return frozenset(kinds)


def _needs_a_decision(agent: BoundAgent, tool: BoundTool) -> bool:
    """A call of this tool only runs after a decision, so a document cannot mark it running."""
    spec = tool.spec
    return (
        spec.approval.required
        or spec.kind == "external"
        or spec.name in agent.spec.suspend.before_tools
    )


def _parsed(call: Message) -> Any:
    return decode_arguments(call["function"]["arguments"])[0]  # None unless plain JSON
