"""The shared run store: PostgreSQL through psycopg 3, for many processes on many machines.

The only module that imports the driver. One connection per store for the blocking methods
(autocommit off, one explicit transaction per method, reconnected when broken). Version checks
are conditional updates (`UPDATE ... WHERE version = %s`); `claim` and `take_over` lock the
run's row with `SELECT ... FOR UPDATE`, so concurrent claims queue on the row and exactly one
finds the run still suspended. Migrations run under `pg_advisory_xact_lock`, so concurrent
opens take turns.

URL: `postgresql://user[:password]@host[:port]/db[?libpq params][&schema=name]`. `schema` is
callcc's own parameter: the schema is created if missing and put first on the search path, so
several stores (or test runs) can share one database.

Each method's SQL and checks are one `Operation` (`_op_*`, a sans-IO body: `engine.store._plan`)
that the blocking store runs on its connection and `aio` (`AsyncPostgresStore`) on a small
pool of asyncio connections (`psycopg_pool.AsyncConnectionPool`), so the two faces never
differ in what they write or refuse.

Faults: every operation runs through `_run` (of either face). A connection the server ended (a
restart, a failover, `pg_terminate_backend`) is reopened (for up to `RECONNECT_SECONDS`; the
pool drops every idle connection that died with it) and the operation tried again;
a write first checks whether it landed before the connection went (the run's version is one past
the expected one with this write's own `updated_at`, or its last events are this append's own,
or the nonce is consumed with this claim's own time), so nothing is written twice. Any other
driver error, or a server that stays away, becomes a `StoreError`.

A checkpoint updates the run's row (version, lease) but changes no indexed column: `append`
moves `updated_at` only once it is a second old (`UPDATED_AT_STEP`). So the update is HOT, the
row's old versions are pruned in place and no index gains an entry per checkpoint; otherwise a
long run's every lookup of its row wades through thousands of dead index entries until the next
vacuum, and a checkpoint costs more the longer the run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from engine.errors import StoreError, UsageError
from engine.store import _plan, _sql
from engine.store._aio import AsyncFace
from engine.store._ops import SharedOps, operation
from engine.store._plan import Operation, Plan, Query
from engine.store._sql import (
    FORK_COLUMNS,
    LEASE_COLUMNS,
    MIGRATIONS_TABLE,
    PENDING_INSERT,
    READ,
    RUN_COLUMNS,
    RUN_SELECT,
    SPEC_COLUMNS,
    WRITE,
)
from engine.store.base import Event, Lease, PendingRow, RunRecord, RunStatus, SpecRow

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool  # imported when the async face is first used

MIGRATION_LOCK = 0x63616C6C6363  # "callcc": the advisory lock key concurrent opens queue on
CONNECT_TIMEOUT_SECONDS = 10
RECONNECT_SECONDS = 30.0
"""How long a lost connection is retried before the method gives up with a StoreError."""
POOL_SIZE = 4
"""Connections the async face of one store opens at most (each run's write is one short
transaction, so a few connections carry hundreds of runs that wait on models and tools)."""
T = TypeVar("T")

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: runs, their append-only events, the pending decisions, consumed nonces. `data` is
    # `json`, not `jsonb`: it is never queried inside, and `json` keeps the text exactly (key
    # order, number spelling, `\u0000` which `jsonb` refuses) and costs no conversion.
    (
        """CREATE TABLE runs (
            id text PRIMARY KEY,
            spec_name text NOT NULL,
            spec_digest text NOT NULL,
            spec_path text,
            agent text NOT NULL,
            status text NOT NULL
                CHECK (status IN ('running', 'suspended', 'finished', 'failed')),
            version bigint NOT NULL,
            nonce text,
            output text,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL
        )""",
        "CREATE INDEX runs_by_updated ON runs (updated_at DESC)",
        "CREATE INDEX runs_by_status ON runs (status, updated_at DESC)",
        """CREATE TABLE events (
            run_id text NOT NULL,
            seq integer NOT NULL,
            frame text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('messages', 'state')),
            data json NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE pending (
            run_id text NOT NULL,
            path text NOT NULL,
            call_id text NOT NULL,
            tool text,
            reason text NOT NULL,
            created_at double precision NOT NULL,
            PRIMARY KEY (run_id, path)
        )""",
        "CREATE INDEX pending_oldest_first ON pending (created_at, run_id, path)",
        """CREATE TABLE consumed_nonces (
            nonce text PRIMARY KEY,
            run_id text NOT NULL,
            consumed_at double precision NOT NULL
        )""",
    ),
    # 2: status `stopped` (a run ended by a `stop` decision).
    (
        "ALTER TABLE runs DROP CONSTRAINT runs_status_check",
        "ALTER TABLE runs ADD CONSTRAINT runs_status_check"
        " CHECK (status IN ('running', 'suspended', 'finished', 'failed', 'stopped'))",
    ),
    # 3: leases: which process drives a running run, and until when (engine.store.base); the
    # expiry is written and judged by the server's clock, which every client shares.
    ("ALTER TABLE runs ADD COLUMN lease_owner text, ADD COLUMN lease_expires double precision",),
    # 4: the specs runs were started with, their texts kept once per digest, so a run resumes
    # from any directory and any machine.
    (
        """CREATE TABLE specs (
            digest text PRIMARY KEY,
            name text NOT NULL,
            path text NOT NULL,
            text text NOT NULL,
            instructions text NOT NULL,
            created_at double precision NOT NULL
        )""",
    ),
    # 5: the tokens a run spent (its totals as of its last settled drive, engine.usage) and
    # the trace context of the span that suspended it (engine.tracing), for a resume to link.
    (
        "ALTER TABLE runs ADD COLUMN input_tokens bigint NOT NULL DEFAULT 0,"
        " ADD COLUMN output_tokens bigint NOT NULL DEFAULT 0, ADD COLUMN trace text",
    ),
    # 6: `delete` and `prune` find a run's consumed nonces by its id.
    ("CREATE INDEX consumed_nonces_by_run ON consumed_nonces (run_id)",),
    # 7: each run's latest snapshot (its whole stack as its first `seq` events rebuild it), so
    # a resume reads one row and the events after it instead of the run's whole history.
    # Room on every page of `runs` for the HOT updates of checkpoints (see the module doc).
    (
        "CREATE TABLE snapshots"
        " (run_id text PRIMARY KEY, seq integer NOT NULL, data json NOT NULL)",
        "ALTER TABLE runs SET (fillfactor = 70)",
    ),
    # 8: the inbox (see `engine.store.sqlite`'s migration 8: the same tables and indexes).
    (
        "ALTER TABLE pending "
        + ", ".join(f"ADD COLUMN {c.format(real='double precision')}" for c in _sql.PENDING_ADDED),
        _sql.PENDING_SPEC_BACKFILL,
        *_sql.INBOX_INDEXES,
        """CREATE TABLE decisions (
            run_id text NOT NULL,
            nonce text NOT NULL,
            path text NOT NULL,
            seq integer NOT NULL,
            fingerprint text NOT NULL,
            decision text NOT NULL,
            user_name text NOT NULL,
            at double precision NOT NULL,
            PRIMARY KEY (run_id, nonce, path)
        )""",
        """CREATE TABLE audit (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id text NOT NULL,
            at double precision NOT NULL,
            user_name text NOT NULL,
            action text NOT NULL,
            path text,
            call_id text,
            tool text,
            fingerprint text,
            decision text,
            reason text,
            args_before text,
            args_after text,
            detail text
        )""",
        "CREATE INDEX audit_by_run ON audit (run_id, seq)",
    ),
    # 9: forks (engine.fork): the run a fork was made from and the step it was made at.
    ("ALTER TABLE runs ADD COLUMN forked_from text, ADD COLUMN forked_at integer",),
    # 10: why a condition (`approval.when`) made a pending call wait, so the inbox shows it.
    (_sql.POLICY_ADDED,),
)
"""Numbered schema changes (version = index + 1), applied in order on open; append only."""

# A successful bump proves no other write committed since this statement's snapshot (every
# write bumps the version), so `last` sees every earlier event of the run.
_APPEND = """
WITH bumped AS (
    UPDATE runs SET version = version + 1,
        updated_at = CASE WHEN updated_at < %s THEN %s ELSE updated_at END{lease}
    WHERE id = %s AND version = %s RETURNING id
), last AS (
    SELECT COALESCE(MAX(seq), -1) AS seq FROM events WHERE run_id = %s
)
INSERT INTO events (run_id, seq, frame, kind, data)
SELECT bumped.id, last.seq + e.n, e.frame, e.kind, e.data::json
FROM bumped, last,
    unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS e (frame, kind, data, n)
"""

UPDATED_AT_STEP = 1.0
"""Seconds: `append` moves a run's `updated_at` only when it is older than this (see above)."""

_LAST_EVENTS = """
SELECT frame, kind, data::text FROM events WHERE run_id = %s ORDER BY seq DESC LIMIT %s
"""

_KEEP_SNAPSHOT = """
INSERT INTO snapshots (run_id, seq, data)
VALUES (%s, (SELECT COALESCE(MAX(seq), -1) + 1 FROM events WHERE run_id = %s), %s::json)
ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, data = excluded.data
"""
"""Keep a run's snapshot, standing for every event it has (replacing the one before)."""

_NOW = "extract(epoch FROM clock_timestamp())::float8"
"""The server's clock in seconds since the epoch: the one clock every lease is judged by."""

_LEASE_SET = f"lease_owner = %s, lease_expires = {_NOW} + %s"
"""Set the lease (owner, seconds) in an UPDATE."""
_LEASE_SETS = _LEASE_SET + ", "
"""`_LEASE_SET` as the `sets` of `_bump`, which appends the version and the time."""

_APPENDS = {False: _APPEND.format(lease=""), True: _APPEND.format(lease=", " + _LEASE_SET)}
"""`_APPEND` without and with the renewal of a lease (owner, seconds after the time)."""

_START_EVENTS = """
INSERT INTO events (run_id, seq, frame, kind, data)
SELECT %s, e.n - 1, e.frame, e.kind, e.data::json
FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS e (frame, kind, data, n)
"""


def split_url(url: str) -> tuple[str, str | None]:
    """The libpq connection URL without callcc's `schema` parameter, and that schema."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in pairs if key == "schema"]
    if schemas and not schemas[-1]:
        raise UsageError(f"empty schema= in the store URL {_sql.mask_url(url)}")
    # quote, not quote_plus: libpq reads %20 as a blank but `+` as a plus sign
    rest = urlencode([(key, value) for key, value in pairs if key != "schema"], quote_via=quote)
    return urlunsplit(parts._replace(query=rest)), (schemas[-1] if schemas else None)


class PostgresStore(SharedOps):
    """A RunStore in PostgreSQL (see `engine.store.base.RunStore` for the contract).

    Each method builds an `Operation` (`_op_*`: its SQL and its checks, as a sans-IO body) and
    runs it on the store's one connection; `aio`, the async face, runs the very same
    operations on a small pool of asyncio connections."""

    _mark = "%s"
    _lock_row = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        self.url = _sql.mask_url(url)
        self._kept_specs: set[str] = set()
        self._conninfo, self.schema = split_url(url)
        self._lock = threading.Lock()
        self._aio: AsyncPostgresStore | None = None
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            raise self._fault("cannot connect to the run store", exc) from None
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- connections and transactions ----------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = psycopg.connect(self._conninfo, **self._connect_kwargs())
        if self.schema is not None:
            conn.execute(*self._search_path())
            conn.commit()
        return conn

    def _connect_kwargs(self) -> dict[str, Any]:
        """What every connection of this store is opened with (the pool's too)."""
        kwargs: dict[str, Any] = {"autocommit": False}
        if "connect_timeout" not in self._conninfo:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        return kwargs

    def _search_path(self) -> tuple[str, tuple[str]]:
        """The statement that puts the store's schema first on a connection's search path."""
        assert self.schema is not None
        quoted = '"' + self.schema.replace('"', '""') + '"'
        return "SELECT set_config('search_path', %s, false)", (quoted,)

    def _do(self, op: Operation[T]) -> T:
        """Every method's operation (`_op_NAME`, see `engine.store._ops`): `_run`."""
        return self._run(op)

    def _run(self, op: Operation[T]) -> T:
        """`op` in one transaction. When the connection is lost, reconnect and, unless
        `op.landed` finds the write already committed (and returns its result), run it again."""
        if op.skip:
            return None  # type: ignore[return-value]
        with self._lock:
            try:
                if self._conn.broken or self._conn.closed:
                    self._conn = self._reconnect(op.doing, None)
                return op.done(self._once(op.body))
            except psycopg.Error as exc:
                if not (self._conn.broken or self._conn.closed):
                    raise self._fault(op.doing, exc) from None
                self._conn = self._reconnect(op.doing, exc)
            try:
                done = self._once(op.landed) if op.landed is not None else None
                return op.done(done if done is not None else self._once(op.body))
            except psycopg.Error as exc:
                raise self._fault(op.doing, exc) from None

    def _once(self, body: Callable[[], Plan[T]]) -> T:
        with self._conn.transaction(), self._conn.cursor() as cur:
            return _plan.run(cur, body())

    def _reconnect(
        self, doing: str, lost: psycopg.Error | None
    ) -> psycopg.Connection[tuple[Any, ...]]:
        """A new connection, retried for `RECONNECT_SECONDS`; StoreError when none comes."""
        self._conn.close()
        deadline = time.monotonic() + RECONNECT_SECONDS
        delay = 0.05
        while True:
            try:
                return self._connect()
            except psycopg.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise self._gone(doing, lost, exc) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _gone(self, doing: str, lost: psycopg.Error | None, exc: psycopg.Error) -> StoreError:
        """The StoreError for a lost connection no new one replaced in time."""
        return StoreError(
            f"{doing}: the connection was lost and no new one could be made in"
            f" {RECONNECT_SECONDS:g} s",
            url=self.url,
            reason=_one_line(lost or exc) + f"; then: {_one_line(exc)}",
            hint=f"check that the server is up and reachable; {_sql.CUT_OFF}",
        )

    def _fault(self, doing: str, exc: psycopg.Error) -> StoreError:
        """The StoreError for a driver error that is not a lost connection."""
        if isinstance(exc, psycopg.OperationalError):
            hint = "check the URL, that the server is up, and the user's rights"
        else:
            hint = "the store refused the statement; check the server's log"
        return StoreError(doing, url=self.url, reason=_one_line(exc), hint=hint)

    def _migrate(self) -> None:
        """Apply the migrations this database lacks, one opener at a time."""
        known = len(MIGRATIONS)
        if self._run(Operation("cannot open the run store", _schema_version)) == known:
            return  # the common case takes no lock
        self._run(Operation("cannot migrate the run store", self._apply_migrations))

    def _apply_migrations(self) -> Plan[None]:
        """The migrations this database lacks, under the advisory lock."""
        known = len(MIGRATIONS)
        yield Query("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        if self.schema is not None:
            yield Query(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
        yield Query(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}"
            " (version integer PRIMARY KEY, applied_at double precision NOT NULL)"
        )
        applied = yield from _schema_version()
        if applied > known:
            raise _sql.newer_schema(self.url, applied, known)
        for version in range(applied + 1, known + 1):
            for statement in MIGRATIONS[version - 1]:
                yield Query(statement)
            yield Query(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, applied_at) VALUES (%s, %s)",
                (version, time.time()),
            )

    def _bump(self, run_id: str, version: int, now: float, sets: str, *args: Any) -> Plan[int]:
        """`UPDATE runs SET <sets>, version + 1` if the run is at `version`, else the refusal."""
        done = yield Query(
            f"UPDATE runs SET {sets}version = version + 1, updated_at = %s"
            " WHERE id = %s AND version = %s",
            (*args, now, run_id, version),
        )
        if done.rowcount == 1:
            return version + 1
        raise (yield from self._refusal(run_id, version))

    def _refusal(self, run_id: str, version: int) -> Plan[Exception]:
        """Why a write expecting `version` matched no row: an unknown run or a stale version."""
        row = (yield Query("SELECT version FROM runs WHERE id = %s", (run_id,))).one()
        if row is None:
            return _sql.no_run(run_id, self.url)
        return _sql.stale_version(run_id, version, int(row[0]))

    @staticmethod
    def _bumped(run_id: str, version: int, now: float) -> Callable[[], Plan[int | None]]:
        """Whether a bump from `version` stamped `now` committed before the connection went:
        the run is at `version + 1` with that very `updated_at`."""

        def landed() -> Plan[int | None]:
            found = yield Query("SELECT version, updated_at FROM runs WHERE id = %s", (run_id,))
            row = found.one()
            if row is not None and int(row[0]) == version + 1 and float(row[1]) == now:
                return version + 1
            return None

        return landed

    # -- the operations (sans-IO: shared by the sync methods and `aio`) ------------------------

    def _op_create_run(self, run: RunRecord) -> Operation[bool]:
        _sql.check_new(run)

        def body() -> Plan[bool]:
            done = yield Query(
                f"INSERT INTO runs ({RUN_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, 'running', 0, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    run.run_id,
                    run.spec_name,
                    run.spec_digest,
                    run.spec_path,
                    run.agent,
                    run.nonce,
                    _sql.encode_text(run.output),
                    run.created_at,
                    run.updated_at,
                ),
            )
            if done.rowcount != 1:
                raise _sql.duplicate_run(run.run_id, self.url)
            return True

        def landed() -> Plan[bool | None]:
            found = yield Query("SELECT version, created_at FROM runs WHERE id = %s", (run.run_id,))
            row = found.one()
            ours = row is not None and int(row[0]) == 0 and float(row[1]) == run.created_at
            return True if ours else None

        return Operation(WRITE, body, landed)

    def _op_start_run(
        self, run: RunRecord, events: Sequence[Event], *, lease: Lease
    ) -> Operation[int]:
        """Insert a new run with its first events and its lease in one transaction."""
        _sql.check_new(run)
        version = 1 if events else 0
        columns = _columns(events)

        def body() -> Plan[int]:
            done = yield Query(
                f"INSERT INTO runs ({RUN_COLUMNS}, {LEASE_COLUMNS}, {FORK_COLUMNS})"
                f" VALUES (%s, %s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s, {_NOW} + %s,"
                " %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    run.run_id,
                    run.spec_name,
                    run.spec_digest,
                    run.spec_path,
                    run.agent,
                    version,
                    run.nonce,
                    _sql.encode_text(run.output),
                    run.created_at,
                    run.updated_at,
                    lease.owner,
                    lease.seconds,
                    run.forked_from,
                    run.forked_at,
                ),
            )
            if done.rowcount != 1:
                raise _sql.duplicate_run(run.run_id, self.url)
            if events:
                yield Query(_START_EVENTS, (run.run_id, *columns))
            return version

        def landed() -> Plan[int | None]:  # our start committed: the row bears our time
            found = yield Query("SELECT created_at FROM runs WHERE id = %s", (run.run_id,))
            row = found.one()
            return version if row is not None and float(row[0]) == run.created_at else None

        return Operation(WRITE, body, landed)

    def _op_append(
        self, run_id: str, version: int, events: Sequence[Event], *, lease: Lease | None = None
    ) -> Operation[int]:
        """Append events if the run is at `version` (renewing `lease`); return version + 1."""
        # One statement bumps the version and inserts the events: a checkpoint is one round
        # trip plus the commit. When the bump matches no row nothing is inserted.
        now = time.time()
        landed = self._bumped(run_id, version, now)
        sets: tuple[Any, ...] = (
            ("",) if lease is None else (_LEASE_SETS, lease.owner, lease.seconds)
        )
        if not events:
            return Operation(WRITE, lambda: self._bump(run_id, version, now, *sets), landed)
        columns = _columns(events)

        def body() -> Plan[int]:
            done = yield Query(
                _APPENDS[lease is not None],
                (now - UPDATED_AT_STEP, now, *sets[1:], run_id, version, run_id, *columns),
            )
            if done.rowcount == len(events):
                return version + 1
            raise (yield from self._refusal(run_id, version))

        def appended() -> Plan[int | None]:  # at version + 1, with our events last
            row = (yield Query("SELECT version FROM runs WHERE id = %s", (run_id,))).one()
            if row is None or int(row[0]) != version + 1:
                return None
            found = yield Query(_LAST_EVENTS, (run_id, len(events)))
            ours = list(zip(*columns, strict=True))
            return version + 1 if [tuple(r) for r in reversed(found.rows)] == ours else None

        return Operation(WRITE, body, appended)

    def _op_settle(
        self,
        run_id: str,
        version: int,
        *,
        status: RunStatus,
        nonce: str | None,
        output: str | None,
        pending: Sequence[PendingRow],
        spec_digest: str | None = None,
        usage: tuple[int, int] | None = None,
        trace: Mapping[str, str] | None = None,
        snapshot: Event | None = None,
    ) -> Operation[int]:
        """Record a drive's outcome and replace the pending rows if at `version` (keeping
        `snapshot` as the run's latest)."""
        _sql.check_status(status)
        rows = _sql.pending_params(run_id, pending)
        kept = _sql.check_snapshot(snapshot)
        now = time.time()

        def body() -> Plan[int]:
            new = yield from self._bump(
                run_id,
                version,
                now,
                "status = %s, nonce = %s, output = %s, spec_digest = COALESCE(%s, spec_digest),"
                " lease_owner = NULL, lease_expires = NULL,"
                " input_tokens = COALESCE(%s, input_tokens),"
                " output_tokens = COALESCE(%s, output_tokens), trace = %s, ",
                status,
                nonce,
                _sql.encode_text(output),
                spec_digest,
                *(usage or (None, None)),
                _sql.trace_param(trace),
            )
            yield Query("DELETE FROM pending WHERE run_id = %s", (run_id,))
            if rows:
                yield Query(_sql.marks(PENDING_INSERT, "%s"), rows, many=True)
            if kept is not None:
                yield Query(_KEEP_SNAPSHOT, (run_id, run_id, kept))
            return new

        return Operation(WRITE, body, self._bumped(run_id, version, now))

    def _op_claim(self, run_id: str, nonce: str, *, lease: Lease | None = None) -> Operation[int]:
        """Take a run suspended on `nonce` for a resume, once per nonce; return the version."""
        now = time.time()

        def body() -> Plan[int]:
            found = yield Query(
                "SELECT status, nonce, version FROM runs WHERE id = %s FOR UPDATE", (run_id,)
            )
            row = found.one()
            if row is None:
                raise _sql.no_run(run_id, self.url)
            seen = yield Query("SELECT 1 FROM consumed_nonces WHERE nonce = %s", (nonce,))
            refusal = _sql.claim_refusal(
                run_id, nonce, status=row[0], waits_on=row[1], consumed=seen.one() is not None
            )
            if refusal is not None:
                raise refusal
            done = yield Query(
                "INSERT INTO consumed_nonces (nonce, run_id, consumed_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (nonce) DO NOTHING",
                (nonce, run_id, now),
            )
            if done.rowcount != 1:  # consumed by a claim of another run that holds the same nonce
                raise _sql.already_resumed(run_id)
            yield Query(
                "UPDATE runs SET status = 'running', version = version + 1, updated_at = %s,"
                f" lease_owner = %s, lease_expires = {_NOW} + %s WHERE id = %s",
                (
                    now,
                    lease.owner if lease else None,
                    lease.seconds if lease else None,
                    run_id,
                ),
            )
            yield Query("DELETE FROM pending WHERE run_id = %s", (run_id,))
            return int(row[2]) + 1

        def landed() -> Plan[int | None]:  # our claim committed: the nonce bears our time
            found = yield Query(
                "SELECT r.version FROM consumed_nonces c JOIN runs r ON r.id = c.run_id"
                " WHERE c.nonce = %s AND c.run_id = %s AND c.consumed_at = %s",
                (nonce, run_id, now),
            )
            row = found.one()
            return int(row[0]) if row is not None else None

        return Operation(WRITE, body, landed)

    def _op_take_over(
        self, run_id: str, version: int, *, lease: Lease | None = None, force: bool = False
    ) -> Operation[int]:
        """Bump the version of a running run whose process died and give its lease to `lease`;
        LeaseHeldError while its lease is live, unless `force`; return the new version."""
        now = time.time()
        sets: tuple[Any, ...] = (
            ("",) if lease is None else (_LEASE_SETS, lease.owner, lease.seconds)
        )

        def body() -> Plan[int]:
            found = yield Query(
                f"SELECT status, lease_owner, lease_expires, {_NOW} FROM runs WHERE id = %s"
                " FOR UPDATE",
                (run_id,),
            )
            row = found.one()
            if row is not None and row[0] != "running":
                raise _sql.not_running(run_id, row[0])
            if row is not None:
                refusal = _sql.lease_refusal(run_id, row[1], row[2], row[3], force=force)
                if refusal is not None:
                    raise refusal
            return (yield from self._bump(run_id, version, now, *sets))

        return Operation(WRITE, body, self._bumped(run_id, version, now))

    def _op_renew(self, run_id: str, lease: Lease) -> Operation[bool]:
        """Extend the lease `lease.owner` holds on a running run; False when it holds none."""

        def body() -> Plan[bool]:
            done = yield Query(
                f"UPDATE runs SET lease_expires = {_NOW} + %s"
                " WHERE id = %s AND lease_owner = %s AND status = 'running'",
                (lease.seconds, run_id, lease.owner),
            )
            return done.rowcount == 1

        return Operation(WRITE, body)  # renewing twice is harmless

    def _run_row(self, run_id: str) -> Plan[tuple[Any, ...]]:
        _sql.check_id(run_id)
        found = yield Query(f"SELECT {RUN_SELECT} FROM runs WHERE id = %s", (run_id,))
        row = found.one()
        if row is None:
            raise _sql.no_run(run_id, self.url)
        return row

    @staticmethod
    def _event_rows(run_id: str) -> Plan[list[Event]]:
        found = yield Query(
            "SELECT frame, kind, data FROM events WHERE run_id = %s ORDER BY seq", (run_id,)
        )
        return [_sql.event(row) for row in found.rows]

    def _op_get_run(self, run_id: str) -> Operation[RunRecord]:
        """The run; UsageError naming the id when unknown."""

        def body() -> Plan[RunRecord]:
            return _sql.record((yield from self._run_row(run_id)))

        return Operation(READ, body)

    def _op_events(self, run_id: str) -> Operation[list[Event]]:
        """All events of a run, in append order."""
        return Operation(READ, lambda: self._event_rows(run_id))

    def _op_snapshot(self, run_id: str) -> Operation[tuple[RunRecord, list[Event]]]:
        """The run, its latest snapshot and the events after it, read in one transaction
        (REPEATABLE READ, so they agree)."""

        # REPEATABLE READ, so the row and the events agree
        # (the latest snapshot first, then the events after it)
        def body() -> Plan[tuple[RunRecord, list[Event]]]:
            yield Query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = yield from self._run_row(run_id)
            kept = (
                yield Query("SELECT seq, data FROM snapshots WHERE run_id = %s", (run_id,))
            ).one()
            found = yield Query(
                "SELECT frame, kind, data FROM events WHERE run_id = %s AND seq >= %s ORDER BY seq",
                (run_id, kept[0] if kept else 0),
            )
            head = [_sql.snapshot_event(kept[1])] if kept else []
            return _sql.record(row), head + [_sql.event(r) for r in found.rows]

        return Operation(READ, body)

    def _op_put_spec(self, spec: SpecRow) -> Operation[None]:
        """Keep a spec's texts under its digest, once (idempotent: retried as it is)."""

        # idempotent: retried as it is
        def body() -> Plan[None]:
            yield Query(
                f"INSERT INTO specs ({SPEC_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (digest) DO NOTHING",
                _sql.spec_params(spec),
            )

        return Operation(
            WRITE,
            body,
            committed=lambda _: self._kept_specs.add(spec.digest),
            skip=spec.digest in self._kept_specs,
        )

    def _op_get_spec(self, digest: str) -> Operation[SpecRow | None]:
        """The spec kept under `digest`, or None."""

        def body() -> Plan[SpecRow | None]:
            found = yield Query(f"SELECT {SPEC_COLUMNS} FROM specs WHERE digest = %s", (digest,))
            row = found.one()
            return _sql.spec_row(row) if row is not None else None

        return Operation(READ, body)

    def _op_delete(self, run_id: str) -> Operation[bool]:
        """Delete a run and every row that belongs to it; False when there was none."""
        return Operation(WRITE, lambda: _sql.delete_plan("%s", run_id))  # again: a no-op

    def _op_prune(
        self,
        *,
        status: RunStatus | Sequence[RunStatus],
        older_than: float,
        include_suspended: bool = False,
        dry_run: bool = False,
    ) -> Operation[list[str]]:
        """Delete the runs of `status` not updated for `older_than` seconds (see RunStore)."""
        statuses = _sql.prune_statuses(status, include_suspended)
        now = time.time()
        return Operation(  # run again after a lost connection: it finds what is left
            READ if dry_run else WRITE,
            lambda: _sql.prune_plan(
                "%s",
                statuses,
                older_than,
                now=now,
                dry_run=dry_run,
                include_suspended=include_suspended,
                lock=" FOR UPDATE",
            ),
        )

    # -- the RunStore protocol -----------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        """Insert a new run (status running, version 0); ConflictError if the id exists."""
        self._run(self._op_create_run(run))

    start_run = operation(_op_start_run)
    append = operation(_op_append)
    settle = operation(_op_settle)
    claim = operation(_op_claim)
    take_over = operation(_op_take_over)
    renew = operation(_op_renew)
    get_run = operation(_op_get_run)
    events = operation(_op_events)
    snapshot = operation(_op_snapshot)
    put_spec = operation(_op_put_spec)
    get_spec = operation(_op_get_spec)
    delete = operation(_op_delete)
    prune = operation(_op_prune)

    @property
    def aio(self) -> AsyncPostgresStore:
        """The async face: the same operations on a pool of asyncio connections."""
        if self._aio is None:
            self._aio = AsyncPostgresStore(self)
        return self._aio

    def close(self) -> None:
        """Close the connection, and the async face's pool when its loop is not running."""
        if self._aio is not None:
            self._aio.close()
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"


class _Lost(Exception):
    """A pooled connection the server ended under an operation."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


class AsyncPostgresStore(AsyncFace):
    """The async face of a `PostgresStore`: its operations on a pool of at most `POOL_SIZE`
    asyncio connections, opened on the event loop that first uses it (a face used from
    another loop later opens a pool there). A connection the server ended is dropped from the
    pool and the operation tried once more on a fresh one, after its `landed` check."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self.url = store.url
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Task[None] | None = None

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        op: Operation[Any] = getattr(self._store, f"_op_{name}")(*args, **kwargs)
        return await self._run(op)

    async def _run(self, op: Operation[T]) -> T:
        """`op` in one transaction on a pooled connection; see the class doc for faults."""
        if op.skip:
            return None  # type: ignore[return-value]
        pool = await self._pool_here()
        try:
            return op.done(await self._once(pool, op.body))
        except _Lost as lost:
            first = lost.error
        except psycopg.Error as exc:
            raise self._store._fault(op.doing, exc) from None
        await pool.check()  # drop every idle connection the server ended too
        try:
            done = await self._once(pool, op.landed) if op.landed is not None else None
            return op.done(done if done is not None else await self._once(pool, op.body))
        except _Lost as lost:
            raise self._store._fault(op.doing, lost.error) from None
        except psycopg.Error as exc:
            from psycopg_pool import PoolTimeout  # loaded with the pool already

            if isinstance(exc, PoolTimeout):  # no new connection came in time
                raise self._store._gone(op.doing, first, exc) from None
            raise self._store._fault(op.doing, exc) from None

    @staticmethod
    async def _once(
        pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]],
        body: Callable[[], Plan[T]],
    ) -> T:
        async with pool.connection(timeout=RECONNECT_SECONDS) as conn:
            try:
                async with conn.transaction(), conn.cursor() as cur:
                    return await _plan.arun(cur, body())
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    raise _Lost(exc) from None
                raise

    async def _pool_here(self) -> AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]:
        """The pool of the running event loop, opened at its first use."""
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            from psycopg_pool import AsyncConnectionPool

            store = self._store
            self._loop = loop
            self._pool = AsyncConnectionPool(
                store._conninfo,
                min_size=1,
                max_size=POOL_SIZE,
                kwargs=store._connect_kwargs(),
                configure=self._configure if store.schema is not None else None,
                open=False,
                name=f"callcc {self.url}",
            )
            self._opening = loop.create_task(self._pool.open(wait=False))
        assert self._opening is not None
        await self._opening
        return self._pool

    async def _configure(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        await conn.execute(*self._store._search_path())
        await conn.commit()

    async def aclose(self) -> None:
        """Close the pool (a later call opens a new one)."""
        pool, self._pool, self._loop = self._pool, None, None
        if pool is not None:
            await pool.close()

    def close(self) -> None:
        """`aclose` from blocking code: done when the pool's loop is idle, else left to it."""
        loop = self._loop
        idle = loop is not None and not loop.is_closed() and not loop.is_running()
        if self._pool is not None and loop is not None and idle:
            loop.run_until_complete(self.aclose())


def _schema_version() -> Plan[int]:
    found = yield Query("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,))
    row = found.one()
    if row is None or not row[0]:
        return 0
    found = yield Query(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}")
    row = found.one()
    return int(row[0] or 0) if row else 0


def _one_line(exc: BaseException) -> str:
    """A driver message on one line (libpq's span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _columns(events: Sequence[Event]) -> tuple[list[str], list[str], list[str]]:
    """Events as three parallel arrays (frames, kinds, JSON texts) for `unnest`."""
    columns: tuple[list[str], list[str], list[str]] = ([], [], [])
    for e in events:
        columns[0].append(e.frame)
        columns[1].append(e.kind)
        columns[2].append(_sql.dump_json(e.data))
    return columns
