"""Decisions addressed by id or path, and how a batch of them lands in a new stack.

`Decide` is what `Continuation.decide_many` takes: one decision for one pending entry, named
the way the one-by-one methods name it (a full path, a bare id when it is unique, a path
suffix; see `engine._paths`). Build it with the class method named like the decision:

    continuation.decide_many([
        Decide.approve("call_1"),
        Decide.edit("call_2", {"amount": 60}),
        Decide.reject("hr_agent/account_agent/call_3", "not this account"),
    ])

Deciding K entries costs O(K) in all: `PendingIndex` finds an entry by path or id in O(1),
the same index serves every continuation derived by decisions (they never move an entry), and
`decided_root` copies only the frames on the way from the root to a decided entry, sharing
everything else with the stack it came from (a continuation's frames are never mutated).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from engine import _paths
from engine._canonical import json_problem
from engine._frozen import draft_of
from engine.errors import DecisionError
from engine.frames import (
    DECISION_KINDS,
    Answer,
    Approve,
    Decision,
    Edit,
    Extend,
    Frame,
    Pending,
    Reject,
    Resume,
    Scope,
    Stop,
    lone,
)
from engine.grants import where_problem
from engine.waits import Kind

_REJECTED = "rejected by the reviewer"


@dataclass(frozen=True, kw_only=True, slots=True)
class Decide:
    """One decision of a batch: the entry it is for, and what is decided."""

    id: str
    """The entry: its full path, its bare id when unique, or a path suffix."""
    kind: Kind
    """approve, edit, reject, answer, extend, stop or resume."""
    arguments: dict[str, Any] | None = None
    """For `edit`: the arguments to run with instead (a JSON object)."""
    reason: str = _REJECTED
    """For `reject`: why, in words the model will read."""
    result: Any = None
    """For `answer`: the call's result, any JSON value."""
    turns: int = 0
    """For `extend`: how many more turns (tool calls, seconds) to grant; at least 1."""
    scope: Scope = "call"
    """For `approve` and `reject`: `run` also answers later calls of the tool in this run
    (a grant, `engine.grants`); `call`: this call only."""
    where: str | None = None
    """With scope `run`: the CEL condition over `args`, `agent`, `run` a later call must
    meet to be covered (checked when the decision is made)."""

    @classmethod
    def approve(cls, id: str, *, scope: Scope = "call", where: str | None = None) -> Decide:
        """Run the call as asked (for a failed call: run it again); with `scope="run"`, also
        later calls of the tool in this run (while `where` holds)."""
        return _made(cls, id, "approve", scope=scope, where=where)

    @classmethod
    def edit(cls, id: str, arguments: dict[str, Any]) -> Decide:
        """Run the call with these arguments instead."""
        return _made(cls, id, "edit", arguments=arguments)

    @classmethod
    def reject(
        cls, id: str, reason: str = _REJECTED, *, scope: Scope = "call", where: str | None = None
    ) -> Decide:
        """Never run the call; the model is told so, with the reason; with `scope="run"`,
        also later calls of the tool in this run (while `where` holds)."""
        return _made(cls, id, "reject", reason=reason, scope=scope, where=where)

    @classmethod
    def answer(cls, id: str, result: Any) -> Decide:
        """Supply the result of an external (or failed) call."""
        return _made(cls, id, "answer", result=result)

    @classmethod
    def extend(cls, id: str, turns: int) -> Decide:
        """Grant more budget after a `turn_limit` wait."""
        return _made(cls, id, "extend", turns=turns)

    @classmethod
    def stop(cls, id: str) -> Decide:
        """End the waiting agent now with its reply so far."""
        return _made(cls, id, "stop")

    @classmethod
    def resume(cls, id: str) -> Decide:
        """Carry on after a pause or a model error."""
        return _made(cls, id, "resume")


_GIVEN: dict[str, tuple[str, ...]] = {
    "approve": ("scope", "where"),
    "edit": ("arguments",),
    "reject": ("reason", "scope", "where"),
    "answer": ("result",),
    "extend": ("turns",),
    "stop": (),
    "resume": (),
}
"""The fields each of `Decide`'s methods names (the rest keep the class's defaults)."""

_DECIDE = draft_of(Decide)
"""A `Decide` being filled in (see `engine._frozen`): one is made per decision."""


def _made(
    cls: type[Decide],
    id: str,
    kind: Kind,
    *,
    arguments: dict[str, Any] | None = None,
    reason: str = _REJECTED,
    result: Any = None,
    turns: int = 0,
    scope: Scope = "call",
    where: str | None = None,
) -> Decide:
    """`cls(id=id, kind=kind, ...)`, filled in as a draft when `cls` is `Decide` itself. A
    subclass (it may add fields, or change a default) is made by its own `__init__`, given
    only the fields the method named (`_GIVEN`), as the methods always did."""
    if cls is not Decide:
        named = {
            "arguments": arguments,
            "reason": reason,
            "result": result,
            "turns": turns,
            "scope": scope,
            "where": where,
        }
        return cls(id=id, kind=kind, **{k: named[k] for k in _GIVEN[kind]})
    made = _DECIDE()
    made.id = id
    made.kind = kind
    made.arguments = arguments
    made.reason = reason
    made.result = result
    made.turns = turns
    made.scope = scope
    made.where = where
    made.__class__ = Decide  # every field written: a Decide now
    return made  # type: ignore[no-any-return]


Spot = tuple[tuple[int, ...], int]
"""Where an entry sits: the positions, in each frame's `pending`, of the sub-agent entries
leading from the root to its frame, then its own position there."""


class PendingIndex(NamedTuple):
    """Every entry that waits for a decision (not `subagent` entries), in stack order, found
    by path or id without a scan. Decisions never add, remove or move entries, so one index
    serves a continuation and every continuation decided from it. (A named tuple: as
    immutable as a frozen dataclass, for a third of its cost to make.)"""

    paths: list[str]
    """Each entry's full path (`root/child@CALL/ENTRY`), in stack order."""
    spots: list[Spot]
    """Where each entry sits, in the same order."""
    by_path: dict[str, int]
    """Full path -> position in `paths`."""
    by_id: dict[str, list[int]]
    """Entry id -> positions of the entries with that id (one, unless sub-agents repeat it)."""

    @staticmethod
    def of(root: Frame) -> PendingIndex:
        """The index of `root`'s stack, walked like `engine.frames.walk` (no recursion), in
        one pass that fills every table."""
        paths: list[str] = []
        spots: list[Spot] = []
        by_path: dict[str, int] = {}
        by_id: dict[str, list[int]] = {}
        if lone(root):  # the usual case: no stack to keep (as in `engine.frames.walk`)
            prefix = f"{root.agent}/"
            for position, entry in enumerate(root.pending):
                if entry.reason != "subagent":
                    path = prefix + entry.id
                    by_path[path] = len(paths)
                    by_id.setdefault(path.rpartition("/")[2], []).append(len(paths))
                    paths.append(path)
                    spots.append(((), position))
            return PendingIndex(paths, spots, by_path, by_id)
        stack: list[tuple[str, tuple[int, ...], Frame]] = [(root.agent, (), root)]
        while stack:
            prefix, route, frame = stack.pop()
            children = []
            for position, entry in enumerate(frame.pending):
                if entry.child is not None:
                    where = f"{prefix}/{entry.child.agent}@{entry.id}"
                    children.append((where, (*route, position), entry.child))
                elif entry.reason != "subagent":
                    path = f"{prefix}/{entry.id}"
                    by_path[path] = len(paths)  # a repeated path: the last one, as before
                    by_id.setdefault(path.rpartition("/")[2], []).append(len(paths))
                    paths.append(path)
                    spots.append((route, position))
            if children:
                stack.extend(reversed(children))
        return PendingIndex(paths, spots, by_path, by_id)

    def find(self, ident: str) -> int:
        """The position of the one entry `ident` names; `DecisionError` when it names none or
        several (listing the paths there are, or the ones it names)."""
        exact = self.by_path.get(ident) if type(ident) is str else None
        if exact is not None:  # a full path, the usual case: no list to make
            return exact
        found = self.select(ident) if isinstance(ident, str) else []
        if len(found) == 1:
            return found[0]
        if not found:
            raise DecisionError(
                f"no pending call {ident!r}", pending_ids=self.paths, unknown=str(ident)
            )
        raise DecisionError(
            _paths.ambiguity(ident, len(found)), pending_ids=[self.paths[i] for i in found]
        )

    def select(self, ident: str) -> list[int]:
        """Positions of the entries `ident` names, as `engine._paths.select` finds them: a full
        path or a bare id in O(1), any other suffix by a scan."""
        exact = self.by_path.get(ident)
        if exact is not None:
            return [exact]
        if "/" not in ident:
            return list(self.by_id.get(ident, ()))
        return _paths.select(ident, self.paths)


def plan(
    root: Frame, index: PendingIndex, items: list[Decide], *, batch: bool
) -> dict[Spot, Decision]:
    """The decision each item records, by the spot of its entry, checked as a whole before
    anything is recorded. A refused item raises `DecisionError`: worded as the one-by-one
    methods word it for a single decision, and naming the item (`decision 2 of 5 (...)`) in
    a batch, which is then refused whole (`batch=False`: the one item of a one-by-one
    method)."""
    if not batch:  # a one-by-one method's single decision: refused as it is worded
        (item,) = items
        position, made = _checked(root, index, item, {})
        return {index.spots[position]: made}
    chosen: dict[Spot, Decision] = {}
    by: dict[int, int] = {}  # position in the index -> number of the item deciding it
    for number, item in enumerate(items, 1):
        try:
            position, made = _checked(root, index, item, by)
        except DecisionError as exc:
            what = f"{item.kind} {item.id!r}" if isinstance(item, Decide) else "?"
            raise DecisionError(
                f"decision {number} of {len(items)} ({what}) is refused, so nothing was "
                f"decided: {exc.reason}",
                pending_ids=exc.pending_ids,
                pointer=exc.pointer,
                unknown=exc.unknown,
            ) from None
        by[position] = number
        chosen[index.spots[position]] = made
    return chosen


def _checked(
    root: Frame, index: PendingIndex, item: Decide, by: dict[int, int]
) -> tuple[int, Decision]:
    """The position of the entry `item` decides and the decision it records there."""
    if not isinstance(item, Decide):
        raise DecisionError(f"expected a Decide, not {type(item).__name__}")
    make = decision_for(item)
    position = index.find(item.id)
    path = index.paths[position]
    entry = entry_at(root, index.spots[position])[1]
    problem = None
    if item.kind not in entry.decisions:
        allowed = ", ".join(entry.decisions) or "none (decide inside the sub-agent)"
        problem = f"{path} ({entry.reason}) does not allow {item.kind!r}; allowed: {allowed}"
    elif entry.decision is not None:
        problem = (
            f"{path} is already decided ({entry.decision.kind}); decide on the earlier "
            "continuation to choose differently"
        )
    elif position in by:
        problem = (
            f"{path} is decided by decision {by[position]} of this batch already; give one "
            "decision per entry"
        )
    if problem is None and item.scope == "run":
        problem = _scope_problem(item, entry, path)
    if problem is not None:
        undecided = [
            p for p, (_, e) in zip(index.paths, leaf_entries(root), strict=True) if not e.decision
        ]
        raise DecisionError(problem, pending_ids=undecided)
    return position, make(entry.fingerprint)


def _scope_problem(item: Decide, entry: Pending, path: str) -> str | None:
    """Why a decision of scope `run` cannot be recorded on `entry`, or None: only approve or
    reject of a call waiting for approval may grant (a grant answers later calls that would
    wait for approval: on an `error` entry approve means run it again, on an `external` one
    reject answers a result), and its `where` must compile (the tool's parameters are
    checked against it where the spec is known: `engine._preflight`)."""
    if item.kind not in ("approve", "reject") or entry.tool is None:
        return f"{path}: only approve and reject of a tool call take scope 'run'"
    if entry.reason != "approval":
        return (
            f"{path}: scope 'run' grants later approvals, and this entry waits for "
            f"{entry.reason!r}, not approval; decide it for this call only (scope 'call': no "
            "--for-run)"
        )
    if item.where is None:
        return None
    problem = where_problem(item.where, None)
    return None if problem is None else f"{path}: {problem}"


def entry_at(root: Frame, spot: Spot) -> tuple[Frame, Pending]:
    """The entry at `spot` of `root`'s stack, with the frame that holds it."""
    route, position = spot
    frame = root
    for step in route:
        child = frame.pending[step].child
        assert child is not None
        frame = child
    return frame, frame.pending[position]


def leaf_entries(root: Frame) -> list[tuple[Frame, Pending]]:
    """Every entry that waits for a decision, with its frame, in the order of
    `PendingIndex.paths`."""
    if lone(root):  # the usual case: no stack to keep (as in `engine.frames.walk`)
        return [(root, e) for e in root.pending if e.reason != "subagent"]
    out: list[tuple[Frame, Pending]] = []
    stack = [root]
    while stack:
        frame = stack.pop()
        out.extend((frame, e) for e in frame.pending if e.child is None and e.reason != "subagent")
        stack.extend(reversed([e.child for e in frame.pending if e.child is not None]))
    return out


_APPROVE = draft_of(Approve)
"""An `Approve` being filled in (see `engine._frozen`): the decision made most often."""


def decision_for(item: Decide) -> Callable[[str], Decision]:
    """How `item` becomes the decision recorded on the entry whose fingerprint it is given;
    `DecisionError` when its value cannot be recorded (values are copied, so a caller changing
    them later changes no continuation)."""
    kind = item.kind
    scope, where = item.scope, item.where
    if scope not in ("call", "run"):
        raise DecisionError(f"scope must be 'call' or 'run', not {scope!r}")
    if where is not None and (scope != "run" or not isinstance(where, str)):
        raise DecisionError("a `where` needs scope 'run', and must be text")
    if kind == "approve":

        def approve(fingerprint: str) -> Decision:  # the most made: filled in as a draft
            made = _APPROVE()  # `Approve(fingerprint=..., scope=..., where=...)`
            made.kind = "approve"
            made.fingerprint = fingerprint
            made.scope = scope
            made.where = where
            made.__class__ = Approve  # every field written: an Approve now
            return made  # type: ignore[no-any-return]

        return approve
    if kind == "edit":
        if not isinstance(item.arguments, dict):
            raise DecisionError("edited arguments must be a JSON object")
        arguments = json_copy(item.arguments, "edited arguments")
        return lambda fp: Edit(fingerprint=fp, arguments=arguments)
    if kind == "reject":
        reason = item.reason
        if not isinstance(reason, str):
            raise DecisionError("the reason of a rejection must be text")
        json_copy(reason, "the reason of a rejection")
        return lambda fp: Reject(fingerprint=fp, reason=reason, scope=scope, where=where)
    if kind == "answer":
        result = json_copy(item.result, "an answer")
        return lambda fp: Answer(fingerprint=fp, result=result)
    if kind == "extend":
        turns = item.turns
        if not isinstance(turns, int) or isinstance(turns, bool) or turns < 1:
            raise DecisionError("extend needs a positive whole number")
        return lambda fp: Extend(fingerprint=fp, turns=turns)
    if kind == "stop":
        return lambda fp: Stop(fingerprint=fp)
    if kind == "resume":
        return lambda fp: Resume(fingerprint=fp)
    raise DecisionError(f"unknown decision {kind!r}; one of {', '.join(DECISION_KINDS)}")


def json_copy(value: Any, what: str) -> Any:
    """A private copy of `value`, which must be plain JSON (no NaN, no sets, str keys, valid
    Unicode text, bounded nesting: see `json_problem`)."""
    problem = json_problem(value)
    if problem is not None:
        where, fault = problem
        at = f" (at {where})" if where else ""
        raise DecisionError(f"{what} must be plain JSON data: it {fault}{at}")
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as exc:  # keys JSON cannot write
        raise DecisionError(f"{what} must be plain JSON data: {exc}") from None


def decided_root(root: Frame, decisions: Mapping[Spot, Decision]) -> Frame:
    """A new root whose entries at the given spots hold the given decisions. Only the frames
    on the way to a decided entry are new, and only their `pending` lists are copied; the
    rest (messages, ledgers, every other frame) is shared with `root`, which stays as it was."""
    for route, _ in decisions:
        if route:
            break
    else:  # every decided entry is in the root frame (all of a lone frame's are)
        if not decisions:
            return root
        pending = list(root.pending)
        for (_, position), decision in decisions.items():
            entry = pending[position]
            pending[position] = entry.replaced(decision=decision, child=entry.child)
        return root.holding(pending)
    lists: dict[tuple[int, ...], list[Pending]] = {}
    frames: dict[tuple[int, ...], Frame] = {(): root}

    def frame_of(route: tuple[int, ...]) -> Frame:  # iterative: any depth is fine
        frame = frames.get(route)
        if frame is None:
            frame = root
            for i, step in enumerate(route):
                known = frames.get(route[: i + 1])
                if known is None:
                    known = frame.pending[step].child
                    assert known is not None
                    frames[route[: i + 1]] = known
                frame = known
        return frame

    def own_list(route: tuple[int, ...]) -> list[Pending]:
        if route not in lists:
            lists[route] = list(frame_of(route).pending)
            levels.setdefault(len(route), []).append(route)
        return lists[route]

    levels: dict[int, list[tuple[int, ...]]] = {}
    for (route, position), decision in decisions.items():
        own = own_list(route)
        own[position] = _with(own[position], "decision", decision)
    if not lists:
        return root
    for depth in range(max(levels), 0, -1):  # deepest first: each level adds its parents
        for route in levels.get(depth, ()):
            new = _frame_with(frame_of(route), lists[route])
            parent = own_list(route[:-1])
            parent[route[-1]] = _with(parent[route[-1]], "child", new)
    return _frame_with(root, lists[()])


def _with(entry: Pending, name: str, value: Any) -> Pending:
    """A copy of `entry` with its `decision` or its `child` changed (`entry.replaced`, a
    quarter of `dataclasses.replace`'s cost)."""
    if name == "decision":
        return entry.replaced(decision=value, child=entry.child)
    return entry.replaced(decision=entry.decision, child=value)


def _frame_with(frame: Frame, pending: list[Pending]) -> Frame:
    """A copy of `frame` holding `pending`, sharing every other field's value."""
    return frame.holding(pending)
