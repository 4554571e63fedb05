"""Decisions kept in a run store until the run resumes with them: what the inbox service, the
CLI (`callcc decide`, `callcc resume RUN_ID`, `callcc runs expire`) and later Temporal
workers share.

A reviewer's decision is checked the way a resume would check it (`check`), bound to the
fingerprint of the entry the reviewer saw, and recorded (`arecord`: one store transaction per
batch, all or nothing, with its audit entries). Several reviewers may decide the entries of
one run independently, in any order; `aresume_recorded` applies every recorded decision (plus
any given with it) in one `decide_many` and resumes: the same document as one batch of all of
them, whatever the order they came in. The resume's claim lets exactly one of concurrent
resumes of a suspension go on; the others get `ResumedElsewhere`, no error. Entries nobody
decided are left pending and the run suspends on them again.

Expiry (`aexpire`) rejects, as user `callcc`, every undecided approval whose `expires_at`
passed, with the reason `expired: no decision within 24h` (the tool's `approval.expires_after`
as the spec wrote it): the model reads that as the call's result. It resumes a run once all
its entries are decided. A decision recorded for an entry that has expired already is refused:
the entry is expired first (fail closed).

Each function has a sync twin (`record`, `resume_recorded`, `expire`) for code that is not
async; it uses the blocking store and the runtime's sync API.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from engine.audit import CALLCC_USER, decision_entry
from engine.continuation import Continuation, PendingDecision
from engine.decisions import Decide
from engine.errors import (
    CallccError,
    ConflictError,
    DecisionConflict,
    DecisionError,
    UsageError,
)
from engine.spec.model import Approval, expiry_reason
from engine.store.base import (
    AsyncRunStore,
    AuditEntry,
    PendingRow,
    RecordedDecision,
    RunStatus,
    RunStore,
)

if TYPE_CHECKING:  # the runtime is the caller's: reading recorded decisions needs none
    from engine.runtime import Outcome, Runtime, Suspended

log = logging.getLogger("callcc.inbox")
T = TypeVar("T")

__all__ = [
    "Recorded",
    "ResumedElsewhere",
    "aexpire",
    "apply_recorded",
    "arecord",
    "aresume_recorded",
    "check",
    "decide_of",
    "decision_record",
    "expire",
    "record",
    "resume_recorded",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Recorded:
    """What `arecord` kept."""

    remaining: int
    """How many pending entries of the run are still undecided after it."""
    paths: list[str] = field(default_factory=list)
    """The full paths of the entries it decided, in the order given."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ResumedElsewhere:
    """Another resume of the same suspension won the claim (two reviewers completed the last
    entries at once): the run as the store held it when this one lost."""

    kind: Literal["elsewhere"] = "elsewhere"
    run_id: str
    """The run."""
    status: RunStatus
    """Its status then: running (the other resume drives it), suspended (again, on new
    entries), finished, failed or stopped."""
    output: str | None = None
    """Its reply or failure reason, once it ended."""


# -- decisions as the store keeps them ---------------------------------------------------------


def decision_record(
    decide: Decide,
    *,
    run_id: str,
    nonce: str,
    path: str,
    fingerprint: str,
    user: str,
    at: float,
) -> RecordedDecision:
    """`decide` as the store keeps it, for the entry at `path` (its full path) whose
    fingerprint the decider saw."""
    data: dict[str, Any] = {"kind": decide.kind}
    if decide.kind == "reject":
        data["reason"] = decide.reason
    elif decide.kind == "edit":
        data["arguments"] = decide.arguments
    elif decide.kind == "answer":
        data["result"] = decide.result
    elif decide.kind == "extend":
        data["turns"] = decide.turns
    if decide.scope == "run":  # a grant for the rest of the run (`engine.grants`)
        data["scope"] = "run"
        if decide.where is not None:
            data["where"] = decide.where
    return RecordedDecision(
        run_id=run_id,
        nonce=nonce,
        path=path,
        fingerprint=fingerprint,
        decision=data,
        user=user,
        at=at,
    )


def decide_of(record: RecordedDecision) -> Decide:
    """The `Decide` a recorded decision stands for (its id: the entry's full path)."""
    data = record.decision
    kind = data.get("kind")
    scope, where = data.get("scope", "call"), data.get("where")
    if kind == "approve":
        return Decide.approve(record.path, scope=scope, where=where)
    if kind == "reject":
        reason = data.get("reason", "rejected by the reviewer")
        return Decide.reject(record.path, reason, scope=scope, where=where)
    if kind == "edit":
        return Decide.edit(record.path, data.get("arguments"))  # type: ignore[arg-type]
    if kind == "answer":
        return Decide.answer(record.path, data.get("result"))
    if kind == "extend":
        return Decide.extend(record.path, data.get("turns", 0))
    return Decide(id=record.path, kind=kind)  # type: ignore[arg-type]  # refused if unknown


def apply_recorded(continuation: Continuation, records: Sequence[RecordedDecision]) -> Continuation:
    """`continuation` with the recorded decisions made, each still bound to the fingerprint
    its decider saw (`DecisionConflict` `stale` when the entry changed since)."""
    if not records:
        return continuation
    for record in records:
        view = _view(continuation, record.path)
        if view.fingerprint != record.fingerprint:
            raise DecisionConflict(
                f"the decision recorded for {record.path} answers another call than the run "
                "waits on (its fingerprint differs)",
                run_id=continuation.run_id,
                path=record.path,
                why="stale",
            )
    return continuation.decide_many(decide_of(r) for r in records)


def check(continuation: Continuation, decides: Sequence[Decide], *, runtime: Runtime) -> None:
    """Raise the `DecisionError` that resuming `continuation` with `decides` would raise (an
    unknown or ambiguous id, a decision the entry does not allow or that it has already,
    edited arguments that fail the tool's parameters, with `DecisionError.pointer`), running
    nothing (`Runtime.check_decisions`)."""
    runtime.check_decisions(continuation, decides)


# -- recording -------------------------------------------------------------------------------


async def arecord(
    runtime: Runtime,
    run_id: str,
    decides: Sequence[Decide],
    *,
    user: str,
    fingerprints: Mapping[str, str] | None = None,
) -> Recorded:
    """Record `decides` for the suspended run `run_id` without resuming it, audited as
    `user`'s. Ids name entries as `decide_many` takes them; `fingerprints` maps an id (as
    given, or the full path) to the fingerprint the decider saw. Refused whole, recording
    nothing: `DecisionError` as a resume would refuse (`check`); `DecisionConflict` when the
    run no longer waits (`not_suspended`), the entry changed since the decider saw it
    (`stale`), or it is decided already (`decided`; also when it expired meanwhile)."""
    return await _record(_async_faces(runtime), runtime, run_id, decides, user, fingerprints)


def record(
    runtime: Runtime,
    run_id: str,
    decides: Sequence[Decide],
    *,
    user: str,
    fingerprints: Mapping[str, str] | None = None,
) -> Recorded:
    """`arecord`, for code that is not async."""
    return _now(_record(_sync_faces(runtime), runtime, run_id, decides, user, fingerprints))


async def _record(
    faces: _Faces,
    runtime: Runtime,
    run_id: str,
    decides: Sequence[Decide],
    user: str,
    fingerprints: Mapping[str, str] | None,
) -> Recorded:
    store = faces.store
    continuation = await _waiting(faces, run_id)
    records = await store.recorded_decisions(run_id, continuation.nonce)
    current = apply_recorded(continuation, records)
    now = runtime.clock()
    views = [_view(current, d.id) for d in decides]
    expired = [v for v in views if v.decision is None and _expired(v, now)]
    if expired:
        await _expire_run(faces, runtime, current, [v.path for v in expired], now)
        raise DecisionConflict(
            f"{expired[0].path} expired before it was decided and is rejected",
            run_id=run_id,
            path=expired[0].path,
            why="decided",
        )
    for decide, view in zip(decides, views, strict=True):
        if view.decision is not None:
            raise DecisionConflict(
                f"{view.path} is decided already ({view.decision}); a recorded decision stands",
                run_id=run_id,
                path=view.path,
                why="decided",
            )
        seen = _seen(fingerprints, decide.id, view.path)
        if seen is not None and seen != view.fingerprint:
            raise DecisionConflict(
                f"{view.path} changed since it was shown (the fingerprint seen differs from "
                "the entry's): look at it again before deciding",
                run_id=run_id,
                path=view.path,
                why="stale",
            )
    runtime.check_decisions(current, decides)  # what a resume would refuse, refused now
    kept = [
        decision_record(
            d,
            run_id=run_id,
            nonce=continuation.nonce,
            path=v.path,
            fingerprint=v.fingerprint,
            user=user,
            at=now,
        )
        for d, v in zip(decides, views, strict=True)
    ]
    audit = [_audit(v, r, "decided") for v, r in zip(views, kept, strict=True)]
    remaining = await store.record_decisions(run_id, continuation.nonce, kept, audit=audit)
    return Recorded(remaining=remaining, paths=[v.path for v in views])


# -- resuming --------------------------------------------------------------------------------


async def aresume_recorded(
    runtime: Runtime,
    run_id: str,
    *,
    extra: Sequence[Decide] = (),
    user: str,
    allow_spec_change: bool = False,
) -> Outcome | ResumedElsewhere:
    """Resume the suspended run `run_id` with every decision recorded for it, and `extra`
    (checked like `check`, audited as `user`'s): its outcome. Entries nobody decided stay
    pending (the run suspends on them again); entries whose expiry passed are expired first.
    When another resume of the same suspension won the claim, it applied every recorded
    decision: `ResumedElsewhere`; but with `extra`, which it did not apply, the
    `ConflictError` of the lost claim (as `Runtime.aresume` raises it).
    `allow_spec_change` as for `Runtime.aresume`."""
    faces = _async_faces(runtime, allow_spec_change)
    return await _resume_recorded(faces, runtime, run_id, extra, user)


def resume_recorded(
    runtime: Runtime,
    run_id: str,
    *,
    extra: Sequence[Decide] = (),
    user: str,
    allow_spec_change: bool = False,
) -> Outcome | ResumedElsewhere:
    """`aresume_recorded`, for code that is not async."""
    faces = _sync_faces(runtime, allow_spec_change)
    return _now(_resume_recorded(faces, runtime, run_id, extra, user))


async def _resume_recorded(
    faces: _Faces, runtime: Runtime, run_id: str, extra: Sequence[Decide], user: str
) -> Outcome | ResumedElsewhere:
    try:
        continuation = await _waiting(faces, run_id)
    except DecisionConflict:
        if extra:  # decisions of this call's own would be lost: say so
            raise
        return await _elsewhere(faces.store, run_id)
    store = faces.store
    now = runtime.clock()
    records = await store.recorded_decisions(run_id, continuation.nonce)
    named = {_view(continuation, d.id).path for d in extra}
    lapsed = [
        v.path
        for v in apply_recorded(continuation, records).undecided()
        if v.path not in named and _expired(v, now)
    ]
    if lapsed:  # recorded (and audited) like any expiry, then read back with the others
        await _expire_run(faces, runtime, continuation, lapsed, now, resume=False)
        records = await store.recorded_decisions(run_id, continuation.nonce)
    decided = apply_recorded(continuation, records)
    if extra:
        for view in (_view(decided, d.id) for d in extra):
            if view.decision is None and _expired(view, now):
                raise DecisionError(f"{view.path} expired before it was decided")
        decided = runtime.check_decisions(decided, extra)
    try:
        outcome = await faces.resume(decided, user)
    except ConflictError:
        run = await store.get_run(run_id)
        if extra or (run.status == "suspended" and run.nonce == continuation.nonce):
            raise  # `extra` is lost with it; or not lost to another resume at all
        return ResumedElsewhere(run_id=run_id, status=run.status, output=run.output)
    applied = {r.path for r in records}
    late = [
        r
        for r in await store.recorded_decisions(run_id, continuation.nonce)
        if r.path not in applied
    ]
    if late and outcome.kind == "suspended":
        return await _carry(faces, runtime, run_id, outcome, late, user)
    return outcome


async def _carry(
    faces: _Faces,
    runtime: Runtime,
    run_id: str,
    outcome: Suspended,
    late: Sequence[RecordedDecision],
    user: str,
) -> Outcome | ResumedElsewhere:
    """Decisions recorded after this resume read the recorded ones, and before it claimed
    the run (another reviewer, at the same moment): the resume did not apply them, and the
    entries they decide wait again, unchanged, under the new suspension. Record them there
    (bound to the same fingerprints; each was audited when it was first recorded), and
    resume when nothing is left undecided: a decision the store accepted is never lost."""
    waiting = outcome.continuation
    views = {v.path: v for v in waiting.pending()}
    carried = [
        dataclasses.replace(r, nonce=waiting.nonce)
        for r in late
        if r.path in views and views[r.path].fingerprint == r.fingerprint
    ]
    if not carried:
        return outcome
    try:
        remaining = await faces.store.record_decisions(run_id, waiting.nonce, carried)
    except DecisionConflict:  # decided again, or resumed, by someone else meanwhile
        return outcome
    if remaining:
        return outcome
    return await _resume_recorded(faces, runtime, run_id, (), user)


# -- expiry ----------------------------------------------------------------------------------


async def aexpire(
    runtime_for: Callable[[str], Runtime] | Runtime,
    *,
    now: float | None = None,
    store: RunStore | None = None,
    limit: int = 100,
) -> list[str]:
    """Expire every undecided entry whose `expires_at` is `now` or before (default: the
    runtime's clock, else the time): record `reject` with the reason `expired: no decision
    within DURATION`, as user `callcc`, audited `expired`; then resume each run whose
    entries are all decided. `runtime_for(run_id)` gives the runtime of a run's spec (then
    `store` names the store to look in), or one `Runtime` serves the runs of its spec.
    Returns the ids of the runs that had entries expire, in the order expired."""
    return await _expire(runtime_for, now, store, limit, sync=False)


def expire(
    runtime_for: Callable[[str], Runtime] | Runtime,
    *,
    now: float | None = None,
    store: RunStore | None = None,
    limit: int = 100,
) -> list[str]:
    """`aexpire`, for code that is not async."""
    return _now(_expire(runtime_for, now, store, limit, sync=True))


async def _expire(
    runtime_for: Callable[[str], Runtime] | Runtime,
    now: float | None,
    store: RunStore | None,
    limit: int,
    *,
    sync: bool,
) -> list[str]:
    from engine.runtime import Runtime  # not imported by `callcc pending RUN_ID`

    single = runtime_for if isinstance(runtime_for, Runtime) else None
    source = store or (single.store if single is not None else None)
    if source is None:
        raise UsageError("expiry needs a run store: pass store=, or a Runtime with a store")
    face: AsyncRunStore = _blocking(source) if sync else source.aio
    when = now if now is not None else (single.clock() if single is not None else time.time())
    touched: list[str] = []
    tried: set[tuple[str, str]] = set()
    while True:
        rows = [
            r
            for r in await face.expired(now=when, limit=limit)
            if (r.run_id, r.path) not in tried
            and (single is None or r.spec_name in ("", single.spec.name))
        ]
        if not rows:
            return touched
        for run_id, group in _by_run(rows).items():
            tried.update((run_id, r.path) for r in group)
            try:
                runtime = runtime_for if isinstance(runtime_for, Runtime) else runtime_for(run_id)
                faces = _sync_faces(runtime) if sync else _async_faces(runtime)
                continuation = await _waiting(faces, run_id)
                remaining = await _expire_run(
                    faces, runtime, continuation, [r.path for r in group], when, resume=False
                )
            except (ConflictError, DecisionError) as exc:  # decided or resumed meanwhile
                log.info("run %s: expiry skipped: %s", run_id, exc)
                continue
            except CallccError as exc:  # its spec cannot be had: the other runs go on
                log.warning("run %s: expiry failed: %s", run_id, exc)
                continue
            if remaining is None:
                continue
            if run_id not in touched:  # a run may come back on a later page
                touched.append(run_id)
            if remaining == 0:
                try:
                    await _resume_recorded(faces, runtime, run_id, (), CALLCC_USER)
                except CallccError as exc:  # recorded: a later resume takes it from there
                    log.warning("run %s: expired, but the resume failed: %s", run_id, exc)


async def _expire_run(
    faces: _Faces,
    runtime: Runtime,
    continuation: Continuation,
    paths: Sequence[str],
    now: float,
    *,
    resume: bool = True,
) -> int | None:
    """Record the expiry of the entries at `paths`, each bound to its fingerprint; resume
    the run once nothing is undecided (when `resume`). How many entries are left undecided,
    or None when none of them could expire (no `reject` allowed)."""
    run_id = continuation.run_id
    kept: list[RecordedDecision] = []
    audit: list[AuditEntry] = []
    for path in paths:
        view = _view(continuation, path)
        if "reject" not in view.decisions:  # a spec built in Python may allow no reject
            log.warning("run %s: %s expired but allows no reject; it waits on", run_id, path)
            continue
        reason = _expiry_reason(runtime, view)
        made = decision_record(
            Decide.reject(path, reason),
            run_id=run_id,
            nonce=continuation.nonce,
            path=path,
            fingerprint=view.fingerprint,
            user=CALLCC_USER,
            at=now,
        )
        kept.append(made)
        audit.append(_audit(view, made, "expired"))
    if not kept:
        return None
    remaining = await faces.store.record_decisions(run_id, continuation.nonce, kept, audit=audit)
    if remaining == 0 and resume:
        await _resume_recorded(faces, runtime, run_id, (), CALLCC_USER)
    return remaining


def _expiry_reason(runtime: Runtime, view: PendingDecision) -> str:
    """The tool's `expired: no decision within 24h`, with its duration as the spec wrote it."""
    tool = runtime.spec.tools.get(view.tool or "")
    approval = tool.approval if tool is not None else None
    if isinstance(approval, Approval) and approval.expires_after is not None:
        return approval.expiry_reason()
    return expiry_reason("its time")  # the spec no longer says how long: still fail closed


def _expired(view: PendingDecision, now: float) -> bool:
    return view.expires_at is not None and view.expires_at <= now


# -- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Faces:
    """How the shared coroutines reach the store and the runtime: awaiting the async faces,
    or calling the blocking ones in place (the sync twins)."""

    store: AsyncRunStore
    load: Callable[[str], Awaitable[Continuation]]
    resume: Callable[[Continuation, str], Awaitable[Outcome]]


def _async_faces(runtime: Runtime, allow_spec_change: bool = False) -> _Faces:
    store = _store_of(runtime)

    async def resume(continuation: Continuation, user: str) -> Outcome:
        return await runtime.aresume(continuation, user=user, allow_spec_change=allow_spec_change)

    return _Faces(store.aio, runtime.aload_run, resume)


def _sync_faces(runtime: Runtime, allow_spec_change: bool = False) -> _Faces:
    store = _store_of(runtime)

    async def load(run_id: str) -> Continuation:
        return runtime.load_run(run_id)

    async def resume(continuation: Continuation, user: str) -> Outcome:
        return runtime.resume(continuation, user=user, allow_spec_change=allow_spec_change)

    return _Faces(_blocking(store), load, resume)


def _store_of(runtime: Runtime) -> RunStore:
    if runtime.store is None:
        raise UsageError("recorded decisions need a run store: Runtime(spec, store=URL)")
    return runtime.store


def _blocking(store: RunStore) -> AsyncRunStore:
    from engine.store._aio import Blocking

    return Blocking(store)


def _now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (every await is a blocking call made in place)."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a sync inbox call waited on the event loop")  # pragma: no cover


async def _waiting(faces: _Faces, run_id: str) -> Continuation:
    """The continuation the run waits on; `DecisionConflict` `not_suspended` when none."""
    try:
        return await faces.load(run_id)
    except ConflictError as exc:
        if isinstance(exc, DecisionConflict):
            raise
        raise DecisionConflict(str(exc), run_id=run_id, path=None, why="not_suspended") from None


async def _elsewhere(store: AsyncRunStore, run_id: str) -> ResumedElsewhere:
    run = await store.get_run(run_id)
    return ResumedElsewhere(run_id=run_id, status=run.status, output=run.output)


def _view(continuation: Continuation, ident: str) -> PendingDecision:
    return continuation.find(ident)[0]


def _seen(fingerprints: Mapping[str, str] | None, ident: str, path: str) -> str | None:
    if not fingerprints:
        return None
    return fingerprints.get(ident, fingerprints.get(path))


def _audit(view: PendingDecision, made: RecordedDecision, action: str) -> AuditEntry:
    return decision_entry(
        run_id=made.run_id,
        at=made.at,
        user=made.user,
        path=view.path,
        call_id=view.id,
        tool=view.tool,
        fingerprint=made.fingerprint,
        arguments=view.arguments,
        decision=made.decision,
        action=action,
    )


def _by_run(rows: Sequence[PendingRow]) -> dict[str, list[PendingRow]]:
    groups: dict[str, list[PendingRow]] = {}
    for row in rows:
        groups.setdefault(row.run_id, []).append(row)
    return groups
