"""Run stores: `open_store(url)` picks the backend from the URL.

- `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (the embedded default,
  `sqlite:///.callcc/runs.db`): `engine.store.sqlite`, WAL mode.
- `postgresql://user@host:5432/db` (psycopg 3, `pip install callcc[postgres]`):
  `engine.store.postgres`, the only module that imports the driver.

Either is a `RunStore` (blocking methods) whose `aio` is an `AsyncRunStore` (the same methods,
awaited): one URL for the sync and the async API.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from engine._lazy import exports
from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.store.base import (
        RUN_STATUSES,
        AsyncRunStore,
        AuditEntry,
        Event,
        Lease,
        PendingRow,
        RecordedDecision,
        RunRecord,
        RunStatus,
        RunStore,
        SpecRow,
        pending_cursor,
        run_cursor,
    )

STORE_ENV = "CALLCC_STORE"
DEFAULT_URL = "sqlite:///.callcc/runs.db"


def open_store(url: str | None = None) -> RunStore:
    """Open (and migrate) the store at `url`, or at `CALLCC_STORE`."""
    target = url or os.environ.get(STORE_ENV) or ""
    if not target:
        raise UsageError(f"no run store given: pass --store URL or set {STORE_ENV}")
    if target.startswith("sqlite:///"):
        from engine.store.sqlite import SQLiteStore

        return SQLiteStore(target)
    if target.startswith(("postgresql://", "postgres://")):
        try:
            from engine.store.postgres import PostgresStore
        except ImportError as exc:  # psycopg missing
            raise UsageError(
                f"the PostgreSQL store needs psycopg: pip install 'callcc[postgres]' ({exc})"
            ) from None
        return PostgresStore(target)
    raise UsageError(
        f"unknown store URL {target!r}; use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


__all__ = [
    "DEFAULT_URL",
    "RUN_STATUSES",
    "STORE_ENV",
    "AsyncRunStore",
    "AuditEntry",
    "Event",
    "Lease",
    "PendingRow",
    "RecordedDecision",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SpecRow",
    "open_store",
    "pending_cursor",
    "run_cursor",
]

if not TYPE_CHECKING:  # on first use: `callcc pending` names STORE_ENV and opens no store
    _BASE = {"RUN_STATUSES", "Event", "Lease", "PendingRow", "RunRecord", "RunStatus"}
    _BASE |= {"AuditEntry", "RecordedDecision", "pending_cursor", "run_cursor"}
    __getattr__, __dir__ = exports(
        __name__, dict.fromkeys(_BASE | {"RunStore", "SpecRow"}, "engine.store.base")
    )
