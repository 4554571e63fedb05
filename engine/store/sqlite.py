"""The embedded run store: one SQLite file that several processes on one machine share.

WAL mode so readers never block the writer, `synchronous=NORMAL` (a power cut may lose the last
commits, never corrupt the file), a busy timeout so a process waits for another's write instead
of failing. Every write is one `BEGIN IMMEDIATE` transaction: it takes the file's write lock
before it reads the version, so the version check and the write are atomic across processes.

Every driver error goes through `_faults`: a lock held past the busy timeout, a read-only file,
a folder that cannot be made, a full disk become one `StoreError` naming the URL and what to do.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine.errors import StoreError, UsageError
from engine.store import _plan, _sql
from engine.store._ops import SharedOps
from engine.store._plan import Operation
from engine.store._sql import (
    FORK_COLUMNS,
    LEASE_COLUMNS,
    MIGRATIONS_TABLE,
    PENDING_INSERT,
    RUN_COLUMNS,
    RUN_SELECT,
    SPEC_COLUMNS,
)
from engine.store.base import Event, Lease, PendingRow, RunRecord, RunStatus, SpecRow

if TYPE_CHECKING:  # `callcc runs list` runs no event loop: asyncio loads with `aio`
    from engine.store._aio import Threaded

BUSY_TIMEOUT_SECONDS = 5.0
T = TypeVar("T")

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: runs, their append-only events, the pending decisions, consumed nonces.
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            spec_name TEXT NOT NULL,
            spec_digest TEXT NOT NULL,
            spec_path TEXT,
            agent TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('running', 'suspended', 'finished', 'failed')),
            version INTEGER NOT NULL,
            nonce TEXT,
            output TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX runs_by_updated ON runs (updated_at DESC)",
        "CREATE INDEX runs_by_status ON runs (status, updated_at DESC)",
        """CREATE TABLE events (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            frame TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('messages', 'state')),
            data TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE pending (
            run_id TEXT NOT NULL,
            path TEXT NOT NULL,
            call_id TEXT NOT NULL,
            tool TEXT,
            reason TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, path)
        )""",
        "CREATE INDEX pending_oldest_first ON pending (created_at, run_id, path)",
        """CREATE TABLE consumed_nonces (
            nonce TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            consumed_at REAL NOT NULL
        )""",
    ),
    # 2: status `stopped` (a run ended by a `stop` decision). SQLite cannot alter a CHECK;
    # widening its list in the stored schema is safe for every existing row and, unlike a table
    # rebuild, keeps whatever columns other migrations add to `runs`.
    (
        "PRAGMA writable_schema = ON",
        "UPDATE sqlite_master SET sql = replace(sql, '''failed'')', '''failed'', ''stopped'')')"
        " WHERE type = 'table' AND name = 'runs'",
        "PRAGMA writable_schema = RESET",
    ),
    # 3: leases: which process drives a running run, and until when (engine.store.base).
    (
        "ALTER TABLE runs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE runs ADD COLUMN lease_expires REAL",
    ),
    # 4: the specs runs were started with, their texts kept once per digest, so a run resumes
    # from any directory and any machine.
    (
        """CREATE TABLE specs (
            digest TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            text TEXT NOT NULL,
            instructions TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
    ),
    # 5: the tokens a run spent (its totals as of its last settled drive, engine.usage) and
    # the trace context of the span that suspended it (engine.tracing), for a resume to link.
    (
        "ALTER TABLE runs ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN trace TEXT",
    ),
    # 6: `delete` and `prune` find a run's consumed nonces by its id.
    ("CREATE INDEX consumed_nonces_by_run ON consumed_nonces (run_id)",),
    # 7: each run's latest snapshot (its whole stack as its first `seq` events rebuild it), so
    # a resume reads one row and the events after it instead of the run's whole history.
    (
        """CREATE TABLE snapshots (
            run_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            data TEXT NOT NULL
        )""",
    ),
    # 8: the inbox. Pending rows carry what a reviewer is shown (and the spec's name, so
    # listing by spec needs no join); decisions recorded for a suspension (by its nonce)
    # before a resume applies them; the append-only audit trail. Indexes keep every listing
    # (oldest first, by spec, tool or reason, by expiry; runs newest first) a range scan.
    (
        *(f"ALTER TABLE pending ADD COLUMN {c.format(real='REAL')}" for c in _sql.PENDING_ADDED),
        _sql.PENDING_SPEC_BACKFILL,
        *_sql.INBOX_INDEXES,
        """CREATE TABLE decisions (
            run_id TEXT NOT NULL,
            nonce TEXT NOT NULL,
            path TEXT NOT NULL,
            seq INTEGER NOT NULL,
            fingerprint TEXT NOT NULL,
            decision TEXT NOT NULL,
            user_name TEXT NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (run_id, nonce, path)
        )""",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL,
            at REAL NOT NULL,
            user_name TEXT NOT NULL,
            action TEXT NOT NULL,
            path TEXT,
            call_id TEXT,
            tool TEXT,
            fingerprint TEXT,
            decision TEXT,
            reason TEXT,
            args_before TEXT,
            args_after TEXT,
            detail TEXT
        )""",
        "CREATE INDEX audit_by_run ON audit (run_id, seq)",
    ),
    # 9: forks (engine.fork): the run a fork was made from and the step it was made at.
    (
        "ALTER TABLE runs ADD COLUMN forked_from TEXT",
        "ALTER TABLE runs ADD COLUMN forked_at INTEGER",
    ),
    # 10: why a condition (`approval.when`) made a pending call wait, so the inbox shows it.
    (_sql.POLICY_ADDED,),
)
"""Numbered schema changes (version = index + 1), applied in order on open; append only."""


def database_path(url: str) -> str:
    """`sqlite:///rel/runs.db` -> `rel/runs.db`; `sqlite:////abs/runs.db` -> `/abs/runs.db`."""
    if not url.startswith("sqlite:///"):
        raise UsageError(f"not a SQLite store URL: {url!r}; use sqlite:///PATH")
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not path:
        raise UsageError(f"the SQLite store URL {url!r} names no file; use sqlite:///PATH")
    return path


class SQLiteStore(SharedOps):
    """A RunStore in one SQLite file (see `engine.store.base.RunStore` for the contract).

    One connection, shared under a lock (sqlite3 runs its I/O with the GIL released, and a
    connection may be used from any thread as long as one at a time does). The async face,
    `aio`, runs these very methods on one worker thread of the store's own: a file takes one
    writer at a time anyway, so more threads would only queue on the lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._kept_specs: set[str] = set()
        self._aio: Threaded | None = None
        path = database_path(url)
        with self._faults("cannot open the run store"):
            if path != ":memory:":
                _make_folder(Path(path).parent, url)
            self._lock = threading.Lock()
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            try:
                self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                _wal(self._db)
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
            except BaseException:
                self._db.close()
                raise

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def _faults(self, doing: str) -> Iterator[None]:
        """Turn a driver error inside the block into a `StoreError` (see `_fault`)."""
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a constraint the caller handles, or a bug: neither is the store's fault
        except sqlite3.Error as exc:
            raise _fault(doing, self.url, exc) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction holding the file's write lock from its first statement."""
        with self._lock, self._faults("cannot write to the run store"):
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                with suppress(sqlite3.Error):  # SQLite may have rolled back already (disk full)
                    cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Cursor]:
        """One read transaction: every query inside sees the same state of the file."""
        with self._lock, self._faults("cannot read the run store"):
            cur = self._db.cursor()
            cur.execute("BEGIN")
            try:
                yield cur
            finally:
                with suppress(sqlite3.Error):
                    cur.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """All rows of one query (one statement reads one consistent snapshot)."""
        with self._lock, self._faults("cannot read the run store"):
            return self._db.execute(sql, params).fetchall()

    def _do(self, op: Operation[T]) -> T:
        """`op` (a shared operation, `engine.store._ops`) in one transaction: a write holding
        the file's write lock from its first statement, or one consistent read."""
        if op.skip:
            return None  # type: ignore[return-value]
        with self._write() if op.doing == _sql.WRITE else self._snapshot() as cur:
            return op.done(_plan.run(cur, op.body()))

    def _migrate(self) -> None:
        """Apply the migrations this file lacks, under the write lock (concurrent opens wait)."""
        known = len(MIGRATIONS)
        if self._schema_version(self._db.cursor()) == known:
            return  # the common case takes no write lock
        with self._write() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}"
                " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            applied = self._schema_version(cur)
            if applied > known:
                raise _sql.newer_schema(self.url, applied, known)
            for version in range(applied + 1, known + 1):
                for statement in MIGRATIONS[version - 1]:
                    cur.execute(statement)
                cur.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )

    @staticmethod
    def _schema_version(cur: sqlite3.Cursor) -> int:
        exists = cur.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
        ).fetchone()
        if not exists:
            return 0
        row = cur.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}").fetchone()
        return int(row[0] or 0)

    def _bump(self, cur: sqlite3.Cursor, run_id: str, version: int, sets: str, *args: Any) -> int:
        """`UPDATE runs SET <sets>, version + 1` if the run is at `version`, else the refusal."""
        cur.execute(
            f"UPDATE runs SET {sets}version = version + 1, updated_at = ?"
            " WHERE id = ? AND version = ?",
            (*args, time.time(), run_id, version),
        )
        if cur.rowcount == 1:
            return version + 1
        row = cur.execute("SELECT version FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise _sql.no_run(run_id, self.url)
        raise _sql.stale_version(run_id, version, int(row[0]))

    # -- the RunStore protocol -----------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        """Insert a new run (status running, version 0); ConflictError if the id exists."""
        _sql.check_new(run)
        with self._write() as cur:
            try:
                cur.execute(
                    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.run_id,
                        run.spec_name,
                        run.spec_digest,
                        run.spec_path,
                        run.agent,
                        "running",
                        0,
                        run.nonce,
                        _sql.encode_text(run.output),
                        run.created_at,
                        run.updated_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise _sql.duplicate_run(run.run_id, self.url) from None

    def start_run(self, run: RunRecord, events: Sequence[Event], *, lease: Lease) -> int:
        """Insert a new run with its first events and its lease in one transaction."""
        _sql.check_new(run)
        rows = [(e.frame, e.kind, _sql.dump_json(e.data)) for e in events]
        version = 1 if rows else 0
        with self._write() as cur:
            try:
                cur.execute(
                    f"INSERT INTO runs ({RUN_COLUMNS}, {LEASE_COLUMNS}, {FORK_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        time.time() + lease.seconds,
                        run.forked_from,
                        run.forked_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise _sql.duplicate_run(run.run_id, self.url) from None
            cur.executemany(
                "INSERT INTO events (run_id, seq, frame, kind, data) VALUES (?, ?, ?, ?, ?)",
                [(run.run_id, i, *row) for i, row in enumerate(rows)],
            )
        return version

    def append(
        self, run_id: str, version: int, events: Sequence[Event], *, lease: Lease | None = None
    ) -> int:
        """Append events if the run is at `version` (renewing `lease`); return version + 1."""
        rows = [(e.frame, e.kind, _sql.dump_json(e.data)) for e in events]
        with self._write() as cur:
            new = self._bump(cur, run_id, version, *_lease_sets(lease))
            if rows:
                (last,) = cur.execute(
                    "SELECT COALESCE(MAX(seq), -1) FROM events WHERE run_id = ?", (run_id,)
                ).fetchone()
                cur.executemany(
                    "INSERT INTO events (run_id, seq, frame, kind, data) VALUES (?, ?, ?, ?, ?)",
                    [(run_id, last + 1 + i, *row) for i, row in enumerate(rows)],
                )
            return new

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
        usage: tuple[int, int] | None = None,
        trace: Mapping[str, str] | None = None,
        snapshot: Event | None = None,
    ) -> int:
        """Record a drive's outcome and replace the pending rows if at `version` (keeping
        `snapshot` as the run's latest)."""
        _sql.check_status(status)
        rows = _sql.pending_params(run_id, pending)
        kept = _sql.check_snapshot(snapshot)
        with self._write() as cur:
            new = self._bump(
                cur,
                run_id,
                version,
                "status = ?, nonce = ?, output = ?, spec_digest = COALESCE(?, spec_digest),"
                " lease_owner = NULL, lease_expires = NULL,"
                " input_tokens = COALESCE(?, input_tokens),"
                " output_tokens = COALESCE(?, output_tokens), trace = ?, ",
                status,
                nonce,
                _sql.encode_text(output),
                spec_digest,
                *(usage or (None, None)),
                _sql.trace_param(trace),
            )
            cur.execute("DELETE FROM pending WHERE run_id = ?", (run_id,))
            cur.executemany(PENDING_INSERT, rows)
            if kept is not None:
                cur.execute(_KEEP_SNAPSHOT, (run_id, run_id, kept))
            return new

    def claim(self, run_id: str, nonce: str, *, lease: Lease | None = None) -> int:
        """Take a run suspended on `nonce` for a resume, once per nonce; return the version."""
        with self._write() as cur:
            row = cur.execute(
                "SELECT status, nonce, version FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise _sql.no_run(run_id, self.url)
            consumed = cur.execute(
                "SELECT 1 FROM consumed_nonces WHERE nonce = ?", (nonce,)
            ).fetchone()
            refusal = _sql.claim_refusal(
                run_id, nonce, status=row[0], waits_on=row[1], consumed=consumed is not None
            )
            if refusal is not None:
                raise refusal
            now = time.time()
            cur.execute(
                "INSERT INTO consumed_nonces (nonce, run_id, consumed_at) VALUES (?, ?, ?)",
                (nonce, run_id, now),
            )
            cur.execute(
                "UPDATE runs SET status = 'running', version = version + 1, updated_at = ?,"
                " lease_owner = ?, lease_expires = ? WHERE id = ?",
                (now, *_lease_values(lease, now), run_id),
            )
            cur.execute("DELETE FROM pending WHERE run_id = ?", (run_id,))
            return int(row[2]) + 1

    def take_over(
        self, run_id: str, version: int, *, lease: Lease | None = None, force: bool = False
    ) -> int:
        """Bump the version of a running run whose process died and give its lease to `lease`;
        LeaseHeldError while its lease is live, unless `force`; return the new version."""
        with self._write() as cur:
            row = cur.execute(
                "SELECT status, lease_owner, lease_expires FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is not None and row[0] != "running":
                raise _sql.not_running(run_id, row[0])
            if row is not None:
                refusal = _sql.lease_refusal(run_id, row[1], row[2], time.time(), force=force)
                if refusal is not None:
                    raise refusal
            return self._bump(cur, run_id, version, *_lease_sets(lease))

    def renew(self, run_id: str, lease: Lease) -> bool:
        """Extend the lease `lease.owner` holds on a running run; False when it holds none."""
        with self._write() as cur:
            cur.execute(
                "UPDATE runs SET lease_expires = ?"
                " WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (time.time() + lease.seconds, run_id, lease.owner),
            )
            return cur.rowcount == 1

    def get_run(self, run_id: str) -> RunRecord:
        """The run; UsageError naming the id when unknown."""
        _sql.check_id(run_id)
        rows = self._read(f"SELECT {RUN_SELECT} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise _sql.no_run(run_id, self.url)
        return _sql.record(rows[0])

    def events(self, run_id: str) -> list[Event]:
        """All events of a run, in append order."""
        rows = self._read(
            "SELECT frame, kind, data FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [_sql.event(row) for row in rows]

    def snapshot(self, run_id: str) -> tuple[RunRecord, list[Event]]:
        """The run and its events, read in one transaction (so they agree)."""
        _sql.check_id(run_id)
        with self._snapshot() as cur:
            row = cur.execute(f"SELECT {RUN_SELECT} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise _sql.no_run(run_id, self.url)
            kept = cur.execute(
                "SELECT seq, data FROM snapshots WHERE run_id = ?", (run_id,)
            ).fetchone()
            rows = cur.execute(
                "SELECT frame, kind, data FROM events WHERE run_id = ? AND seq >= ? ORDER BY seq",
                (run_id, kept[0] if kept else 0),
            ).fetchall()
        head = [_sql.snapshot_event(kept[1])] if kept else []
        return _sql.record(row), head + [_sql.event(r) for r in rows]

    def put_spec(self, spec: SpecRow) -> None:
        """Keep a spec's texts under its digest, once."""
        if spec.digest in self._kept_specs:
            return
        with self._write() as cur:
            cur.execute(
                f"INSERT INTO specs ({SPEC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (digest) DO NOTHING",
                _sql.spec_params(spec),
            )
        self._kept_specs.add(spec.digest)

    def get_spec(self, digest: str) -> SpecRow | None:
        """The spec kept under `digest`, or None."""
        rows = self._read(f"SELECT {SPEC_COLUMNS} FROM specs WHERE digest = ?", (digest,))
        return _sql.spec_row(rows[0]) if rows else None

    def delete(self, run_id: str) -> bool:
        """Delete a run and every row that belongs to it; False when there was none."""
        with self._write() as cur:
            return _plan.run(cur, _sql.delete_plan("?", run_id))

    def prune(
        self,
        *,
        status: RunStatus | Sequence[RunStatus],
        older_than: float,
        include_suspended: bool = False,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete the runs of `status` not updated for `older_than` seconds (see RunStore)."""
        statuses = _sql.prune_statuses(status, include_suspended)
        plan = _sql.prune_plan(
            "?",
            statuses,
            older_than,
            now=time.time(),
            dry_run=dry_run,
            include_suspended=include_suspended,
        )  # BEGIN IMMEDIATE: no claim comes between its statements
        with self._snapshot() if dry_run else self._write() as cur:
            return _plan.run(cur, plan)

    @property
    def aio(self) -> Threaded:
        """The async face: these methods, on the store's worker thread."""
        if self._aio is None:
            from engine.store._aio import Threaded

            self._aio = Threaded(self, name="callcc-sqlite")
        return self._aio

    def close(self) -> None:
        """End the worker thread of `aio` (if it started) and close the connection."""
        if self._aio is not None:
            self._aio.close()
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"


_KEEP_SNAPSHOT = """
INSERT INTO snapshots (run_id, seq, data)
VALUES (?, (SELECT COALESCE(MAX(seq), -1) + 1 FROM events WHERE run_id = ?), ?)
ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, data = excluded.data
"""
"""Keep a run's snapshot, standing for every event it has (replacing the one before)."""


def _lease_values(lease: Lease | None, now: float) -> tuple[str | None, float | None]:
    """The lease columns' new values: the owner and its expiry (None, None: no lease)."""
    return (lease.owner, now + lease.seconds) if lease is not None else (None, None)


def _lease_sets(lease: Lease | None) -> tuple[Any, ...]:
    """`_bump` arguments that renew `lease` (nothing when None: the lease stays as it is)."""
    if lease is None:
        return ("",)
    return ("lease_owner = ?, lease_expires = ?, ", lease.owner, time.time() + lease.seconds)


_FAULTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    # (SQLite error names or words of the message, the one-line reason, what to do)
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED", "locked"),
        "the database is locked",
        "another process held its write lock longer than the {timeout:g} s busy timeout;"
        f" retry once it is done ({_sql.CUT_OFF})",
    ),
    (
        ("SQLITE_READONLY", "readonly"),
        "the database file is read-only",
        "make the file and its folder writable for this user, or use another store"
        f" ({_sql.CUT_OFF})",
    ),
    (
        ("SQLITE_FULL", "SQLITE_IOERR", "disk is full", "disk I/O"),
        "the disk is full or failing",
        f"free space on the disk that holds the file ({_sql.CUT_OFF})",
    ),
    (
        ("SQLITE_CANTOPEN", "unable to open"),
        "the database file cannot be opened",
        "check that the file's folder exists and is writable",
    ),
    (
        ("SQLITE_NOTADB", "SQLITE_CORRUPT", "not a database", "malformed"),
        "the file is not a callcc run store (or it is damaged)",
        "point the store URL at another file",
    ),
)
"""How each driver error is worded; the first entry that matches wins."""


def _fault(doing: str, url: str, exc: sqlite3.Error) -> StoreError:
    """The `StoreError` for a driver error."""
    said = str(exc)
    names = (getattr(exc, "sqlite_errorname", "") or "", said)
    for keys, reason, hint in _FAULTS:
        if any(key in text for key in keys for text in names):
            return StoreError(
                doing,
                url=url,
                reason=f"{reason} ({said})",
                hint=hint.format(timeout=BUSY_TIMEOUT_SECONDS),
            )
    return StoreError(doing, url=url, reason=said, hint="check the file and the URL")


def _make_folder(folder: Path, url: str) -> None:
    """Create the store's folder, or say why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            "cannot open the run store",
            url=url,
            reason=f"its folder {folder} cannot be created ({exc.strerror or exc})",
            hint="create the folder, or give a store URL whose folder exists",
        ) from None


def _wal(db: sqlite3.Connection) -> None:
    """Switch to WAL. The switch takes the file's exclusive lock without waiting on the busy
    timeout, so when several processes open a new file at once it is retried here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
