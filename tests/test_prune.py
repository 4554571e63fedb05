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
from engine.errors import UsageError
from engine.store import Event, RunRecord, RunStore, open_store

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
        "nothing to prune: no finished or failed run was last updated over 30d ago\n",
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
