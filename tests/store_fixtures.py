"""Run store fixtures shared by every test that needs a store, on both backends.

`store_url` is parametrized over `sqlite` (a file in `tmp_path`) and `postgresql` (a fresh schema
on the server from `CALLCC_TEST_POSTGRES_URL`, default the loopback server, dropped afterwards);
pass it to subprocesses. `store` is an open store at that URL. Without a PostgreSQL server the
`postgresql` tests skip with a message, except under `CI=true`, where they fail.

`conftest.py` imports the fixtures, so any test module can ask for them. Helpers run in other
processes (`multiprocessing` spawn context) live here too, because spawned children import them
by module name.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from engine.errors import ConflictError
from engine.store import RunStore, open_store

POSTGRES_ENV = "CALLCC_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
FACES = ("sync", "async")
"""The two faces of every store: its blocking methods and `store.aio`, awaited."""

_reachable: dict[str, str | None] = {}


def postgres_url() -> str:
    """The PostgreSQL server the tests use."""
    return os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL


def _postgres_problem(url: str) -> str | None:
    """Why the server at `url` cannot be used, or None; asked once per session."""
    if url not in _reachable:
        try:
            import psycopg

            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _reachable[url] = None
        except Exception as exc:  # ImportError, OperationalError: both mean "no server"
            _reachable[url] = f"{type(exc).__name__}: {exc}".strip()
    return _reachable[url]


def require_postgres() -> str:
    """The server URL; skips the test without a server, fails it under CI=true."""
    url = postgres_url()
    problem = _postgres_problem(url)
    if problem is not None:
        message = f"no PostgreSQL at {url} (set {POSTGRES_ENV} to use another server): {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs the PostgreSQL tests; {message}")
        pytest.skip(message)
    return url


def with_schema(url: str, schema: str) -> str:
    """`url` with callcc's `schema=` parameter added."""
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def drop_schema(url: str, schema: str) -> None:
    """Drop a test schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store of each backend, private to this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'runs.db'}"
        return
    server = require_postgres()
    schema = f"callcc_test_{uuid.uuid4().hex[:16]}"
    try:
        yield with_schema(server, schema)
    finally:
        drop_schema(server, schema)


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    """An open store at `store_url`, closed afterwards."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


class Awaited:
    """A store's async face driven from blocking test code: every call runs the coroutine to
    its end on one event loop of its own, so one contract test checks both faces."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.url = store.url
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store.aio, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(method(*args, **kwargs))

        return call

    def close(self) -> None:
        """Close the face (its pool or thread), its loop, then the store."""
        try:
            self._loop.run_until_complete(self.store.aio.aclose())
        finally:
            self._loop.close()
            self.store.close()


@pytest.fixture(params=FACES)
def faced_store(request: pytest.FixtureRequest, store_url: str) -> Iterator[RunStore]:
    """An open store at `store_url`, seen through each face: its blocking methods, then its
    async face (`Awaited`); closed afterwards. A module that names it `store` runs every test
    against both faces of both backends."""
    opened = open_store(store_url)
    faced: Any = opened if request.param == "sync" else Awaited(opened)
    try:
        yield faced
    finally:
        faced.close()


def lay_out_version_1(store_url: str, *rows: str) -> None:
    """Make the store at `store_url` as the first released callcc left it: schema version 1
    only, with `rows` (`'id', 'spec', 'digest', path, 'agent', 'status', version, nonce,
    output, created, updated` as SQL values) in `runs`. Opening it then runs the later
    migrations, as an upgrade would."""
    lay_out_version(store_url, 1)
    for row in rows:
        query(store_url, f"INSERT INTO runs VALUES ({row})")


def lay_out_version(store_url: str, version: int) -> None:
    """Make the store at `store_url` as a callcc whose schema stopped at `version` left it,
    empty; opening it then runs the later migrations, as an upgrade would."""
    import importlib

    name = "sqlite" if store_url.startswith("sqlite") else "postgres"
    backend = importlib.import_module(f"engine.store.{name}")  # postgres needs psycopg
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    else:
        query(store_url.split("?")[0], "CREATE SCHEMA " + store_url.split("schema=")[1])
    if store_url.startswith("sqlite"):  # one connection: migration 2 needs its PRAGMA
        db = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
        for statements in backend.MIGRATIONS[:version]:
            for statement in statements:
                db.execute(statement)
        db.close()
    else:
        for statements in backend.MIGRATIONS[:version]:
            for statement in statements:
                query(store_url, statement)
    query(
        store_url, "CREATE TABLE callcc_migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    for applied in range(1, version + 1):
        query(store_url, "INSERT INTO callcc_migrations VALUES (?, 0)", (applied,))


def undo_why_migration(store_url: str) -> None:
    """Take migration 10 (the pending rows' `policy`) back out of a store, as if the callcc
    before it had made it."""
    for statement in (
        "ALTER TABLE pending DROP COLUMN policy",
        "DELETE FROM callcc_migrations WHERE version = 10",
    ):
        query(store_url, statement)


def undo_fork_migration(store_url: str) -> None:
    """Take migration 9 (forks), and 10 after it, back out of a store, as if the callcc before
    it had made it."""
    undo_why_migration(store_url)
    for statement in (
        "ALTER TABLE runs DROP COLUMN forked_from",
        "ALTER TABLE runs DROP COLUMN forked_at",
        "DELETE FROM callcc_migrations WHERE version = 9",
    ):
        query(store_url, statement)


def undo_inbox_migration(store_url: str) -> None:
    """Take migration 8 (the inbox), and 9 after it, back out of a store, as if the callcc
    before it had made it, so a test of an earlier migration can lay out the store that
    migration upgrades."""
    from engine.store._sql import PENDING_ADDED

    undo_fork_migration(store_url)
    statements = [
        *(f"DROP INDEX {name}" for name in ("pending_by_spec", "pending_by_tool",
          "pending_by_reason", "pending_by_expiry", "runs_newest_first", "runs_by_status",
          "runs_by_spec")),
        "CREATE INDEX runs_by_updated ON runs (updated_at DESC)",
        "CREATE INDEX runs_by_status ON runs (status, updated_at DESC)",
        "DROP TABLE decisions",
        "DROP TABLE audit",
        *(f"ALTER TABLE pending DROP COLUMN {column.split()[0]}" for column in PENDING_ADDED),
        "DELETE FROM callcc_migrations WHERE version = 8",
    ]  # fmt: skip
    for statement in statements:
        query(store_url, statement)


def query(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement run directly against the store at `url` (for assertions on
    what the store wrote; write `?` placeholders, they become `%s` on PostgreSQL)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            return list(db.execute(statement, params).fetchall())
    import psycopg

    parts = urlsplit(url)
    schema = dict(parse_qsl(parts.query)).get("schema")
    server = url.split("?", 1)[0]
    with psycopg.connect(server, autocommit=True) as conn:
        if schema:
            conn.execute("SELECT set_config('search_path', %s, false)", (f'"{schema}"',))
        cur = conn.execute(statement.replace("?", "%s").encode(), params)
        return list(cur.fetchall()) if cur.description is not None else []


# -- run in spawned processes ------------------------------------------------------------------


def race(method: str, target: Any, *args: Any, racers: int = 8) -> list[Any]:
    """Start `racers` processes (`method`: "spawn" or "fork") running
    `target(*args, barrier, results)`, all released at once by the barrier; what each put on
    `results`, once every racer has ended with exit code 0."""
    context = multiprocessing.get_context(method)
    barrier, results = context.Barrier(racers), context.Queue()
    processes = [
        context.Process(target=target, args=(*args, barrier, results)) for _ in range(racers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0, process
    results.close()
    results.join_thread()
    return outcomes


def claim_in_process(url: str, run_id: str, nonce: str, barrier: Barrier, results: Any) -> None:
    """Open the store, wait for every racer, claim; put ("won", version), ("conflict", message)
    or ("error", repr) on `results`."""
    try:
        store = open_store(url)
    except Exception as exc:
        results.put(("error", repr(exc)))
        barrier.abort()
        return
    try:
        barrier.wait(timeout=60)
        results.put(("won", store.claim(run_id, nonce)))
    except ConflictError as exc:
        results.put(("conflict", str(exc)))
    except Exception as exc:
        results.put(("error", repr(exc)))
    finally:
        store.close()


def open_in_process(url: str, barrier: Barrier, results: Any) -> None:
    """Wait for every opener, then open (and so migrate) the store; report ("ok", url) or
    ("error", repr)."""
    try:
        barrier.wait(timeout=60)
        store = open_store(url)
        store.close()
        results.put(("ok", store.url))
    except Exception as exc:
        results.put(("error", repr(exc)))
