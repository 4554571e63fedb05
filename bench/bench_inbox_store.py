"""Benchmark: the inbox's store queries (migration 8) among 100,000 stored runs.

Run: `.venv/bin/python -m bench.bench_inbox_store` (PostgreSQL from `CALLCC_TEST_POSTGRES_URL`,
default the loopback server; skipped with a message when unreachable). For each backend it
bulk-loads `STORED_RUNS` runs (60% suspended, each waiting on one or two entries over three
specs and four tools, a tenth of them decided already, a third with an expiry, a fifth of the
approvals with the condition that made them wait (migration 10); the rest finished
or failed), then times every listing the service and the expiry loop run, `CALLS` times each,
and prints p50 and p99 (goal: `GET /v1/pending` p99 under 50 ms, so each of these well under):

- `pending(limit=100)`: the inbox's first page; then a page from a cursor half-way down;
- `pending` filtered by spec, by a tool one row in a hundred calls, by reason, by run;
- `expired(now, limit=100)`; `list_runs` newest first, by status from a cursor, by spec;
- `record_decisions` of one entry (a write, with its audit entry) and `audit(run_id)`;
- as a floor, in the same run: migration 7's pending query, raw on the driver's connection.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.bench_store import postgres_url, sqlite_url
from engine.store import RunStore, open_store
from engine.store._ops import AUDIT_COLUMNS, DECISION_COLUMNS
from engine.store._sql import PENDING_COLUMNS, RUN_COLUMNS, dump_json
from engine.store.base import AuditEntry, RecordedDecision, pending_cursor, run_cursor

STORED_RUNS = 100_000
CALLS = 200
SPECS = ("hr", "payroll", "it")
TOOLS = ("authorize_account", "send_email", "create_ticket")
POLICY = dump_json({"kind": "when", "when": "args.amount > 1000", "outcome": "held"})
"""The `policy` of a fifth of the approvals: a condition made them wait."""
RARE_TOOL = "wire_transfer"
"""One row in a hundred calls it: a filter that matches few rows must not scan the rest."""


def bulk_rows(count: int, now: float) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(table, row) for `count` runs and their pending rows, decisions and audit entries."""
    base = now - count
    for i in range(count):
        at = base + i
        run_id = f"bulk-{i:06d}"
        spec = SPECS[i % 3]
        kind = i % 10
        status = "suspended" if kind < 6 else ("finished" if kind < 9 else "failed")
        nonce = f"n-{run_id}" if status == "suspended" else None
        output = None if status == "suspended" else "done"
        yield "runs", (run_id, spec, "sha256:x", None, "hr_agent", status, 3, nonce, output, at, at)
        yield "audit", (run_id, at, "ada", "started", *([None] * 9))
        if status != "suspended":
            continue
        entries = 2 if i % 7 == 0 else 1
        for k in range(entries):
            tool = RARE_TOOL if i % 100 == 1 else TOOLS[(i + k) % 3]
            reason = "turn_limit" if k == 1 else "approval"
            path = f"hr_agent/call_{i}_{k}"
            expires = at + 3600 if i % 3 == 0 else None
            policy = POLICY if reason == "approval" and i % 5 == 0 else None  # migration 10
            yield "pending", (
                run_id, path, f"call_{i}_{k}", None if k == 1 else tool, reason, at,
                "hr_agent", dump_json({"user": f"user{i}", "amount": i}), "Approve?", None,
                '["approve","reject","edit"]', f"fp-{i}-{k}", expires, "[]", policy, spec,
            )  # fmt: skip
            if i % 10 == 0 and k == 0:
                yield "decisions", (run_id, nonce, path, 1, f"fp-{i}-{k}",
                                    '{"kind":"approve"}', "ada", at + 1)  # fmt: skip


COLUMNS = {
    "runs": RUN_COLUMNS,
    "pending": f"{PENDING_COLUMNS}, spec_name",
    "decisions": DECISION_COLUMNS,
    "audit": AUDIT_COLUMNS,
}


def bulk_load(store: Any, count: int, now: float) -> None:
    """Insert `count` runs straight through the backend's connection (not a RunStore API)."""
    tables: dict[str, list[tuple[Any, ...]]] = {name: [] for name in COLUMNS}
    for table, row in bulk_rows(count, now):
        tables[table].append(row)
    if hasattr(store, "_db"):  # SQLite
        db: sqlite3.Connection = store._db
        db.execute("BEGIN IMMEDIATE")
        for table, rows in tables.items():
            marks = ", ".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})", rows)
        db.execute("COMMIT")
        db.execute("ANALYZE")
        return
    conn = store._conn  # PostgreSQL
    with conn.transaction(), conn.cursor() as cur:
        for table, rows in tables.items():
            with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    conn.autocommit = True
    for table in COLUMNS:
        conn.execute(f"ANALYZE {table}")
    conn.autocommit = False


def percentiles(call: Callable[[], object]) -> tuple[float, float]:
    """p50 and p99 of `CALLS` calls, in milliseconds (after one warm-up call)."""
    call()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return statistics.median(times), cuts[98]


def bench_backend(url: str) -> list[tuple[str, float, float]]:
    store: RunStore = open_store(url)
    now = time.time()
    try:
        start = time.perf_counter()
        bulk_load(store, STORED_RUNS, now)
        print(f"  bulk load of {STORED_RUNS:,} runs: {time.perf_counter() - start:.1f} s")
        first = store.pending(limit=100)
        assert len(first) == 100 and first == sorted(first, key=lambda p: p.created_at)
        middle = store.pending(limit=1, after=pending_cursor(first[0]))
        half = store.pending(limit=1, run_id=f"bulk-{STORED_RUNS // 2:06d}")
        cursor = pending_cursor(half[0] if half else middle[0])
        newest = store.list_runs(limit=STORED_RUNS // 2)
        run_after = run_cursor(newest[-1])
        rare = store.pending(tool=RARE_TOOL, limit=100)
        assert rare and all(p.tool == RARE_TOOL for p in rare)
        assert any(p.decided for p in store.pending(limit=100))
        cases: list[tuple[str, Callable[[], object]]] = [
            ("pending(limit=100)", lambda: store.pending(limit=100)),
            ("pending(after=half way)", lambda: store.pending(limit=100, after=cursor)),
            ("pending(spec=payroll)", lambda: store.pending(limit=100, spec="payroll")),
            (f"pending(tool={RARE_TOOL})", lambda: store.pending(limit=100, tool=RARE_TOOL)),
            ("pending(reason=turn_limit)", lambda: store.pending(limit=100, reason="turn_limit")),
            ("pending(run_id=...)", lambda: store.pending(run_id="bulk-050000")),
            ("expired(now, limit=100)", lambda: store.expired(now=now, limit=100)),
            ("list_runs(limit=100)", lambda: store.list_runs(limit=100)),
            (
                "list_runs(suspended, after=half)",
                lambda: store.list_runs(status="suspended", limit=100, after=run_after),
            ),
            ("list_runs(spec=it)", lambda: store.list_runs(spec="it", limit=100)),
            ("audit(run_id)", lambda: store.audit("bulk-050000")),
        ]
        figures = [(name, *percentiles(call)) for name, call in cases]
        figures.append(("baseline: migration 7's query, raw", *percentiles(old_query(store))))
        undecided = [p for p in store.pending(limit=CALLS * 3) if not p.decided][: CALLS + 1]
        writes = iter(undecided)

        def decide() -> None:
            p = next(writes)
            nonce = f"n-{p.run_id}"
            store.record_decisions(
                p.run_id,
                nonce,
                [
                    RecordedDecision(
                        run_id=p.run_id,
                        nonce=nonce,
                        path=p.path,
                        fingerprint=p.fingerprint,
                        decision={"kind": "approve"},
                        user="ada",
                        at=time.time(),
                    )
                ],
                audit=[AuditEntry(run_id=p.run_id, at=time.time(), user="ada", action="decided")],
            )

        figures.append(("record_decisions (one, audited)", *percentiles(decide)))
        figures.append(("aio.pending(limit=100)", *aio_percentiles(store)))
        return figures
    finally:
        store.close()


OLD_PENDING = (
    "SELECT p.run_id, p.path, p.call_id, p.tool, p.reason, p.created_at"
    " FROM pending p JOIN runs r ON r.id = p.run_id WHERE r.status = 'suspended'"
    " ORDER BY p.created_at, p.run_id, p.path LIMIT 100"
)
"""What `pending(limit=100)` ran before migration 8 (six columns, no decisions)."""


def old_query(store: Any) -> Callable[[], object]:
    """`OLD_PENDING` straight on the backend's connection, rows as the driver gives them: the
    floor the new listing (more columns, the decided join, rows decoded) is compared with."""
    if hasattr(store, "_db"):
        return lambda: store._db.execute(OLD_PENDING).fetchall()

    def on_postgres() -> object:
        rows = store._conn.execute(OLD_PENDING).fetchall()
        store._conn.rollback()
        return rows

    return on_postgres


def aio_percentiles(store: RunStore) -> tuple[float, float]:
    """`pending(limit=100)` through the async face, as the service calls it."""

    async def timed() -> tuple[float, float]:
        await store.aio.pending(limit=100)
        times = []
        for _ in range(CALLS):
            start = time.perf_counter()
            await store.aio.pending(limit=100)
            times.append((time.perf_counter() - start) * 1000)
        await store.aio.aclose()
        cuts = statistics.quantiles(times, n=100, method="inclusive")
        return statistics.median(times), cuts[98]

    return asyncio.run(timed())


def report(name: str, figures: list[tuple[str, float, float]]) -> None:
    print(f"{name}: p50 / p99 of {CALLS} calls, ms")
    for label, p50, p99 in figures:
        print(f"  {label:36} {p50:7.2f} {p99:7.2f}")


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.bench_inbox_store [sqlite] [postgresql]` (both by default)."""
    backends = set(sys.argv[1:] if argv is None else argv) or {"sqlite", "postgresql"}
    if len(backends) > 1:  # each backend in a fresh interpreter (see bench_store)
        for backend in ("sqlite", "postgresql"):
            sys.stdout.flush()
            subprocess.run([sys.executable, "-m", "bench.bench_inbox_store", backend], check=True)
        return 0
    print(f"callcc inbox store benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs (nproc), Python"
        f" {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    if "sqlite" in backends:
        with sqlite_url() as url:
            report("sqlite", bench_backend(url))
    if "postgresql" in backends:
        with postgres_url() as pg:
            if pg is not None:
                report("postgresql", bench_backend(pg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
