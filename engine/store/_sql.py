"""What the SQL backends share: JSON encoding, row mapping, the refusals they raise, URL masking.

Kept free of any driver so `sqlite.py` and `postgres.py` word their errors the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

from engine._canonical import LONE_SURROGATE
from engine._json import escape_surrogates
from engine.errors import ConflictError, LeaseHeldError, UsageError
from engine.store._plan import Plan, Query
from engine.store.base import (
    PRUNE_GUARDED,
    RUN_STATUSES,
    Event,
    PendingRow,
    RunRecord,
    RunStatus,
    SpecRow,
)

RUN_COLUMNS = (
    "id, spec_name, spec_digest, spec_path, agent, status, version, nonce, output,"
    " created_at, updated_at"
)
"""The `runs` columns in the order `record()` reads them."""

LEASE_COLUMNS = "lease_owner, lease_expires"
"""The lease columns (migration 3), selected after `RUN_COLUMNS` where `record()` reads them."""

USAGE_COLUMNS = "input_tokens, output_tokens, trace"
"""Token counts and the trace context (migration 5), selected after `LEASE_COLUMNS`."""

FORK_COLUMNS = "forked_from, forked_at"
"""Where a forked run came from (migration 9): the run and its step, after `USAGE_COLUMNS`."""

RUN_SELECT = f"{RUN_COLUMNS}, {LEASE_COLUMNS}, {USAGE_COLUMNS}, {FORK_COLUMNS}"
"""Every column `record()` reads, in its order."""

PENDING_COLUMNS = (
    "run_id, path, call_id, tool, reason, created_at, agent, arguments, prompt, detail,"
    " decisions, fingerprint, expires_at, approvers, policy"
)
"""The `pending` columns in the order `pending_row()` reads them (then `spec_name`, then
whether the row is decided); `pending_params` gives them for an insert."""

PENDING_INSERT = (
    f"INSERT INTO pending ({PENDING_COLUMNS}, spec_name)"
    f" VALUES ({', '.join(['?'] * 15)}, (SELECT spec_name FROM runs WHERE id = ?))"
)
"""Insert one `pending_params` row, its `spec_name` copied from the run (`?` placeholders:
`marks` turns them into another driver's)."""

PENDING_ADDED = (
    "agent TEXT NOT NULL DEFAULT ''",
    "arguments TEXT",
    "prompt TEXT",
    "detail TEXT",
    "decisions TEXT NOT NULL DEFAULT '[]'",
    "fingerprint TEXT NOT NULL DEFAULT ''",
    "expires_at {real}",
    "approvers TEXT NOT NULL DEFAULT '[]'",
    "spec_name TEXT NOT NULL DEFAULT ''",
)
"""The columns migration 8 adds to `pending` (`{real}`: the backend's float type)."""

PENDING_SPEC_BACKFILL = (
    "UPDATE pending SET spec_name = COALESCE("
    "(SELECT spec_name FROM runs WHERE runs.id = pending.run_id), '')"
)
"""Migration 8: the spec name of every pending row kept before it."""

POLICY_ADDED = "ALTER TABLE pending ADD COLUMN policy TEXT"
"""Migration 10: why a condition made a call wait (the document's `policy` as JSON text, NULL
for none), alike on both backends; rows kept before it have none."""

INBOX_INDEXES = (
    "CREATE INDEX pending_by_spec ON pending (spec_name, created_at, run_id, path)",
    "CREATE INDEX pending_by_tool ON pending (tool, created_at, run_id, path)",
    "CREATE INDEX pending_by_reason ON pending (reason, created_at, run_id, path)",
    "CREATE INDEX pending_by_expiry ON pending (expires_at, run_id, path)"
    " WHERE expires_at IS NOT NULL",
    "DROP INDEX runs_by_updated",
    "DROP INDEX runs_by_status",
    "CREATE INDEX runs_newest_first ON runs (updated_at DESC, id DESC)",
    "CREATE INDEX runs_by_status ON runs (status, updated_at DESC, id DESC)",
    "CREATE INDEX runs_by_spec ON runs (spec_name, updated_at DESC, id DESC)",
)
"""Migration 8's indexes, alike on both backends: each listing is a range scan in its order
(`pending` oldest first, filtered by spec, tool or reason; `expired` by expiry; `list_runs`
newest first, by status or spec) that stops at its limit, however many runs the store holds."""

READ = "cannot read the run store"
WRITE = "cannot write to the run store"
"""What a store was doing, as a `StoreError` says it (`Operation.doing`)."""

SPEC_COLUMNS = "digest, name, path, text, instructions, created_at"
"""The `specs` columns in the order `spec_row()` reads them."""

MIGRATIONS_TABLE = "callcc_migrations"


def dump_json(data: Any) -> str:
    """Compact JSON text, non-ASCII kept as is (smaller, and readable in a SQL shell).

    Lossless for any Python text: JSON escapes a NUL (`\\u0000`) and every control character
    anyway, and a lone surrogate (`"\\ud800"`, which UTF-8 cannot encode) is written as its
    `\\uXXXX` escape; `json.loads` reads both back as the same code point."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return escape_surrogates(text)


TEXT_MARK = "\ufdd0json:"
"""Starts a text column's value that is stored as a JSON string (see `encode_text`)."""


def encode_text(text: str | None) -> str | None:
    """A text column's value for `text`, which may hold a NUL or a lone surrogate (neither fits
    in a SQL text column): plain text as is, any other as `TEXT_MARK` + its ASCII JSON string.
    Text that starts with the mark is encoded too, so `decode_text` is exact for every input."""
    if text is None:
        return None
    if "\x00" in text or text.startswith(TEXT_MARK) or LONE_SURROGATE.search(text):
        return TEXT_MARK + json.dumps(text)
    return text


def decode_text(value: str | None) -> str | None:
    """The text `encode_text` stored."""
    if value is None or not value.startswith(TEXT_MARK):
        return value
    return cast(str, json.loads(value[len(TEXT_MARK) :]))


def load_json(text: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """The payload back; accepts a driver's already-decoded value."""
    if isinstance(text, dict):
        return text
    return cast(dict[str, Any], json.loads(text))


CUT_OFF = (
    "a run cut off here keeps its last checkpoint: `callcc recover RUN_ID` continues it once"
    " the lease of the process that was driving it expires (at once with --force, when you know"
    " that process is gone)"
)
"""What every store fault says about the run it interrupted (one wording, both backends)."""


def record(row: Sequence[Any]) -> RunRecord:
    """A `runs` row (selected with `RUN_COLUMNS`, then optionally `LEASE_COLUMNS`,
    `USAGE_COLUMNS` and `FORK_COLUMNS`: `RUN_SELECT`) as a RunRecord."""
    leased = len(row) > 11
    counted = len(row) > 13
    forked = len(row) > 16
    return RunRecord(
        run_id=row[0],
        spec_name=row[1],
        spec_digest=row[2],
        spec_path=row[3],
        agent=row[4],
        status=cast(RunStatus, row[5]),
        version=int(row[6]),
        nonce=row[7],
        output=decode_text(row[8]),
        created_at=float(row[9]),
        updated_at=float(row[10]),
        lease_owner=row[11] if leased else None,
        lease_expires=float(row[12]) if leased and row[12] is not None else None,
        input_tokens=int(row[13] or 0) if counted else 0,
        output_tokens=int(row[14] or 0) if counted else 0,
        trace=cast(dict[str, str], load_json(row[15])) if counted and row[15] else None,
        forked_from=row[16] if forked else None,
        forked_at=int(row[17]) if forked and row[17] is not None else None,
    )


def trace_param(trace: Mapping[str, str] | None) -> str | None:
    """The `trace` column's value: the context as JSON text, or NULL."""
    return dump_json(dict(trace)) if trace else None


def pending_row(row: Sequence[Any]) -> PendingRow:
    """A `pending` row (selected with `PENDING_COLUMNS`, `spec_name` and whether it is
    decided, each optional) as a PendingRow."""
    return PendingRow(
        run_id=row[0],
        path=cast(str, decode_text(row[1])),
        call_id=cast(str, decode_text(row[2])),
        tool=decode_text(row[3]),
        reason=row[4],
        created_at=float(row[5]),
        agent=row[6],
        arguments=load_json(row[7]) if row[7] is not None else None,
        prompt=decode_text(row[8]),
        detail=decode_text(row[9]),
        decisions=names(row[10]),
        fingerprint=row[11],
        expires_at=float(row[12]) if row[12] is not None else None,
        approvers=names(row[13]),
        policy=load_json(row[14]) if row[14] is not None else None,
        spec_name=row[15] if len(row) > 15 else "",
        decided=bool(row[16]) if len(row) > 16 else False,
    )


@functools.lru_cache(maxsize=256)
def names(text: str) -> tuple[str, ...]:
    """A JSON list of names (`decisions`, `approvers`) as a tuple; the few distinct lists a
    store holds are read once each (a page of pending rows repeats them on every row)."""
    return tuple(json.loads(text))


def marks(text: str, mark: str) -> str:
    """SQL written with `?` placeholders, for a driver whose placeholder is `mark` (`%s`)."""
    return text if mark == "?" else text.replace("?", mark)


def spec_params(spec: SpecRow) -> tuple[Any, ...]:
    """The `specs` row to insert (`SPEC_COLUMNS` order)."""
    instructions = json.dumps(spec.instructions, ensure_ascii=True, sort_keys=True)
    return (spec.digest, spec.name, spec.path, encode_text(spec.text), instructions,
            spec.created_at)  # fmt: skip


def spec_row(row: Sequence[Any]) -> SpecRow:
    """A `specs` row (selected with `SPEC_COLUMNS`) as a SpecRow."""
    return SpecRow(
        digest=row[0],
        name=row[1],
        path=row[2],
        text=cast(str, decode_text(row[3])),
        instructions=cast(dict[str, str], json.loads(row[4])),
        created_at=float(row[5]),
    )


def event(row: Sequence[Any]) -> Event:
    """An `events` row (frame, kind, data) as an Event."""
    kind = row[1]
    if kind not in ("messages", "state"):
        raise UsageError(f"the store holds an event of unknown kind {kind!r}")
    return Event(frame=row[0], kind=kind, data=load_json(row[2]))


def snapshot_event(data: str | bytes | dict[str, Any]) -> Event:
    """A `snapshots` row's data as the `snapshot` event that starts a rebuild."""
    return Event(frame="", kind="snapshot", data=load_json(data))


def check_snapshot(snapshot: Event | None) -> str | None:
    """The JSON text to keep for `settle(snapshot=...)`, refusing an event of another kind."""
    if snapshot is None:
        return None
    if snapshot.kind != "snapshot" or snapshot.frame != "":
        raise UsageError(
            f"settle keeps a snapshot event of the root frame, got a {snapshot.kind!r} event"
            f" of frame {snapshot.frame!r}; append other events with append"
        )
    return dump_json(snapshot.data)


def check_status(status: str | None) -> None:
    """Refuse a status the schema does not know before it reaches SQL."""
    if status is not None and status not in RUN_STATUSES:
        raise UsageError(
            f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}"
        )


def no_run(run_id: str, url: str) -> UsageError:
    """The error for an id the store does not hold."""
    return UsageError(f"no run {run_id!r} in {url}; `callcc runs list` shows the runs it holds")


def duplicate_run(run_id: str, url: str) -> ConflictError:
    """The error for `create_run` with an id that is taken."""
    return ConflictError(f"run {run_id!r} already exists in {url}", run_id=run_id)


def stale_version(run_id: str, expected: int, actual: int) -> ConflictError:
    """The error for a write that names a version the run has left behind."""
    return ConflictError(
        f"another process changed run {run_id!r}: it is at version {actual}, this process"
        f" expected version {expected} (a second resume or a recovery took the run over);"
        " reload the run before going on",
        run_id=run_id,
    )


def not_running(run_id: str, status: str) -> ConflictError:
    """The error for `take_over` of a run that is not running."""
    return ConflictError(
        f"run {run_id!r} is {status}, not running: there is no dead process to take it over"
        " from" + ("; resume it instead" if status == "suspended" else ""),
        run_id=run_id,
    )


def lease_refusal(
    run_id: str, owner: str | None, expires: float | None, now: float, *, force: bool
) -> LeaseHeldError | None:
    """The refusal to take over a run whose lease is live at `now` (the store's clock), or
    None when there is no lease, it expired, or `force` says to take it anyway."""
    if force or owner is None or expires is None or expires <= now:
        return None
    return LeaseHeldError(run_id, owner=owner, expires_at=expires, remaining=expires - now)


def claim_refusal(
    run_id: str, nonce: str, *, status: str, waits_on: str | None, consumed: bool
) -> ConflictError | None:
    """Why a claim of `nonce` must fail, or None when the run is suspended on exactly it."""
    if consumed:
        return already_resumed(run_id)
    if status == "failed" and waits_on is not None and waits_on == nonce:
        return None  # a failed run that kept where to resume (its failing model call)
    if status == "running":
        reason = "the run is running: another process resumed it and is driving it"
    elif status in ("finished", "failed", "stopped"):
        reason = f"the run has {status}: another process resumed it"
    elif waits_on != nonce:
        reason = "the run waits on another continuation (another process resumed it, or the"
        reason += " nonce is unknown)"
    else:
        return None
    return ConflictError(f"cannot resume run {run_id!r}: {reason}", run_id=run_id)


def already_resumed(run_id: str) -> ConflictError:
    """The error for a claim of a nonce that an earlier claim consumed."""
    return ConflictError(
        f"cannot resume run {run_id!r}: another process resumed it: this continuation was"
        " already resumed (its nonce is consumed); resume from the run's latest continuation",
        run_id=run_id,
    )


def newer_schema(url: str, applied: int, known: int) -> UsageError:
    """The error for a store migrated by a newer callcc than this one."""
    return UsageError(
        f"the store {url} has schema version {applied}, this callcc knows versions up to"
        f" {known}; upgrade callcc"
    )


def mask_url(url: str) -> str:
    """`url` with any password replaced by `***` (in the user info and in the query); the
    rest of the text is left exactly as written."""
    parts = urlsplit(url)
    masked = url
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        name = user.split(":", 1)[0]
        masked = masked.replace(parts.netloc, f"{name}:***@{host}", 1)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in pairs):
        hidden = [(key, "***" if key == "password" else value) for key, value in pairs]
        head, _, _ = masked.partition("?")
        masked = f"{head}?{urlencode(hidden, safe='*')}"
        if parts.fragment:
            masked += f"#{parts.fragment}"
    return masked


def check_id(run_id: str) -> None:
    """Refuse a run id no store can hold or find (UsageError, exit 2): empty, over 200
    characters, or holding a NUL, another control character or a lone surrogate (which is
    what a byte that is not UTF-8 in a shell argument arrives as)."""
    if not isinstance(run_id, str):
        raise UsageError(f"a run id is text, not {type(run_id).__name__}")
    bad = next((c for c in run_id if c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff"), None)
    if run_id and len(run_id) <= 200 and bad is None:
        return
    why = (
        "is empty"
        if not run_id
        else f"is {len(run_id)} characters long (at most 200)"
        if len(run_id) > 200
        else f"holds U+{ord(bad or ' '):04X}, which a run id cannot"
    )
    raise UsageError(
        f"run id {run_id[:60]!r} {why}; use printable text (letters, digits, `-`, `_`, `.`)"
    )


def check_new(run: RunRecord) -> None:
    """A new run is stored as running at version 0 (`start_run` then counts its first events as
    version 1); refuse a record that says otherwise."""
    check_id(run.run_id)
    if run.status != "running" or run.version != 0:
        raise UsageError(
            f"a new run is stored as running at version 0, got status {run.status!r}"
            f" at version {run.version}; settle the run after creating it"
        )


def pending_params(run_id: str, pending: Sequence[PendingRow]) -> list[tuple[Any, ...]]:
    """The `pending` rows to insert with `PENDING_INSERT`; each must name `run_id`."""
    rows: list[tuple[Any, ...]] = []
    for p in pending:
        if p.run_id != run_id:
            raise UsageError(f"pending row {p.path!r} names run {p.run_id!r}, not {run_id!r}")
        rows.append(
            (
                p.run_id,
                encode_text(p.path),
                encode_text(p.call_id),
                encode_text(p.tool),
                p.reason,
                p.created_at,
                p.agent,
                dump_json(p.arguments) if p.arguments is not None else None,
                encode_text(p.prompt),
                encode_text(p.detail),
                dump_json(list(p.decisions)),
                p.fingerprint,
                p.expires_at,
                dump_json(list(p.approvers)),
                dump_json(p.policy) if p.policy is not None else None,
                run_id,
            )
        )
    return rows


# -- retention (one plan for both backends; `mark` is the driver's placeholder) ---------------

RUN_TABLES = ("events", "pending", "consumed_nonces", "snapshots", "decisions", "audit")
"""The tables whose rows belong to a run (by `run_id`), deleted with it."""


def delete_plan(mark: str, run_id: str) -> Plan[bool]:
    """Delete a run and every row that belongs to it; whether there was such a run."""
    check_id(run_id)
    for table in RUN_TABLES:
        yield Query(f"DELETE FROM {table} WHERE run_id = {mark}", (run_id,))
    done = yield Query(f"DELETE FROM runs WHERE id = {mark}", (run_id,))
    return done.rowcount == 1


def prune_statuses(
    status: RunStatus | Sequence[RunStatus], include_suspended: bool
) -> tuple[RunStatus, ...]:
    """The statuses to prune, checked: known ones, at least one, and no running or
    suspended one unless `include_suspended`."""
    statuses: tuple[RunStatus, ...] = (status,) if isinstance(status, str) else tuple(status)
    if not statuses:
        raise UsageError("prune needs at least one status: finished, failed or stopped")
    for one in statuses:
        check_status(one)
    guarded = [s for s in statuses if s in PRUNE_GUARDED]
    if guarded and not include_suspended:
        raise UsageError(
            f"a {guarded[0]} run may still go on, so prune keeps {guarded[0]} runs unless"
            " told otherwise: pass include_suspended=True (--include-suspended)"
        )
    return statuses


PRUNE_CHUNK = 500
"""Run ids per `IN (...)` list when prune deletes: under every driver's parameter limit (SQLite
before 3.32 takes 999), however many runs one prune deletes."""

RESUMABLE_FAILED = "status = 'failed' AND nonce IS NOT NULL"
"""A failed run that kept its nonce: its failing call can still be resumed (or stopped), so
prune guards it as it guards a suspended run."""


def prune_plan(
    mark: str,
    statuses: Sequence[RunStatus],
    older_than: float,
    *,
    now: float,
    dry_run: bool,
    include_suspended: bool,
    lock: str = "",
) -> Plan[list[str]]:
    """The runs of `statuses` not updated since `now - older_than`, least recently updated
    first, deleted with their rows (unless `dry_run`) in the same transaction. A failed run
    that can still be resumed stays unless `include_suspended`.

    The runs are chosen once, and every table is then deleted by that list of ids, so a run
    goes whole or not at all. `lock` ends the choosing SELECT when not `dry_run`: `FOR UPDATE`
    on PostgreSQL, so a claim that comes meanwhile waits for this transaction instead of
    turning a chosen run back to running half deleted (SQLite's `BEGIN IMMEDIATE` already
    serialises every writer: "")."""
    if (
        isinstance(older_than, bool)
        or not isinstance(older_than, int | float)
        or not older_than >= 0
    ):
        raise UsageError(
            f"older_than must be a number of seconds, 0 or more (got {older_than!r}; "
            "30 days is 30 * 86400)"
        )
    gone = f"status IN ({', '.join([mark] * len(statuses))}) AND updated_at < {mark}"
    if not include_suspended:
        gone += f" AND NOT ({RESUMABLE_FAILED})"
    # never a run a live process drives: its heartbeat renews the lease, not updated_at, so a
    # tool running longer than the age would make it look old
    gone += f" AND (lease_expires IS NULL OR lease_expires <= {mark})"
    params = (*statuses, now - older_than, now)
    locked = "" if dry_run else lock
    found = yield Query(f"SELECT id FROM runs WHERE {gone} ORDER BY updated_at, id{locked}", params)
    runs = [str(row[0]) for row in found.rows]
    if dry_run:
        return runs
    for start in range(0, len(runs), PRUNE_CHUNK):
        chunk = runs[start : start + PRUNE_CHUNK]
        among = f"IN ({', '.join([mark] * len(chunk))})"
        for table in RUN_TABLES:
            yield Query(f"DELETE FROM {table} WHERE run_id {among}", chunk)
        yield Query(f"DELETE FROM runs WHERE id {among}", chunk)
    return runs
