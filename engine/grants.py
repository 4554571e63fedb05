"""Run-scoped grants: a decision that also answers later calls of the same tool in the run.

`continuation.approve(id, scope="run", where=...)` (or `reject(id, reason, scope="run")`)
records the scope on the decision; the resume turns each such decision into a `Grant`, kept in
the root frame (`Frame.grants`, the document's top-level `grants`, signed like the rest) in
the order the entries stand. A grant covers a call of its tool anywhere in the run (the root
and every sub-agent, started before or after) while its `where` holds (a CEL condition over
`args`, `agent` and `run`, the variables of `approval.when`, compiled by `engine.policy`); a
`where` that cannot be evaluated does not cover (the call asks as usual). A covered call
that would wait for a person does not: an approve-grant runs it, a reject-grant rejects it
with the grant's reason; when both cover a call, the reject wins (fail closed).

Grants never cross runs: a new run and a fork (`engine.fork`) start with none.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from engine.errors import DecisionError
from engine.frames import Approve, Frame, Pending, Reject, walk

if TYPE_CHECKING:  # engine.policy loads CEL: imported when a grant has a `where`
    from engine.policy import Condition

__all__ = [
    "Grant",
    "Granted",
    "check_where",
    "covering",
    "decision_of",
    "take",
    "variables",
    "where_problem",
]

GrantKind = Literal["approve", "reject"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Grant:
    """A decision with scope `run`: it answers later calls of its tool in the same run."""

    kind: GrantKind
    """`approve`: covered calls run without asking; `reject`: they are rejected."""
    tool: str
    """The tool whose calls it covers, named as pending entries name it."""
    source: str
    """The path of the entry whose decision made it (the document's `from`)."""
    fingerprint: str
    """That entry's fingerprint."""
    where: str | None = None
    """The CEL condition a call must meet to be covered; None: every call of the tool."""
    reason: str | None = None
    """For `reject`: why, in words the model reads."""

    def covers(
        self, tool: str, args: Mapping[str, Any], agent: Mapping[str, Any], run: Any
    ) -> bool | None:
        """True when this grant answers a call of `tool` with these variables (the same tool,
        and `where`, if any, evaluated to true), False when it does not, None when it cannot
        tell: `where` could not be evaluated for the call (`covering` decides what follows)."""
        if tool != self.tool:
            return False
        if self.where is None:
            return True
        try:
            condition = _compiled(self.where)
        except ValueError:  # a document's `where` no check passed: it cannot tell
            return None
        verdict = condition.evaluate(args, agent, run)
        return None if verdict.error is not None else verdict.held

    def line(self) -> str:
        """One line for `callcc pending`/`inspect` and the picture."""
        where = f" where {self.where}" if self.where else ""
        reason = f" ({self.reason})" if self.kind == "reject" and self.reason else ""
        return (
            f"{self.kind} {self.tool}{where} for the rest of the run{reason} (from {self.source})"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Granted:
    """An undecided entry a grant decided when the run resumed (for the run's events)."""

    frame: Frame
    """The frame holding the entry."""
    entry: Pending
    """The entry it decided."""
    grant: Grant
    """The grant that decided it."""


def variables(frame: Frame, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`agent` and `run` as a condition sees them for a call of `frame` (`engine.policy`):
    one place for a tool's `approval.when` and a grant's `where` alike."""
    agent = {"name": frame.agent, "path": frame.names or frame.agent}
    run = {"id": run_id, "turns": frame.turns, "tool_calls": frame.tool_calls}
    return agent, run


def covering(
    grants: Sequence[Grant], frame: Frame, tool: str, args: Mapping[str, Any], run_id: str
) -> Grant | None:
    """The grant that answers a call of `tool` by `frame`: the first reject-grant covering
    it, else the first approve-grant covering it, else None (a person decides). Fail closed:
    a `where` that cannot be evaluated covers nothing, and a reject-grant that cannot tell
    whether it covers the call stops every approve-grant from covering it."""
    if not grants:
        return None
    agent, run = variables(frame, run_id)
    verdicts = [(g, g.covers(tool, args, agent, run)) for g in grants]
    rejects = [held for g, held in verdicts if g.kind == "reject"]
    if True in rejects:
        return next(g for g, held in verdicts if g.kind == "reject" and held is True)
    if None in rejects:
        return None
    return next((g for g, held in verdicts if g.kind == "approve" and held is True), None)


def take(root: Frame, run_id: str) -> list[Granted]:
    """On resume: add a grant to `root.grants` for each decision of scope `run` (in stack
    order; one made already, by a drive this resume goes on from, is not added twice), then
    decide every undecided `approval` entry a grant covers. Returns those entries."""
    made = list(root.grants)
    known = {(g.source, g.fingerprint) for g in made}
    leaves = [
        (where, frame, entry)
        for where, frame in walk(root)
        for entry in frame.pending
        if entry.child is None and entry.reason != "subagent"
    ]
    for where, _, entry in leaves:
        grant = _of_decision(where, entry)
        if grant is not None and (grant.source, grant.fingerprint) not in known:
            made.append(grant)
            known.add((grant.source, grant.fingerprint))
    root.grants = tuple(made)
    decided: list[Granted] = []
    if not made:  # no grant covers anything (the usual resume)
        return decided
    for _, frame, entry in leaves:
        if entry.decision is not None or entry.reason != "approval" or entry.tool is None:
            continue
        grant = covering(root.grants, frame, entry.tool, entry.arguments or {}, run_id)
        if grant is not None and grant.kind in entry.decisions:
            entry.decision = decision_of(grant, entry.fingerprint)
            decided.append(Granted(frame=frame, entry=entry, grant=grant))
    return decided


def decision_of(grant: Grant, fingerprint: str) -> Approve | Reject:
    """The decision `grant` makes on the entry of `fingerprint` (this call only)."""
    if grant.kind == "reject":
        return Reject(fingerprint=fingerprint, reason=grant.reason or "rejected by a grant")
    return Approve(fingerprint=fingerprint)


def _of_decision(where: tuple[str, ...], entry: Pending) -> Grant | None:
    """The grant `entry`'s decision makes, if it has scope `run` (`where`: the entry's
    frame's path, as `walk` gives it)."""
    decision = entry.decision
    if not isinstance(decision, Approve | Reject) or decision.scope != "run" or not entry.tool:
        return None
    return Grant(
        kind=decision.kind,
        tool=entry.tool,
        source=f"{'/'.join(where)}/{entry.id}",
        fingerprint=entry.fingerprint,
        where=decision.where,
        reason=decision.reason if isinstance(decision, Reject) else None,
    )


def where_problem(text: str, fields: Sequence[str] | None) -> str | None:
    """What is wrong with a grant's `where` (None: nothing), as `approval.when` diagnostics
    say it, placed by its column in the expression: syntax, unknown variables and functions,
    and (when `fields` lists the tool's parameters) an argument the tool does not have."""
    if not isinstance(text, str) or not text.strip():
        return "--where needs a CEL condition, such as 'args.amount <= 100'"
    from engine.policy import check  # only a grant with a `where` loads CEL

    problems = check(text, fields=fields)
    if not problems:
        return None
    first = problems[0]
    line = text.count("\n", 0, first.offset) + 1
    col = first.offset - (text.rfind("\n", 0, first.offset) + 1) + 1
    at = f"column {col}" if line == 1 else f"line {line}, column {col}"
    hint = f"; {first.suggestion}" if first.suggestion else ""
    return f"where {text!r}: {first.message} (at {at}){hint}"


def check_where(text: str, fields: Sequence[str] | None, what: str, entry: str) -> None:
    """Refuse a bad `where` with a `DecisionError` naming `what` (the decision of `entry`)."""
    problem = where_problem(text, fields)
    if problem is not None:
        raise DecisionError(f"{what}: {problem}", pending_ids=[entry])


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> Condition:
    """A `where` compiled once per process (a memo of a pure function, not state)."""
    from engine.policy import compile_condition  # only a grant with a `where` loads CEL

    return compile_condition(text)
