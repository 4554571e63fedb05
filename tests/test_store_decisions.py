"""The inbox half of the RunStore contract (migration 8), against every backend and both faces:
pending rows that carry what a reviewer is shown, listings that page with cursors and filter,
recorded decisions (all or nothing, checked against the suspension and each fingerprint),
the append-only audit trail, expiry, and retention of all of it with the run.

`store` is `faced_store` (store_fixtures.py): each test runs on SQLite and PostgreSQL, through
the blocking methods and through `store.aio`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import lay_out_version, query

from engine import Runtime, Suspended, load_spec
from engine.errors import DecisionConflict, UsageError
from engine.frames import PolicyWhy
from engine.store import PendingRow, RunRecord, RunStore, open_store
from engine.store.base import (
    AuditEntry,
    RecordedDecision,
    pending_cursor,
    run_cursor,
)
from engine.store.sqlite import MIGRATIONS  # both backends number theirs alike

T0 = 1_700_000_000.0
ROOT = Path(__file__).parent.parent


@pytest.fixture
def store(faced_store: RunStore) -> RunStore:
    """Each backend through each face."""
    return faced_store


def new_run(run_id: str, *, spec: str = "hr", at: float = T0) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        spec_name=spec,
        spec_digest="sha256:aaa",
        spec_path=None,
        agent="hr_agent",
        status="running",
        version=0,
        nonce=None,
        output=None,
        created_at=at,
        updated_at=at,
    )


def row(
    run_id: str,
    call_id: str,
    *,
    at: float = T0,
    tool: str | None = "authorize_account",
    reason: str = "approval",
    expires_at: float | None = None,
    spec: str = "hr",
) -> PendingRow:
    return PendingRow(
        run_id=run_id,
        path=f"hr_agent/{call_id}",
        call_id=call_id,
        tool=tool,
        reason=reason,
        created_at=at,
        agent="hr_agent",
        arguments={"user": "ada", "call": call_id},
        prompt=f"Approve {call_id}?",
        detail=None,
        decisions=("approve", "reject", "edit"),
        fingerprint=f"fp-{call_id}",
        expires_at=expires_at,
        approvers=("finance",),
        spec_name=spec,
    )


def suspend(
    store: RunStore, run_id: str, nonce: str, *rows: PendingRow, spec: str = "hr", version: int = 0
) -> int:
    """Create (at version 0) or settle again a run suspended on `nonce` with `rows`."""
    if version == 0:
        store.create_run(new_run(run_id, spec=spec))
    return store.settle(
        run_id, version, status="suspended", nonce=nonce, output=None, pending=list(rows)
    )


def decision(
    run_id: str, nonce: str, call_id: str, *, fp: str | None = None, **more: Any
) -> RecordedDecision:
    return RecordedDecision(
        run_id=run_id,
        nonce=nonce,
        path=f"hr_agent/{call_id}",
        fingerprint=fp if fp is not None else f"fp-{call_id}",
        decision={"kind": "approve", **more},
        user="ada",
        at=T0 + 10,
    )


def entry(run_id: str, action: str, **fields: Any) -> AuditEntry:
    return AuditEntry(run_id=run_id, at=T0 + 1, user="ada", action=action, **fields)


# -- pending rows ------------------------------------------------------------------------------


def test_pending_rows_keep_what_a_reviewer_is_shown_and_name_the_runs_spec(
    store: RunStore,
) -> None:
    odd = PendingRow(
        run_id="run-1",
        path="hr_agent/call_\x00odd",
        call_id="call_\x00odd",
        tool="send\ud800",
        reason="external",
        created_at=T0,
        agent="hr_agent",
        arguments={"text": "nul \x00 and \ud800 and ✓", "n": [1, 2.5, None]},
        prompt="Answer \x00?",
        detail="limit \ud800",
        decisions=("answer",),
        fingerprint="fp",
        expires_at=T0 + 3600,
        approvers=("finance", "ada"),
        spec_name="not the run's",  # the store takes the run's
    )
    suspend(store, "run-1", "n1", row("run-1", "call_1"), odd, spec="payroll")
    listed = store.pending()
    assert listed == [
        row("run-1", "call_1", spec="payroll"),
        replace(odd, spec_name="payroll"),
    ]
    assert [p.decided for p in listed] == [False, False]
    assert store.pending(spec="payroll", tool="send\ud800") == [listed[1]]


def test_an_old_style_pending_row_keeps_its_defaults(store: RunStore) -> None:
    plain = PendingRow(
        run_id="run-1", path="a/b", call_id="b", tool=None, reason="pause", created_at=T0
    )
    suspend(store, "run-1", "n1", plain)
    (read,) = store.pending()
    assert read == replace(plain, spec_name="hr")
    assert (read.arguments, read.decisions, read.approvers, read.expires_at) == (None, (), (), None)


def test_a_pending_row_keeps_the_condition_that_made_it_wait_and_a_plain_one_has_none(
    store: RunStore,
) -> None:
    held = {
        "kind": "when",
        "when": 'args.amount > 1000 || args.currency != "EUR"',
        "outcome": "held",
    }
    failed = {"kind": "when", "when": "args.memo.size() > 0", "outcome": "error"}
    failed["error"] = "no field 'memo' \x00 \ud800 ✓"  # as a document may hold it
    suspend(
        store,
        "run-1",
        "n1",
        replace(row("run-1", "call_1"), policy=held),
        replace(row("run-1", "call_2", at=T0 + 1), policy=failed),
        row("run-1", "call_3", at=T0 + 2),
    )
    listed = store.pending()
    assert [p.policy for p in listed] == [held, failed, None]
    assert [list(p.policy or ()) for p in listed] == [  # in the document's key order
        ["kind", "when", "outcome"],
        ["kind", "when", "outcome", "error"],
        [],
    ]
    assert store.pending(tool="authorize_account", limit=1) == listed[:1]
    stored = query(store.url, "SELECT policy FROM pending ORDER BY created_at")
    assert [p if p is None else json.loads(p) for (p,) in stored] == [held, failed, None]


# -- cursors and filters -----------------------------------------------------------------------


def many_runs(store: RunStore) -> list[PendingRow]:
    """Nine runs over two specs; runs 0, 3, 6 wait on two entries (one a turn limit); two
    share a time; one run finished (its rows are not listed)."""
    for i in range(9):
        spec = "hr" if i % 2 == 0 else "payroll"
        at = T0 + (i // 2)  # pairs of runs suspend at the same second
        rows = [row(f"run-{i}", "call_a", at=at, tool="send" if i % 3 else "grant", spec=spec)]
        if i % 3 == 0:
            rows.append(row(f"run-{i}", "turns", at=at, tool=None, reason="turn_limit", spec=spec))
        suspend(store, f"run-{i}", f"n{i}", *rows, spec=spec)
    store.create_run(new_run("done"))
    store.settle("done", 0, status="finished", nonce=None, output="ok", pending=[])
    return store.pending(limit=1000)


def pages(store: RunStore, size: int, **filters: Any) -> list[list[PendingRow]]:
    found: list[list[PendingRow]] = []
    after: str | None = None
    while True:
        page = store.pending(limit=size, after=after, **filters)
        if not page:
            return found
        found.append(page)
        after = pending_cursor(page[-1])


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"spec": "payroll"},
        {"tool": "send"},
        {"reason": "turn_limit"},
        {"run_id": "run-3"},
        {"spec": "hr", "tool": "grant"},
    ],
)
def test_pending_cursors_page_through_every_row_once_with_any_filter(
    store: RunStore, filters: dict[str, str]
) -> None:
    everything = many_runs(store)
    assert len(everything) == 12
    keys = [(p.created_at, p.run_id, p.path) for p in everything]
    assert keys == sorted(keys), "oldest first, then by run and path"
    expected = [
        p
        for p in everything
        if all(
            getattr(p, {"spec": "spec_name"}.get(name, name)) == value
            for name, value in filters.items()
        )
    ]
    assert expected, filters
    assert store.pending(**filters) == expected
    for size in (1, 2, 5):
        paged = pages(store, size, **filters)
        assert [p for page in paged for p in page] == expected
        assert all(len(page) == size for page in paged[:-1])


def test_run_cursors_page_newest_first_by_status_and_spec(store: RunStore) -> None:
    many_runs(store)
    everything = store.list_runs(limit=1000)
    assert len(everything) == 10
    order = [(r.updated_at, r.run_id) for r in everything]
    assert order == sorted(order, reverse=True)
    for filters in ({}, {"status": "suspended"}, {"spec": "payroll"}, {"status": "finished"}):
        expected = store.list_runs(limit=1000, **filters)  # type: ignore[arg-type]
        paged: list[RunRecord] = []
        after = None
        while page := store.list_runs(limit=3, after=after, **filters):  # type: ignore[arg-type]
            paged += page
            after = run_cursor(page[-1])
        assert paged == expected, filters
    assert {r.spec_name for r in store.list_runs(spec="payroll")} == {"payroll"}


@pytest.mark.parametrize(
    "cursor", ["", "!!", "bm90IGpzb24", "WzEsMl0", "WyJhIiwiYiIsImMiXQ", "WzEsImEiLDJd"]
)
def test_a_malformed_cursor_is_a_usage_error(store: RunStore, cursor: str) -> None:
    # garbage, not base64, not JSON, [1,2], ["a","b","c"], [1,"a",2]
    with pytest.raises(UsageError, match="malformed pending cursor"):
        store.pending(after=cursor)
    with pytest.raises(UsageError, match="malformed run cursor"):
        store.list_runs(after=cursor or "x")


def test_a_pending_cursor_is_url_safe_and_opaque() -> None:
    cursor = pending_cursor(row("run/1?&=", "call_\x00+"))
    assert cursor.isascii() and all(c.isalnum() or c in "-_" for c in cursor)


# -- recorded decisions ------------------------------------------------------------------------


def test_decisions_are_recorded_counted_and_shown_as_decided(store: RunStore) -> None:
    suspend(
        store, "run-1", "n1", row("run-1", "call_1"), row("run-1", "call_2"), row("run-1", "call_3")
    )
    first = decision("run-1", "n1", "call_2", reason="ok")
    assert store.record_decisions("run-1", "n1", [first]) == 2
    edit = replace(
        decision("run-1", "n1", "call_1"),
        decision={"kind": "edit", "arguments": {"user": "bob", "\x00": "\ud800"}},
        user="os:ada\x00",
    )
    last = decision("run-1", "n1", "call_3")
    assert store.record_decisions("run-1", "n1", [edit, last]) == 0
    assert store.recorded_decisions("run-1") == [first, edit, last]
    assert store.recorded_decisions("run-1", "n1") == [first, edit, last]
    assert store.recorded_decisions("run-1", "other") == []
    assert [p.decided for p in store.pending()] == [True, True, True]


def why(
    store: RunStore, run_id: str, nonce: str, *decisions: RecordedDecision
) -> tuple[str, str | None]:
    with pytest.raises(DecisionConflict) as caught:
        store.record_decisions(run_id, nonce, list(decisions), audit=[entry(run_id, "decided")])
    assert caught.value.run_id == run_id
    assert "nothing was recorded" in str(caught.value)
    return caught.value.why, caught.value.path


def test_each_refusal_says_why_and_records_nothing_of_the_batch(store: RunStore) -> None:
    suspend(store, "run-1", "n1", row("run-1", "call_1"), row("run-1", "call_2"))
    ok = decision("run-1", "n1", "call_1")
    stale_nonce = decision("run-1", "n0", "call_1")
    assert why(store, "run-1", "n0", stale_nonce) == ("not_suspended", "hr_agent/call_1")
    assert why(store, "run-1", "n1", ok, decision("run-1", "n1", "call_9")) == (
        "not_pending",
        "hr_agent/call_9",
    )
    assert why(store, "run-1", "n1", ok, decision("run-1", "n1", "call_2", fp="old")) == (
        "stale",
        "hr_agent/call_2",
    )
    assert why(store, "run-1", "n1", ok, ok) == ("decided", "hr_agent/call_1")
    assert store.recorded_decisions("run-1") == [] and store.audit("run-1") == []
    assert store.record_decisions("run-1", "n1", [ok]) == 1
    assert why(store, "run-1", "n1", decision("run-1", "n1", "call_2"), ok) == (
        "decided",
        "hr_agent/call_1",
    )
    assert store.recorded_decisions("run-1") == [ok]
    store.claim("run-1", "n1")  # resumed: running now
    assert why(store, "run-1", "n1", decision("run-1", "n1", "call_2"))[0] == "not_suspended"
    store.settle("run-1", 2, status="finished", nonce=None, output="done", pending=[])
    assert why(store, "run-1", "n1", decision("run-1", "n1", "call_2"))[0] == "not_suspended"


def test_a_decision_for_another_run_or_nonce_or_an_unknown_run_is_a_usage_error(
    store: RunStore,
) -> None:
    suspend(store, "run-1", "n1", row("run-1", "call_1"))
    with pytest.raises(UsageError, match="record each run's decisions separately"):
        store.record_decisions("run-1", "n1", [decision("run-2", "n1", "call_1")])
    with pytest.raises(UsageError, match="has no kind"):
        store.record_decisions(
            "run-1",
            "n1",
            [replace(decision("run-1", "n1", "call_1"), decision={})],
        )
    with pytest.raises(UsageError, match="no run 'nope'"):
        store.record_decisions("nope", "n1", [decision("nope", "n1", "call_1")])


def test_a_new_suspension_starts_undecided_and_keeps_the_old_decisions_as_history(
    store: RunStore,
) -> None:
    version = suspend(store, "run-1", "n1", row("run-1", "call_1"), row("run-1", "call_2"))
    old = decision("run-1", "n1", "call_1")
    assert store.record_decisions("run-1", "n1", [old]) == 1
    # settling again on the same nonce (a drive that failed to resume) keeps its decisions
    version = suspend(
        store, "run-1", "n1", row("run-1", "call_1"), row("run-1", "call_2"), version=version
    )
    assert store.recorded_decisions("run-1") == [old]
    assert [p.decided for p in store.pending()] == [True, False]
    version = store.claim("run-1", "n1")
    suspend(store, "run-1", "n2", row("run-1", "call_1"), version=version)
    assert store.recorded_decisions("run-1") == []
    assert store.recorded_decisions("run-1", "n1") == [old]
    assert [p.decided for p in store.pending()] == [False]
    assert store.record_decisions("run-1", "n2", [decision("run-1", "n2", "call_1")]) == 0


# -- the audit trail ---------------------------------------------------------------------------


def test_the_audit_trail_is_kept_in_order_and_only_grows(store: RunStore) -> None:
    suspend(store, "run-1", "n1", row("run-1", "call_1"))
    store.add_audit([entry("run-1", "started"), entry("run-2", "started")])
    edited = entry(
        "run-1",
        "decided",
        path="hr_agent/call_1",
        call_id="call_1",
        tool="authorize_account",
        fingerprint="fp-call_1",
        decision="edit",
        reason="typo \x00",
        before={"user": "ada"},
        after={"user": "Ada \ud800"},
        detail={"via": "inbox", "n": [1]},
    )
    store.record_decisions("run-1", "n1", [decision("run-1", "n1", "call_1")], audit=[edited])
    store.add_audit([entry("run-1", "resumed", before=[1, "x"], after="text")])
    store.add_audit([])
    trail = store.audit("run-1")
    assert [e.action for e in trail] == ["started", "decided", "resumed"]
    seqs = [e.seq for e in trail]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > 0
    assert trail[1] == replace(edited, seq=seqs[1])
    assert (trail[2].before, trail[2].after) == ([1, "x"], "text")
    assert store.audit("run-1", after_seq=seqs[0]) == trail[1:]
    assert store.audit("run-1", limit=1) == trail[:1]
    assert [e.action for e in store.audit("run-2")] == ["started"]
    store.add_audit([entry("run-1", "finished")])
    assert store.audit("run-1")[:3] == trail, "entries already kept never change"
    assert store.audit("run-1")[3].seq > seqs[-1]


# -- expiry ------------------------------------------------------------------------------------


def test_expired_lists_undecided_rows_of_suspended_runs_due_by_now(store: RunStore) -> None:
    suspend(
        store,
        "run-1",
        "n1",
        row("run-1", "call_1", expires_at=T0 + 20),
        row("run-1", "call_2", expires_at=T0 + 10),
        row("run-1", "call_3"),
    )
    suspend(store, "run-2", "n2", row("run-2", "call_1", expires_at=T0 + 5))
    suspend(store, "run-3", "n3", row("run-3", "call_1", expires_at=T0 + 1))
    store.claim("run-3", "n3")  # running: not waiting on anyone
    assert store.expired(now=T0) == []
    assert [(p.run_id, p.call_id) for p in store.expired(now=T0 + 10)] == [
        ("run-2", "call_1"),
        ("run-1", "call_2"),
    ]
    assert len(store.expired(now=T0 + 100, limit=1)) == 1
    store.record_decisions("run-1", "n1", [decision("run-1", "n1", "call_2")])
    assert [(p.run_id, p.call_id) for p in store.expired(now=T0 + 100)] == [
        ("run-2", "call_1"),
        ("run-1", "call_1"),
    ]


# -- retention ---------------------------------------------------------------------------------


def test_delete_and_prune_take_a_runs_decisions_and_audit_with_it(
    faced_store: RunStore, store_url: str
) -> None:
    store = faced_store
    for run_id in ("run-1", "run-2", "keep"):
        suspend(store, run_id, f"n-{run_id}", row(run_id, "call_1"))
        store.record_decisions(
            run_id,
            f"n-{run_id}",
            [decision(run_id, f"n-{run_id}", "call_1")],
            audit=[entry(run_id, "decided")],
        )
    assert store.delete("run-1")
    store.settle("run-2", 1, status="failed", nonce=None, output="x", pending=[])
    assert store.prune(status="failed", older_than=0) == ["run-2"]
    for table in ("decisions", "audit"):
        assert query(store_url, f"SELECT DISTINCT run_id FROM {table}") == [("keep",)], table
    assert len(store.recorded_decisions("keep")) == 1 and len(store.audit("keep")) == 1


# -- concurrency: real threads and tasks on real databases --------------------------------------


def test_concurrent_decisions_of_one_run_from_threads(store_url: str) -> None:
    """Two processes' worth of stores (one each per thread) decide at one moment: different
    items both land; the same item lands exactly once."""
    setup = open_store(store_url)
    suspend(setup, "run-1", "n1", *(row("run-1", f"call_{i}") for i in range(4)))
    stores = [open_store(store_url) for _ in range(4)]
    barrier = threading.Barrier(4, timeout=30)
    outcomes: list[Any] = [None] * 4
    items = ["call_0", "call_1", "call_2", "call_2"]  # two race for call_2

    def decide(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = stores[i].record_decisions(
                "run-1", "n1", [decision("run-1", "n1", items[i])]
            )
        except DecisionConflict as exc:
            outcomes[i] = exc.why

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for opened in (*stores, setup):
        opened.close()
    assert all(isinstance(o, int) for o in outcomes[:2]), outcomes
    assert [isinstance(o, int) for o in outcomes[2:]].count(True) == 1, outcomes
    assert "decided" in outcomes[2:], outcomes
    assert sorted(o for o in outcomes if isinstance(o, int)) == [1, 2, 3]  # remaining each time
    check = open_store(store_url)
    try:
        paths = [d.path for d in check.recorded_decisions("run-1")]
        assert sorted(paths) == ["hr_agent/call_0", "hr_agent/call_1", "hr_agent/call_2"]
    finally:
        check.close()


def test_concurrent_decisions_of_one_run_from_tasks(store_url: str) -> None:
    store = open_store(store_url)
    suspend(store, "run-1", "n1", *(row("run-1", f"call_{i}") for i in range(3)))

    async def decide(call_id: str) -> int | str:
        try:
            return await store.aio.record_decisions(
                "run-1", "n1", [decision("run-1", "n1", call_id)]
            )
        except DecisionConflict as exc:
            return exc.why

    async def main() -> list[int | str]:
        try:
            return await asyncio.gather(*(decide(c) for c in ("call_0", "call_1", "call_1")))
        finally:
            await store.aio.aclose()

    outcomes = asyncio.run(main())
    try:
        assert sorted(map(str, outcomes)) == ["1", "2", "decided"], outcomes
        assert len(store.recorded_decisions("run-1")) == 2
    finally:
        store.close()


# -- migration ---------------------------------------------------------------------------------


def test_a_store_at_migration_7_gains_the_inbox_and_keeps_its_pending_rows(
    store_url: str,
) -> None:
    lay_out_version(store_url, 7)
    query(
        store_url,
        "INSERT INTO runs (id, spec_name, spec_digest, spec_path, agent, status, version, nonce,"
        " output, created_at, updated_at) VALUES ('old', 'hr', 'd', NULL, 'hr_agent',"
        " 'suspended', 1, 'n1', NULL, ?, ?)",
        (T0, T0),
    )
    query(
        store_url,
        "INSERT INTO pending (run_id, path, call_id, tool, reason, created_at)"
        " VALUES ('old', 'hr_agent/call_1', 'call_1', 'authorize_account', 'approval', ?)",
        (T0,),
    )
    store = open_store(store_url)
    try:
        (kept,) = store.pending()
        assert kept == PendingRow(
            run_id="old",
            path="hr_agent/call_1",
            call_id="call_1",
            tool="authorize_account",
            reason="approval",
            created_at=T0,
            spec_name="hr",
        )
        assert store.pending(spec="hr") == [kept]
        with pytest.raises(DecisionConflict) as caught:  # its fingerprint was never kept
            store.record_decisions("old", "n1", [decision("old", "n1", "call_1")])
        assert caught.value.why == "stale"
        assert store.record_decisions("old", "n1", [decision("old", "n1", "call_1", fp="")]) == 0
        versions = query(store_url, "SELECT MAX(version) FROM callcc_migrations")
        assert versions == [(len(MIGRATIONS),)]  # up to the latest, as every store opened
    finally:
        store.close()


def test_a_store_at_migration_9_gains_the_policy_column_and_its_rows_have_none(
    store_url: str,
) -> None:
    lay_out_version(store_url, 9)
    query(
        store_url,
        "INSERT INTO runs (id, spec_name, spec_digest, spec_path, agent, status, version, nonce,"
        " output, created_at, updated_at) VALUES ('old', 'transfers', 'd', NULL, 'treasurer',"
        " 'suspended', 1, 'n1', NULL, ?, ?)",
        (T0, T0),
    )
    query(
        store_url,
        "INSERT INTO pending (run_id, path, call_id, tool, reason, created_at, agent, arguments,"
        " prompt, decisions, fingerprint, spec_name) VALUES ('old', 'treasurer/call_1',"
        " 'call_1', 'transfer', 'approval', ?, 'treasurer', ?, ?, ?, 'fp-1', 'transfers')",
        (T0, '{"amount":1899}', "Send?", '["approve"]'),
    )
    store = open_store(store_url)
    try:
        (kept,) = store.pending()
        assert kept == PendingRow(
            run_id="old",
            path="treasurer/call_1",
            call_id="call_1",
            tool="transfer",
            reason="approval",
            created_at=T0,
            agent="treasurer",
            arguments={"amount": 1899},
            prompt="Send?",
            decisions=("approve",),
            fingerprint="fp-1",
            spec_name="transfers",
        )
        assert kept.policy is None
        versions = query(store_url, "SELECT version FROM callcc_migrations ORDER BY version")
        applied = [v for (v,) in versions]
        assert 10 in applied and applied == list(range(1, len(MIGRATIONS) + 1))
    finally:
        store.close()


# -- the journal fills the rows ----------------------------------------------------------------


def test_a_suspended_run_keeps_each_pending_entry_as_the_continuation_shows_it(
    store_url: str,
) -> None:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    with Runtime(spec, store=store_url) as runtime:
        outcome = runtime.run("Onboard Ada Lovelace as an engineer", run_id="hr-1")
        assert isinstance(outcome, Suspended) and runtime.store is not None
        (shown,) = outcome.continuation.pending()
        (kept,) = runtime.store.pending()
        record = runtime.store.get_run("hr-1")
    assert kept == PendingRow(
        run_id="hr-1",
        path=shown.path,
        call_id=shown.id,
        tool=shown.tool,
        reason=shown.reason,
        created_at=kept.created_at,
        agent=shown.agent,
        arguments=shown.arguments,
        prompt=shown.prompt,
        detail=shown.detail,
        decisions=shown.decisions,
        fingerprint=shown.fingerprint,
        expires_at=shown.expires_at,
        approvers=shown.approvers,
        spec_name=spec.name,
    )
    assert (kept.agent, kept.tool, kept.arguments) == (
        "account_agent",
        "authorize_account",
        shown.arguments,
    )
    assert kept.arguments and kept.fingerprint and "approve" in kept.decisions
    assert record.updated_at >= kept.created_at >= record.created_at
    assert kept.policy is None  # every call of the tool asks: no condition made it wait


def test_a_call_a_condition_made_wait_keeps_why_on_its_pending_row(store_url: str) -> None:
    spec = load_spec(ROOT / "specs" / "transfers.yaml")
    with Runtime(spec, store=store_url) as runtime:
        outcome = runtime.run("Pay the rent and the laptop", run_id="pay-1")
        assert isinstance(outcome, Suspended) and runtime.store is not None
        (shown,) = outcome.continuation.pending()  # the rent (950 EUR) ran without asking
        (kept,) = runtime.store.pending()
    assert (kept.path, kept.tool, kept.arguments) == (shown.path, "transfer", shown.arguments)
    when = 'args.amount > 1000 || args.currency != "EUR"'  # specs/transfers.yaml's condition
    assert shown.policy == PolicyWhy(when=when, outcome="held")
    assert kept.policy == {"kind": "when", "when": when, "outcome": "held"}
