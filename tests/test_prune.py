"""`callcc runs prune`: old runs of the statuses named go, on both backends; a suspended or
running run only with --include-suspended; --dry-run deletes nothing."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from store_fixtures import query

from engine.cli import main
from engine.errors import StoreError, UsageError
from engine.store import Event, PendingRow, RunRecord, RunStore, _plan, _sql, open_store
from engine.store import sqlite as sqlite_store

DAY = 86_400.0
AGES = {
    "done-long-ago": ("finished", 40 * DAY),
    "broke-long-ago": ("failed", 31 * DAY),
    "stopped-long-ago": ("stopped", 45 * DAY),
    "waits-long-ago": ("suspended", 90 * DAY),
    "done-yesterday": ("finished", 1 * DAY),
}


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def aged_store(store_url: str) -> Iterator[RunStore]:
    """A store holding the runs of `AGES`, each last updated that long ago."""
    store = open_store(store_url)
    for run_id, (status, age) in AGES.items():
        now = time.time()
        store.create_run(RunRecord(
            run_id=run_id, spec_name="s", spec_digest="sha256:s", spec_path=None, agent="a",
            status="running", version=0, nonce=None, output=None, created_at=now, updated_at=now,
        ))  # fmt: skip
        first = Event(frame="", kind="messages", data={"messages": [{"role": "user"}]})
        version = store.append(run_id, 0, [first])
        nonce = "n" if status == "suspended" else None
        store.settle(run_id, version, status=status, nonce=nonce, output=None, pending=[])
        query(store_url, "UPDATE runs SET updated_at = ? WHERE id = ?", (now - age, run_id))
    try:
        yield store
    finally:
        store.close()


def kept(store: RunStore) -> list[str]:
    return sorted(r.run_id for r in store.list_runs())


def test_prune_dry_run_lists_then_prune_deletes_old_finished_and_failed_runs(
    aged_store: RunStore, store_url: str
) -> None:
    argv = ("runs", "prune", "--status", "finished", "--status", "failed", "--older-than", "30d")
    code, out, err = cli(*argv, "--store", store_url, "--dry-run")
    assert (code, err) == (0, "")
    assert out == "would prune 2 finished or failed runs:\n  done-long-ago\n  broke-long-ago\n"
    assert kept(aged_store) == sorted(AGES)

    code, out, err = cli(*argv, "--store", store_url)
    assert (code, err) == (0, "")
    assert out == "pruned 2 finished or failed runs:\n  done-long-ago\n  broke-long-ago\n"
    assert kept(aged_store) == ["done-yesterday", "stopped-long-ago", "waits-long-ago"]

    code, out, _ = cli(*argv, "--store", store_url)
    assert (code, out) == (
        0,
        "nothing to prune: no finished or failed run was last updated over 30d ago"
        " (failed runs that can still be resumed stay without --include-suspended)\n",
    )


def test_prune_takes_hours_minutes_seconds_and_json(aged_store: RunStore, store_url: str) -> None:
    code, out, _ = cli(
        "runs", "prune", "--status", "stopped", "--older-than", "1000h", "--store", store_url,
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    data: dict[str, Any] = json.loads(out)
    assert data == {"dry_run": False, "count": 1, "runs": ["stopped-long-ago"]}
    code, out, _ = cli(
        "runs", "prune", "--status", "finished", "--older-than", "120m", "--store", store_url,
        "--format", "json", "--dry-run",
    )  # fmt: skip
    runs = ["done-long-ago", "done-yesterday"]
    assert json.loads(out) == {"dry_run": True, "count": 2, "runs": runs}
    assert "done-yesterday" in kept(aged_store)


def test_a_suspended_run_is_pruned_only_with_include_suspended(
    aged_store: RunStore, store_url: str
) -> None:
    for status in ("suspended", "running"):
        code, out, err = cli(
            "runs", "prune", "--status", status, "--older-than", "0", "--store", store_url
        )
        assert (code, out) == (2, ""), err
        assert f"--status {status}: a {status} run may still go on" in err
        assert "--include-suspended" in err
    assert kept(aged_store) == sorted(AGES)
    code, out, _ = cli(
        "runs", "prune", "--status", "suspended", "--older-than", "60d", "--include-suspended",
        "--store", store_url,
    )  # fmt: skip
    assert (code, out) == (0, "pruned 1 suspended run:\n  waits-long-ago\n")
    assert store_has_no_rows_of(store_url, "waits-long-ago")


def test_a_failed_run_that_can_be_resumed_is_pruned_only_with_include_suspended(
    aged_store: RunStore, store_url: str
) -> None:
    """A failed run that kept its nonce (its failing model call can be resumed or stopped)
    still waits for a decision, as a suspended run does."""
    store = aged_store
    now = time.time()
    store.create_run(RunRecord(
        run_id="broke-resumable", spec_name="s", spec_digest="sha256:s", spec_path=None,
        agent="a", status="running", version=0, nonce=None, output=None, created_at=now,
        updated_at=now,
    ))  # fmt: skip
    store.settle("broke-resumable", 0, status="failed", nonce="n-retry", output="model down",
                 pending=[])  # fmt: skip
    query(store_url, "UPDATE runs SET updated_at = ? WHERE id = ?",
          (now - 50 * DAY, "broke-resumable"))  # fmt: skip
    argv = ("runs", "prune", "--status", "failed", "--older-than", "30d", "--store", store_url)
    code, out, err = cli(*argv, "--dry-run")
    assert (code, out, err) == (0, "would prune 1 failed run:\n  broke-long-ago\n", "")
    code, out, err = cli(*argv)
    assert (code, out, err) == (0, "pruned 1 failed run:\n  broke-long-ago\n", "")
    assert store.get_run("broke-resumable").nonce == "n-retry"  # kept, still resumable
    code, out, err = cli(*argv, "--include-suspended")
    assert (code, out, err) == (0, "pruned 1 failed run:\n  broke-resumable\n", "")
    assert store_has_no_rows_of(store_url, "broke-resumable")
    code, out, err = cli(*argv)
    assert out == (
        "nothing to prune: no failed run was last updated over 30d ago"
        " (failed runs that can still be resumed stay without --include-suspended)\n"
    )


def store_has_no_rows_of(store_url: str, run_id: str) -> bool:
    tables = ("runs WHERE id", "events WHERE run_id", "pending WHERE run_id")
    return all(query(store_url, f"SELECT COUNT(*) FROM {t} = ?", (run_id,)) == [(0,)]
               for t in tables)  # fmt: skip


@pytest.mark.parametrize("age", ["3x", "-1d", "d", "nan", ""])
def test_an_age_that_is_no_age_is_exit_2(age: str, tmp_path: Any) -> None:
    code, _, err = cli(
        "runs", "prune", "--status", "finished", f"--older-than={age}",
        "--store", f"sqlite:///{tmp_path / 'runs.db'}",
    )  # fmt: skip
    assert code == 2
    assert "is not an age" in err and "30d, 12h, 90m, 45s" in err


def test_a_bare_number_of_days_or_seconds_is_refused_not_guessed(tmp_path: Any) -> None:
    code, _, err = cli(
        "runs", "prune", "--status", "finished", "--older-than", "30",
        "--store", f"sqlite:///{tmp_path / 'runs.db'}",
    )  # fmt: skip
    assert code == 2
    assert "'30' has no unit: write 30d for days, 30h, 30m or 30s" in err


def test_prune_from_python_takes_seconds_and_says_so(store: RunStore) -> None:
    for wrong in ("30d", None, True):
        with pytest.raises(UsageError, match=r"older_than must be a number of seconds"):
            store.prune(status=["finished"], older_than=wrong)  # type: ignore[arg-type]
    assert store.prune(status=["finished"], older_than=30 * 86_400) == []


@pytest.mark.parametrize(
    "argv",
    [
        ("runs", "list"),
        ("runs", "show", "some-run"),
        ("runs", "pending"),
        ("runs", "prune", "--status", "finished", "--older-than", "30d"),
    ],
)
def test_a_command_that_reads_runs_refuses_a_store_file_that_does_not_exist(
    argv: tuple[str, ...], tmp_path: Any
) -> None:
    missing = tmp_path / "mistyped" / "runs.db"
    code, _, err = cli(*argv, "--store", f"sqlite:///{missing}")
    assert code == 2
    assert f"no run store at {missing}: the file does not exist" in err
    assert not missing.parent.exists()  # nothing was made


# -- a run is pruned whole or not at all -------------------------------------------------------


class _Between:
    """A cursor that calls `between()` once, after its first `after` statements and before the
    next: another connection acts while prune's transaction is open, between its statements."""

    def __init__(self, cursor: Any, after: int, between: Any) -> None:
        self._cursor, self._after, self._between, self._ran = cursor, after, between, 0

    def _next(self) -> None:
        if self._ran == self._after:
            self._between()
        self._ran += 1

    def execute(self, *args: Any) -> Any:
        self._next()
        return self._cursor.execute(*args)

    def executemany(self, *args: Any) -> Any:
        self._next()
        return self._cursor.executemany(*args)

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    @property
    def description(self) -> Any:
        return self._cursor.description


def _impatient(store_url: str, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    """A second store at `store_url` that gives up on a lock after 0.2 s instead of waiting
    (so a claim that prune's transaction blocks fails here instead of hanging the test)."""
    if store_url.startswith("sqlite"):
        monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_SECONDS", 0.2)
        return open_store(store_url)
    return open_store(f"{store_url}&options=-clock_timeout%3D200")


@pytest.mark.parametrize("after", [1, 2], ids=["after-the-select", "after-a-delete"])
def test_a_run_claimed_while_prune_runs_is_deleted_whole_or_kept_whole(
    after: int, store: RunStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume that claims a run between prune's statements must not leave the run in place
    with its events, snapshot and consumed nonces gone, nor be reported pruned while it is
    kept: prune locks the runs it chose, so the claim waits for prune (here: gives up after
    0.2 s) and the run goes whole."""
    store.create_run(RunRecord(
        run_id="r1", spec_name="s", spec_digest="sha256:s", spec_path=None, agent="a",
        status="running", version=0, nonce=None, output=None, created_at=0.0, updated_at=0.0,
    ))  # fmt: skip
    first = Event(frame="", kind="messages", data={"messages": [{"role": "user"}]})
    version = store.append("r1", 0, [first])
    version = store.settle("r1", version, status="suspended", nonce="n0", output=None,
                           pending=[waiting("r1")])  # fmt: skip
    version = store.claim("r1", "n0")  # a first resume: n0 is consumed
    kept = Event(frame="", kind="snapshot", data={"frames": []})
    store.settle("r1", version, status="suspended", nonce="n1", output=None,
                 pending=[waiting("r1")], snapshot=kept)  # fmt: skip
    assert all(store_rows_of(store_url, "r1").values())  # a row of the run in every table
    query(store_url, "UPDATE runs SET updated_at = ? WHERE id = ?", (time.time() - DAY, "r1"))
    other = _impatient(store_url, monkeypatch)
    claims: list[Any] = []

    def claim() -> None:
        try:
            claims.append(other.claim("r1", "n1"))
        except StoreError as exc:  # the run is locked by prune's transaction
            claims.append(exc)

    real_run = _plan.run
    once: list[bool] = []

    def run_between(cursor: Any, plan: Any) -> Any:
        if once:
            return real_run(cursor, plan)
        once.append(True)
        return real_run(_Between(cursor, after, claim), plan)

    monkeypatch.setattr(_plan, "run", run_between)
    try:
        pruned = store.prune(status="suspended", older_than=3600, include_suspended=True)
    finally:
        monkeypatch.setattr(_plan, "run", real_run)
        other.close()
    assert store_rows_of(store_url, "r1") == dict.fromkeys(RUN_ROW_TABLES, 0)  # none left
    assert pruned == ["r1"]
    assert len(claims) == 1 and isinstance(claims[0], StoreError), claims  # it had to wait


def waiting(run_id: str) -> PendingRow:
    return PendingRow(run_id=run_id, path="a/c1", call_id="c1", tool="t", reason="approval",
                      created_at=0.0)  # fmt: skip


def test_a_prune_of_more_runs_than_one_statement_names_deletes_them_all(
    aged_store: RunStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prune deletes by lists of ids, a few at a time (under the drivers' parameter limits):
    every list is deleted, and only the runs chosen."""
    monkeypatch.setattr(_sql, "PRUNE_CHUNK", 2)
    pruned = aged_store.prune(status=["finished", "failed", "stopped"], older_than=2 * DAY)
    assert pruned == ["stopped-long-ago", "done-long-ago", "broke-long-ago"]
    assert kept(aged_store) == ["done-yesterday", "waits-long-ago"]
    for run_id in pruned:
        assert store_rows_of(store_url, run_id) == dict.fromkeys(RUN_ROW_TABLES, 0)
    assert aged_store.events("done-yesterday") != []


RUN_ROW_TABLES = ("runs", "events", "snapshots", "pending", "consumed_nonces")


def store_rows_of(store_url: str, run_id: str) -> dict[str, int]:
    """How many rows of `run_id` each table holds."""
    counts = {}
    for table in RUN_ROW_TABLES:
        key = "id" if table == "runs" else "run_id"
        counts[table] = query(store_url, f"SELECT COUNT(*) FROM {table} WHERE {key} = ?",
                              (run_id,))[0][0]  # fmt: skip
    return counts
