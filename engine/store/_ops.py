"""Store operations written once for both SQL backends: the listings with cursors, pending
decisions, recorded decisions, the audit trail and expiry.

`SharedOps` is a mixin of `SQLiteStore` and `PostgresStore`. Each operation is one `_op_NAME`
method that returns an `Operation` (its SQL and checks as a sans-IO body, `engine.store._plan`)
and has exactly the signature of the `RunStore` method NAME; `operation` turns it into that
blocking method (run by the backend's `_do`), and the async faces reach it by name (PostgreSQL's
runs `_op_NAME` on its pool; SQLite's runs the blocking method on its thread). So each of these
operations is written once, its signature twice (here and in the protocol).

SQL is written with `?` placeholders; `_sql.marks` turns them into the driver's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar, cast

from engine.errors import DecisionConflict, DecisionConflictWhy, UsageError
from engine.store import _sql
from engine.store._plan import Operation, Plan, Query
from engine.store._sql import PENDING_COLUMNS, READ, RUN_SELECT, WRITE
from engine.store.base import (
    AuditEntry,
    PendingRow,
    RecordedDecision,
    RunRecord,
    RunStatus,
    read_cursor,
)

P = ParamSpec("P")
T = TypeVar("T")

_NUMBER = (int, float)

PENDING_SELECT = (
    "SELECT "
    + ", ".join(f"p.{c.strip()}" for c in PENDING_COLUMNS.split(","))
    + ", p.spec_name, d.path IS NOT NULL FROM pending p JOIN runs r ON r.id = p.run_id"
    " LEFT JOIN decisions d ON d.run_id = p.run_id AND d.nonce = r.nonce AND d.path = p.path"
)
"""What `pending` and `expired` select: `_sql.pending_row`'s columns, the spec's name and
whether the row is decided at the run's current nonce (a join on the decisions' key, which
the planners walk row by row under a LIMIT; PostgreSQL hashes the whole table for an EXISTS
in the select list)."""

DECISION_COLUMNS = "run_id, nonce, path, seq, fingerprint, decision, user_name, at"
"""The `decisions` columns (migration 8), in the order `_decision` reads them."""

AUDIT_COLUMNS = (
    "run_id, at, user_name, action, path, call_id, tool, fingerprint, decision, reason,"
    " args_before, args_after, detail"
)
"""The `audit` columns an entry fills (`seq` is the store's), in `_audit_params` order."""


def operation(
    build: Callable[Concatenate[Any, P], Operation[T]],
) -> Callable[Concatenate[Any, P], T]:
    """The blocking store method of the operation `build` (`_op_NAME`): same signature,
    carried out by the store's `_do`."""

    def method(self: SharedOps, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._do(build(self, *args, **kwargs))

    method.__name__ = method.__qualname__ = build.__name__.removeprefix("_op_")
    method.__doc__ = build.__doc__
    return method


class SharedOps:
    """The operations both SQL stores run alike (see the module doc)."""

    url: str
    _mark: ClassVar[str] = "?"
    """The driver's placeholder."""
    _lock_row: ClassVar[str] = ""
    """What ends a SELECT of the run's row in a write that must hold it: ` FOR UPDATE` on
    PostgreSQL (SQLite's `BEGIN IMMEDIATE` holds the file's write lock already)."""

    def _do(self, op: Operation[T]) -> T:
        """Run `op` in one transaction (the backend's)."""
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] | None = None, *, many: bool = False) -> Query:
        return Query(_sql.marks(sql, self._mark), params, many)

    # -- listings ------------------------------------------------------------------------------

    def _op_list_runs(
        self,
        *,
        status: RunStatus | None = None,
        limit: int = 100,
        after: str | None = None,
        spec: str | None = None,
    ) -> Operation[list[RunRecord]]:
        """Runs, newest first (by last update), optionally of one status or one spec's name;
        `after` (a `run_cursor`) continues after that run."""
        _sql.check_status(status)
        where, params = _filters(("status", status), ("spec_name", spec))
        if after is not None:
            updated, run_id = read_cursor(after, "run", (_NUMBER, str))
            where.append("(updated_at, id) < (?, ?)")
            params += [float(updated), run_id]
        query = self._q(
            f"SELECT {RUN_SELECT} FROM runs{_where(where)}"
            " ORDER BY updated_at DESC, id DESC LIMIT ?",
            [*params, _limit(limit)],
        )

        def body() -> Plan[list[RunRecord]]:
            return [_sql.record(row) for row in (yield query).rows]

        return Operation(READ, body)

    def _op_pending(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        run_id: str | None = None,
        spec: str | None = None,
        tool: str | None = None,
        reason: str | None = None,
    ) -> Operation[list[PendingRow]]:
        """Pending decisions of suspended runs, oldest first, optionally of one run, spec
        name, tool or reason; `after` (a `pending_cursor`) continues after that row."""
        where, params = _filters(
            ("p.run_id", run_id),
            ("p.spec_name", spec),
            ("p.tool", _sql.encode_text(tool)),
            ("p.reason", reason),
        )
        if after is not None:
            created, after_run, path = read_cursor(after, "pending", (_NUMBER, str, str))
            where.append("(p.created_at, p.run_id, p.path) > (?, ?, ?)")
            params += [float(created), after_run, _sql.encode_text(path)]
        query = self._q(
            f"{PENDING_SELECT} WHERE r.status = 'suspended'{_and(where)}"
            " ORDER BY p.created_at, p.run_id, p.path LIMIT ?",
            [*params, _limit(limit)],
        )

        def body() -> Plan[list[PendingRow]]:
            return [_sql.pending_row(row) for row in (yield query).rows]

        return Operation(READ, body)

    def _op_expired(self, *, now: float, limit: int = 100) -> Operation[list[PendingRow]]:
        """Undecided pending entries of suspended runs whose `expires_at` is `now` or before,
        soonest expired first."""
        query = self._q(
            f"{PENDING_SELECT} WHERE p.expires_at IS NOT NULL AND p.expires_at <= ?"
            " AND r.status = 'suspended' AND d.path IS NULL"
            " ORDER BY p.expires_at, p.run_id, p.path LIMIT ?",
            [float(now), _limit(limit)],
        )

        def body() -> Plan[list[PendingRow]]:
            return [_sql.pending_row(row) for row in (yield query).rows]

        return Operation(READ, body)

    # -- recorded decisions --------------------------------------------------------------------

    def _op_record_decisions(
        self,
        run_id: str,
        nonce: str,
        decisions: Sequence[RecordedDecision],
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> Operation[int]:
        """Keep decisions for pending entries of a run suspended on `nonce`, with `audit`, in
        one transaction; return how many of its pending entries are still undecided."""
        _sql.check_id(run_id)
        rows = _decision_params(run_id, nonce, decisions)
        entries = _audit_params(audit)

        def body() -> Plan[int]:
            found = yield self._q(
                f"SELECT status, nonce FROM runs WHERE id = ?{self._lock_row}", (run_id,)
            )
            run = found.one()
            if run is None:
                raise _sql.no_run(run_id, self.url)
            if run[0] != "suspended" or run[1] != nonce:
                raise _not_suspended(run_id, nonce, run[0], run[1], decisions)
            prints = (yield self._q(_PENDING_PRINTS, (run_id,))).rows
            pending: dict[str, str] = {row[0]: row[1] for row in prints}
            done = {row[0] for row in (yield self._q(_DECIDED, (run_id, nonce))).rows}
            for d, row in zip(decisions, rows, strict=True):
                _check_one(run_id, d, row[2], pending, done)
                done.add(row[2])
            last = (yield self._q(_LAST_SEQ, (run_id,))).one()
            start = int(last[0]) if last is not None else 0
            if rows:
                numbered = [(*row[:3], start + 1 + i, *row[3:]) for i, row in enumerate(rows)]
                yield self._q(_INSERT_DECISION, numbered, many=True)
            if entries:
                yield self._q(_INSERT_AUDIT, entries, many=True)
            return len(set(pending) - done)

        def landed() -> Plan[int | None]:  # every decision is there, as ours (user and time)
            found = yield self._q(
                "SELECT path, user_name, at FROM decisions WHERE run_id = ? AND nonce = ?",
                (run_id, nonce),
            )
            kept = {row[0]: (row[1], float(row[2])) for row in found.rows}
            if not rows or any(kept.get(r[2]) != (r[5], r[6]) for r in rows):
                return None
            pending = {row[0] for row in (yield self._q(_PENDING_PRINTS, (run_id,))).rows}
            return len(pending - set(kept))

        return Operation(WRITE, body, landed)

    def _op_recorded_decisions(
        self, run_id: str, nonce: str | None = None
    ) -> Operation[list[RecordedDecision]]:
        """The decisions kept for a run at `nonce` (None: the nonce it waits on now), in the
        order they were recorded."""
        _sql.check_id(run_id)
        at = "?" if nonce is not None else "(SELECT nonce FROM runs WHERE id = ?)"
        query = self._q(
            f"SELECT {DECISION_COLUMNS} FROM decisions WHERE run_id = ? AND nonce = {at}"
            " ORDER BY seq",
            (run_id, nonce if nonce is not None else run_id),
        )

        def body() -> Plan[list[RecordedDecision]]:
            return [_decision(row) for row in (yield query).rows]

        return Operation(READ, body)

    # -- the audit trail -----------------------------------------------------------------------

    def _op_add_audit(self, entries: Sequence[AuditEntry]) -> Operation[None]:
        """Append entries to the audit trail (their `seq` is ignored: the store numbers them).
        After a lost connection whose commit is unknown it is written again (an entry may
        then show twice: the trail never loses one)."""
        rows = _audit_params(entries)

        def body() -> Plan[None]:
            yield self._q(_INSERT_AUDIT, rows, many=True)

        return Operation(WRITE, body, skip=not rows)

    def _op_audit(
        self, run_id: str, *, limit: int = 1000, after_seq: int = 0
    ) -> Operation[list[AuditEntry]]:
        """A run's audit trail, oldest first, from after `after_seq`."""
        _sql.check_id(run_id)
        if isinstance(after_seq, bool) or not isinstance(after_seq, int):
            raise UsageError(f"after_seq must be an entry's seq (an integer), got {after_seq!r}")
        query = self._q(
            f"SELECT seq, {AUDIT_COLUMNS} FROM audit WHERE run_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (run_id, after_seq, _limit(limit)),
        )

        def body() -> Plan[list[AuditEntry]]:
            return [_audit(row) for row in (yield query).rows]

        return Operation(READ, body)

    list_runs = operation(_op_list_runs)
    pending = operation(_op_pending)
    expired = operation(_op_expired)
    record_decisions = operation(_op_record_decisions)
    recorded_decisions = operation(_op_recorded_decisions)
    add_audit = operation(_op_add_audit)
    audit = operation(_op_audit)


_PENDING_PRINTS = "SELECT path, fingerprint FROM pending WHERE run_id = ?"
_DECIDED = "SELECT path FROM decisions WHERE run_id = ? AND nonce = ?"
_LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM decisions WHERE run_id = ?"
_INSERT_DECISION = f"INSERT INTO decisions ({DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_AUDIT = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES ({', '.join(['?'] * 13)})"


def _filters(*pairs: tuple[str, Any]) -> tuple[list[str], list[Any]]:
    """`column = ?` terms and their values, for the pairs whose value is not None."""
    given = [(column, value) for column, value in pairs if value is not None]
    return [f"{column} = ?" for column, _ in given], [value for _, value in given]


def _where(terms: Sequence[str]) -> str:
    return " WHERE " + " AND ".join(terms) if terms else ""


def _and(terms: Sequence[str]) -> str:
    return "".join(f" AND {term}" for term in terms)


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise UsageError(f"limit must be a whole number, 0 or more (got {limit!r})")
    return limit


def _decision_params(
    run_id: str, nonce: str, decisions: Sequence[RecordedDecision]
) -> list[tuple[Any, ...]]:
    """`decisions` rows but `seq` (run_id, nonce, path, fingerprint, decision, user, at), each
    checked to name this run and nonce."""
    rows: list[tuple[Any, ...]] = []
    for d in decisions:
        if d.run_id != run_id or d.nonce != nonce:
            raise UsageError(
                f"recorded decision for {d.path!r} names run {d.run_id!r} at nonce {d.nonce!r},"
                f" not run {run_id!r} at {nonce!r}; record each run's decisions separately"
            )
        kind = d.decision.get("kind") if isinstance(d.decision, dict) else None
        if not isinstance(kind, str) or not kind:
            raise UsageError(
                f"recorded decision for {d.path!r} has no kind; expected a dict like"
                ' {"kind": "approve"}'
            )
        rows.append(
            (run_id, nonce, _sql.encode_text(d.path), d.fingerprint,
             _sql.dump_json(d.decision), _sql.encode_text(d.user), float(d.at))
        )  # fmt: skip
    return rows


def _check_one(
    run_id: str, d: RecordedDecision, path: str, pending: dict[str, str], done: set[str]
) -> None:
    """Refuse one decision whose entry is not pending, changed, or decided already."""
    why: DecisionConflictWhy
    if path not in pending:
        listed = ", ".join(sorted(_sql.decode_text(p) or "" for p in pending))
        why, what = "not_pending", f"is not pending in the run's continuation (pending: {listed})"
    elif pending[path] != d.fingerprint:
        why, what = "stale", "changed since it was shown (its fingerprint differs); reload it"
    elif path in done:
        why, what = "decided", "has a decision already; it applies when the run resumes"
    else:
        return
    raise DecisionConflict(
        f"cannot record a decision for {d.path!r} of run {run_id!r}: it {what};"
        " nothing was recorded",
        run_id=run_id,
        path=d.path,
        why=why,
    )


def _not_suspended(
    run_id: str,
    nonce: str,
    status: str,
    waits_on: str | None,
    decisions: Sequence[RecordedDecision],
) -> DecisionConflict:
    now = (
        "it waits on another continuation (it was resumed and suspended again)"
        if status == "suspended"
        else f"it is {status}"
    )
    return DecisionConflict(
        f"cannot record decisions for run {run_id!r} at nonce {nonce!r}: {now}; nothing was"
        " recorded. Reload the run's pending decisions and decide again",
        run_id=run_id,
        path=decisions[0].path if decisions else None,
        why="not_suspended",
    )


def _decision(row: Sequence[Any]) -> RecordedDecision:
    """A `decisions` row (`DECISION_COLUMNS`) as a RecordedDecision."""
    return RecordedDecision(
        run_id=row[0],
        nonce=row[1],
        path=cast(str, _sql.decode_text(row[2])),
        fingerprint=row[4],
        decision=_sql.load_json(row[5]),
        user=cast(str, _sql.decode_text(row[6])),
        at=float(row[7]),
    )


def _json_or_null(value: Any) -> str | None:
    return None if value is None else _sql.dump_json(value)


def _audit_params(entries: Sequence[AuditEntry]) -> list[tuple[Any, ...]]:
    """The `audit` rows to insert (`AUDIT_COLUMNS` order)."""
    text = _sql.encode_text
    rows: list[tuple[Any, ...]] = []
    for e in entries:
        _sql.check_id(e.run_id)
        rows.append(
            (e.run_id, float(e.at), text(e.user), e.action, text(e.path), text(e.call_id),
             text(e.tool), e.fingerprint, e.decision, text(e.reason), _json_or_null(e.before),
             _json_or_null(e.after), _json_or_null(e.detail))
        )  # fmt: skip
    return rows


def _audit(row: Sequence[Any]) -> AuditEntry:
    """An `audit` row (`seq`, then `AUDIT_COLUMNS`) as an AuditEntry."""
    text = _sql.decode_text
    return AuditEntry(
        seq=int(row[0]),
        run_id=row[1],
        at=float(row[2]),
        user=cast(str, text(row[3])),
        action=row[4],
        path=text(row[5]),
        call_id=text(row[6]),
        tool=text(row[7]),
        fingerprint=row[8],
        decision=row[9],
        reason=text(row[10]),
        before=json.loads(row[11]) if row[11] is not None else None,
        after=json.loads(row[12]) if row[12] is not None else None,
        detail=_sql.load_json(row[13]) if row[13] is not None else None,
    )
