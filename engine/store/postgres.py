"""The shared run store: PostgreSQL through psycopg 3, for many processes on many machines.

The only module that imports the driver. One connection per store (autocommit off, one
explicit transaction per method, reconnected when broken). Version checks are conditional
updates (`UPDATE ... WHERE version = %s`); `claim` and `take_over` lock the run's row with
`SELECT ... FOR UPDATE`, so concurrent claims queue on the row and exactly one finds the run
still suspended. Migrations run under `pg_advisory_xact_lock`, so concurrent opens take turns.

URL: `postgresql://user[:password]@host[:port]/db[?libpq params][&schema=name]`. `schema` is
callcc's own parameter: the schema is created if missing and put first on the search path, so
several stores (or test runs) can share one database.

Faults: every method runs through `_run`. A connection the server ended (a restart, a failover,
`pg_terminate_backend`) is reopened (for up to `RECONNECT_SECONDS`) and the method tried again;
a write first checks whether it landed before the connection went (the run's version is one past
the expected one with this write's own `updated_at`, or the nonce is consumed with this claim's
own time), so nothing is written twice. Any other driver error, or a server that stays away,
becomes a `StoreError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from engine.errors import StoreError, UsageError
from engine.store import _sql
from engine.store._sql import (
    LEASE_COLUMNS,
    MIGRATIONS_TABLE,
    PENDING_COLUMNS,
    RUN_COLUMNS,
    SPEC_COLUMNS,
)
from engine.store.base import Event, Lease, PendingRow, RunRecord, RunStatus, SpecRow

MIGRATION_LOCK = 0x63616C6C6363  # "callcc": the advisory lock key concurrent opens queue on
CONNECT_TIMEOUT_SECONDS = 10
RECONNECT_SECONDS = 30.0
"""How long a lost connection is retried before the method gives up with a StoreError."""
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
    # 5: each run's latest snapshot (its whole stack as its first `seq` events rebuild it), so
    # a resume reads one row and the events after it instead of the run's whole history.
    ("CREATE TABLE snapshots (run_id text PRIMARY KEY, seq integer NOT NULL, data json NOT NULL)",),
)
"""Numbered schema changes (version = index + 1), applied in order on open; append only."""

Cursor = psycopg.Cursor[tuple[Any, ...]]

# A successful bump proves no other write committed since this statement's snapshot (every
# write bumps the version), so `last` sees every earlier event of the run.
_APPEND = """
WITH bumped AS (
    UPDATE runs SET version = version + 1, updated_at = %s{lease}
    WHERE id = %s AND version = %s RETURNING id
), last AS (
    SELECT COALESCE(MAX(seq), -1) AS seq FROM events WHERE run_id = %s
)
INSERT INTO events (run_id, seq, frame, kind, data)
SELECT bumped.id, last.seq + e.n, e.frame, e.kind, e.data::json
FROM bumped, last,
    unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS e (frame, kind, data, n)
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
    rest = urlencode([(key, value) for key, value in pairs if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[-1] if schemas else None)


class PostgresStore:
    """A RunStore in PostgreSQL (see `engine.store.base.RunStore` for the contract)."""

    def __init__(self, url: str) -> None:
        self.url = _sql.mask_url(url)
        self._kept_specs: set[str] = set()
        self._conninfo, self.schema = split_url(url)
        self._lock = threading.Lock()
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
        kwargs: dict[str, Any] = {"autocommit": False}
        if "connect_timeout" not in self._conninfo:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        conn = psycopg.connect(self._conninfo, **kwargs)
        if self.schema is not None:
            path = sql.Identifier(self.schema).as_string(conn)
            conn.execute("SELECT set_config('search_path', %s, false)", (path,))
            conn.commit()
        return conn

    def _run(
        self,
        doing: str,
        body: Callable[[Cursor], T],
        landed: Callable[[Cursor], T | None] | None = None,
    ) -> T:
        """`body` in one transaction. When the connection is lost, reconnect and, unless
        `landed` finds the write already committed (and returns its result), run it again."""
        with self._lock:
            try:
                if self._conn.broken or self._conn.closed:
                    self._conn = self._reconnect(doing, None)
                return self._once(body)
            except psycopg.Error as exc:
                if not (self._conn.broken or self._conn.closed):
                    raise self._fault(doing, exc) from None
                self._conn = self._reconnect(doing, exc)
            try:
                done = self._once(landed) if landed is not None else None
                return done if done is not None else self._once(body)
            except psycopg.Error as exc:
                raise self._fault(doing, exc) from None

    def _once(self, body: Callable[[Cursor], T]) -> T:
        with self._conn.transaction(), self._conn.cursor() as cur:
            return body(cur)

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
                    raise StoreError(
                        f"{doing}: the connection was lost and no new one could be made in"
                        f" {RECONNECT_SECONDS:g} s",
                        url=self.url,
                        reason=_one_line(lost or exc) + f"; then: {_one_line(exc)}",
                        hint=f"check that the server is up and reachable; {_sql.CUT_OFF}",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

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
        if self._run("cannot open the run store", self._schema_version) == known:
            return  # the common case takes no lock
        self._run("cannot migrate the run store", self._apply_migrations)

    def _apply_migrations(self, cur: Cursor) -> None:
        """The migrations this database lacks, under the advisory lock."""
        known = len(MIGRATIONS)
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        if self.schema is not None:
            cur.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}"
            " (version integer PRIMARY KEY, applied_at double precision NOT NULL)"
        )
        applied = self._schema_version(cur)
        if applied > known:
            raise _sql.newer_schema(self.url, applied, known)
        for version in range(applied + 1, known + 1):
            for statement in MIGRATIONS[version - 1]:
                cur.execute(statement)
            cur.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, applied_at) VALUES (%s, %s)",
                (version, time.time()),
            )

    @staticmethod
    def _schema_version(cur: Cursor) -> int:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,))
        row = cur.fetchone()
        if row is None or not row[0]:
            return 0
        cur.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}")
        row = cur.fetchone()
        return int(row[0] or 0) if row else 0

    def _bump(
        self, cur: Cursor, run_id: str, version: int, now: float, sets: str, *args: Any
    ) -> int:
        """`UPDATE runs SET <sets>, version + 1` if the run is at `version`, else the refusal."""
        cur.execute(
            f"UPDATE runs SET {sets}version = version + 1, updated_at = %s"
            " WHERE id = %s AND version = %s",
            (*args, now, run_id, version),
        )
        if cur.rowcount == 1:
            return version + 1
        raise self._refusal(cur, run_id, version)

    def _refusal(self, cur: Cursor, run_id: str, version: int) -> Exception:
        """Why a write expecting `version` matched no row: an unknown run or a stale version."""
        cur.execute("SELECT version FROM runs WHERE id = %s", (run_id,))
        row = cur.fetchone()
        if row is None:
            return _sql.no_run(run_id, self.url)
        return _sql.stale_version(run_id, version, int(row[0]))

    @staticmethod
    def _bumped(run_id: str, version: int, now: float) -> Callable[[Cursor], int | None]:
        """Whether a bump from `version` stamped `now` committed before the connection went:
        the run is at `version + 1` with that very `updated_at`."""

        def landed(cur: Cursor) -> int | None:
            cur.execute("SELECT version, updated_at FROM runs WHERE id = %s", (run_id,))
            row = cur.fetchone()
            if row is not None and int(row[0]) == version + 1 and float(row[1]) == now:
                return version + 1
            return None

        return landed

    # -- the RunStore protocol -----------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        """Insert a new run (status running, version 0); ConflictError if the id exists."""
        _sql.check_new(run)

        def body(cur: Cursor) -> bool:
            cur.execute(
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
            if cur.rowcount != 1:
                raise _sql.duplicate_run(run.run_id, self.url)
            return True

        def landed(cur: Cursor) -> bool | None:
            cur.execute("SELECT version, created_at FROM runs WHERE id = %s", (run.run_id,))
            row = cur.fetchone()
            ours = row is not None and int(row[0]) == 0 and float(row[1]) == run.created_at
            return True if ours else None

        self._run("cannot write to the run store", body, landed)

    def start_run(self, run: RunRecord, events: Sequence[Event], *, lease: Lease) -> int:
        """Insert a new run with its first events and its lease in one transaction."""
        _sql.check_new(run)
        version = 1 if events else 0
        columns = _columns(events)

        def body(cur: Cursor) -> int:
            cur.execute(
                f"INSERT INTO runs ({RUN_COLUMNS}, {LEASE_COLUMNS})"
                f" VALUES (%s, %s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s, {_NOW} + %s)"
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
                ),
            )
            if cur.rowcount != 1:
                raise _sql.duplicate_run(run.run_id, self.url)
            if events:
                cur.execute(_START_EVENTS, (run.run_id, *columns))
            return version

        def landed(cur: Cursor) -> int | None:  # our start committed: the row bears our time
            cur.execute("SELECT created_at FROM runs WHERE id = %s", (run.run_id,))
            row = cur.fetchone()
            return version if row is not None and float(row[0]) == run.created_at else None

        return self._run("cannot write to the run store", body, landed)

    def append(
        self, run_id: str, version: int, events: Sequence[Event], *, lease: Lease | None = None
    ) -> int:
        """Append events if the run is at `version` (renewing `lease`); return version + 1.

        One statement bumps the version and inserts the events: a checkpoint is one round trip
        plus the commit. When the bump matches no row nothing is inserted."""
        now = time.time()
        landed = self._bumped(run_id, version, now)
        sets: tuple[Any, ...] = (
            ("",) if lease is None else (_LEASE_SETS, lease.owner, lease.seconds)
        )
        if not events:
            return self._run(
                "cannot write to the run store",
                lambda cur: self._bump(cur, run_id, version, now, *sets),
                landed,
            )
        columns = _columns(events)

        def body(cur: Cursor) -> int:
            cur.execute(
                _APPENDS[lease is not None], (now, *sets[1:], run_id, version, run_id, *columns)
            )
            if cur.rowcount == len(events):
                return version + 1
            raise self._refusal(cur, run_id, version)

        return self._run("cannot write to the run store", body, landed)

    def settle(
        self,
        run_id: str,
        version: int,
        *,
        status: RunStatus,
        nonce: str | None,
        output: str | None,
        pending: Sequence[PendingRow],
        spec_digest: str | None = None,
        snapshot: Event | None = None,
    ) -> int:
        """Record a drive's outcome and replace the pending rows if at `version` (keeping
        `snapshot` as the run's latest)."""
        _sql.check_status(status)
        rows = _sql.pending_params(run_id, pending)
        kept = _sql.check_snapshot(snapshot)
        now = time.time()

        def body(cur: Cursor) -> int:
            new = self._bump(
                cur,
                run_id,
                version,
                now,
                "status = %s, nonce = %s, output = %s, spec_digest = COALESCE(%s, spec_digest),"
                " lease_owner = NULL, lease_expires = NULL, ",
                status,
                nonce,
                _sql.encode_text(output),
                spec_digest,
            )
            cur.execute("DELETE FROM pending WHERE run_id = %s", (run_id,))
            if rows:
                cur.executemany(
                    f"INSERT INTO pending ({PENDING_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
                    rows,
                )
            if kept is not None:
                cur.execute(_KEEP_SNAPSHOT, (run_id, run_id, kept))
            return new

        return self._run("cannot write to the run store", body, self._bumped(run_id, version, now))

    def claim(self, run_id: str, nonce: str, *, lease: Lease | None = None) -> int:
        """Take a run suspended on `nonce` for a resume, once per nonce; return the version."""
        now = time.time()

        def body(cur: Cursor) -> int:
            cur.execute(
                "SELECT status, nonce, version FROM runs WHERE id = %s FOR UPDATE", (run_id,)
            )
            row = cur.fetchone()
            if row is None:
                raise _sql.no_run(run_id, self.url)
            cur.execute("SELECT 1 FROM consumed_nonces WHERE nonce = %s", (nonce,))
            consumed = cur.fetchone() is not None
            refusal = _sql.claim_refusal(
                run_id, nonce, status=row[0], waits_on=row[1], consumed=consumed
            )
            if refusal is not None:
                raise refusal
            cur.execute(
                "INSERT INTO consumed_nonces (nonce, run_id, consumed_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (nonce) DO NOTHING",
                (nonce, run_id, now),
            )
            if cur.rowcount != 1:  # consumed by a claim of another run that holds the same nonce
                raise _sql.already_resumed(run_id)
            cur.execute(
                "UPDATE runs SET status = 'running', version = version + 1, updated_at = %s,"
                f" lease_owner = %s, lease_expires = {_NOW} + %s WHERE id = %s",
                (
                    now,
                    lease.owner if lease else None,
                    lease.seconds if lease else None,
                    run_id,
                ),
            )
            cur.execute("DELETE FROM pending WHERE run_id = %s", (run_id,))
            return int(row[2]) + 1

        def landed(cur: Cursor) -> int | None:  # our claim committed: the nonce bears our time
            cur.execute(
                "SELECT r.version FROM consumed_nonces c JOIN runs r ON r.id = c.run_id"
                " WHERE c.nonce = %s AND c.run_id = %s AND c.consumed_at = %s",
                (nonce, run_id, now),
            )
            row = cur.fetchone()
            return int(row[0]) if row is not None else None

        return self._run("cannot write to the run store", body, landed)

    def take_over(
        self, run_id: str, version: int, *, lease: Lease | None = None, force: bool = False
    ) -> int:
        """Bump the version of a running run whose process died and give its lease to `lease`;
        LeaseHeldError while its lease is live, unless `force`; return the new version."""
        now = time.time()
        sets: tuple[Any, ...] = (
            ("",) if lease is None else (_LEASE_SETS, lease.owner, lease.seconds)
        )

        def body(cur: Cursor) -> int:
            cur.execute(
                f"SELECT status, lease_owner, lease_expires, {_NOW} FROM runs WHERE id = %s"
                " FOR UPDATE",
                (run_id,),
            )
            row = cur.fetchone()
            if row is not None and row[0] != "running":
                raise _sql.not_running(run_id, row[0])
            if row is not None:
                refusal = _sql.lease_refusal(run_id, row[1], row[2], row[3], force=force)
                if refusal is not None:
                    raise refusal
            return self._bump(cur, run_id, version, now, *sets)

        return self._run("cannot write to the run store", body, self._bumped(run_id, version, now))

    def renew(self, run_id: str, lease: Lease) -> bool:
        """Extend the lease `lease.owner` holds on a running run; False when it holds none."""

        def body(cur: Cursor) -> bool:
            cur.execute(
                f"UPDATE runs SET lease_expires = {_NOW} + %s"
                " WHERE id = %s AND lease_owner = %s AND status = 'running'",
                (lease.seconds, run_id, lease.owner),
            )
            return cur.rowcount == 1

        return self._run("cannot write to the run store", body)  # renewing twice is harmless

    def get_run(self, run_id: str) -> RunRecord:
        """The run; UsageError naming the id when unknown."""
        row = self._run("cannot read the run store", lambda cur: self._run_row(cur, run_id))
        return _sql.record(row)

    def _run_row(self, cur: Cursor, run_id: str) -> tuple[Any, ...]:
        _sql.check_id(run_id)
        cur.execute(f"SELECT {RUN_COLUMNS}, {LEASE_COLUMNS} FROM runs WHERE id = %s", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise _sql.no_run(run_id, self.url)
        return row

    @staticmethod
    def _event_rows(cur: Cursor, run_id: str) -> list[tuple[Any, ...]]:
        cur.execute(
            "SELECT frame, kind, data FROM events WHERE run_id = %s ORDER BY seq", (run_id,)
        )
        return cur.fetchall()

    def events(self, run_id: str) -> list[Event]:
        """All events of a run, in append order."""
        rows = self._run("cannot read the run store", lambda cur: self._event_rows(cur, run_id))
        return [_sql.event(row) for row in rows]

    def snapshot(self, run_id: str) -> tuple[RunRecord, list[Event]]:
        """The run and its events, read in one transaction (REPEATABLE READ, so they agree)."""

        def body(cur: Cursor) -> tuple[Any, tuple[Any, ...] | None, list[tuple[Any, ...]]]:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = self._run_row(cur, run_id)
            cur.execute("SELECT seq, data FROM snapshots WHERE run_id = %s", (run_id,))
            kept = cur.fetchone()
            cur.execute(
                "SELECT frame, kind, data FROM events WHERE run_id = %s AND seq >= %s ORDER BY seq",
                (run_id, kept[0] if kept else 0),
            )
            return row, kept, cur.fetchall()

        row, kept, rows = self._run("cannot read the run store", body)
        head = [_sql.snapshot_event(kept[1])] if kept else []
        return _sql.record(row), head + [_sql.event(r) for r in rows]

    def list_runs(self, *, status: RunStatus | None = None, limit: int = 100) -> list[RunRecord]:
        """Runs, newest first (by last update), optionally of one status."""
        _sql.check_status(status)
        where = "WHERE status = %s " if status is not None else ""
        params: tuple[Any, ...] = (status, limit) if status is not None else (limit,)

        def body(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(
                f"SELECT {RUN_COLUMNS}, {LEASE_COLUMNS} FROM runs {where}"
                "ORDER BY updated_at DESC, id DESC LIMIT %s",
                params,
            )
            return cur.fetchall()

        return [_sql.record(row) for row in self._run("cannot read the run store", body)]

    def pending(self, *, limit: int = 100) -> list[PendingRow]:
        """Pending decisions of suspended runs, oldest first."""

        def body(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(
                "SELECT p.run_id, p.path, p.call_id, p.tool, p.reason, p.created_at"
                " FROM pending p JOIN runs r ON r.id = p.run_id"
                " WHERE r.status = 'suspended'"
                " ORDER BY p.created_at, p.run_id, p.path LIMIT %s",
                (limit,),
            )
            return cur.fetchall()

        return [_sql.pending_row(row) for row in self._run("cannot read the run store", body)]

    def put_spec(self, spec: SpecRow) -> None:
        """Keep a spec's texts under its digest, once (idempotent: retried as it is)."""
        if spec.digest in self._kept_specs:
            return

        def body(cur: Cursor) -> None:
            cur.execute(
                f"INSERT INTO specs ({SPEC_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (digest) DO NOTHING",
                _sql.spec_params(spec),
            )

        self._run("cannot write to the run store", body)
        self._kept_specs.add(spec.digest)

    def get_spec(self, digest: str) -> SpecRow | None:
        """The spec kept under `digest`, or None."""

        def body(cur: Cursor) -> tuple[Any, ...] | None:
            cur.execute(f"SELECT {SPEC_COLUMNS} FROM specs WHERE digest = %s", (digest,))
            return cur.fetchone()

        row = self._run("cannot read the run store", body)
        return _sql.spec_row(row) if row is not None else None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"


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
