"""The RunStore contract, run against every backend (SQLite file, PostgreSQL schema) and both
faces of each (the blocking methods and the async face, `store.aio`).

Every test takes the `store` / `store_url` fixtures from `store_fixtures.py`, parametrized over
both backends (`store` here is `faced_store`: over both faces too); PostgreSQL skips without a
server on a user's machine and fails under CI=true.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_fixtures import (
    claim_in_process,
    drop_schema,
    open_in_process,
    query,
    race,
    require_postgres,
    with_schema,
)

from engine.errors import ConflictError, UsageError
from engine.store import Event, Lease, PendingRow, RunRecord, RunStore, SpecRow, open_store
from engine.store._sql import mask_url
from engine.store.sqlite import MIGRATIONS

SCHEMA_VERSIONS = list(range(1, len(MIGRATIONS) + 1))
"""Every migration this callcc knows (both backends number theirs alike)."""

T0 = 1_700_000_000.0


@pytest.fixture
def store(faced_store: RunStore) -> RunStore:
    """Each backend through each face."""
    return faced_store


def new_run(run_id: str = "run-1", *, at: float = T0, **changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "spec_name": "hr",
        "spec_digest": "sha256:aaa",
        "spec_path": "specs/hr_agent.yaml",
        "agent": "hr_agent",
        "status": "running",
        "version": 0,
        "nonce": None,
        "output": None,
        "created_at": at,
        "updated_at": at,
    }
    fields.update(changes)
    return RunRecord(**fields)


def pending_row(run_id: str, call_id: str, at: float, reason: str = "approval") -> PendingRow:
    return PendingRow(
        run_id=run_id,
        path=f"hr_agent/{call_id}",
        call_id=call_id,
        tool="authorize_account" if reason == "approval" else None,
        reason=reason,
        created_at=at,
        spec_name="hr",  # the store fills it from the run
    )


def suspended(store: RunStore, run_id: str, nonce: str, *, at: float = T0) -> int:
    """A run created and suspended on `nonce` with one approval pending; its version."""
    store.create_run(new_run(run_id, at=at))
    return store.settle(
        run_id,
        0,
        status="suspended",
        nonce=nonce,
        output=None,
        pending=[pending_row(run_id, "call_1", at)],
    )


def messages(start: int, *texts: str) -> Event:
    return Event(
        frame="",
        kind="messages",
        data={"start": start, "messages": [{"role": "user", "content": t} for t in texts]},
    )


# -- create, get, unknown ids ------------------------------------------------------------------


def test_create_then_get_returns_the_run_running_at_version_0(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    assert store.get_run("run-1") == new_run("run-1")
    assert store.events("run-1") == []


def test_create_with_a_taken_id_is_a_conflict(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    with pytest.raises(ConflictError, match="run 'run-1' already exists") as caught:
        store.create_run(new_run("run-1", spec_name="other"))
    assert caught.value.run_id == "run-1"
    assert store.get_run("run-1").spec_name == "hr"


def test_create_refuses_a_record_that_is_not_running_at_version_0(store: RunStore) -> None:
    with pytest.raises(UsageError, match="running at version 0"):
        store.create_run(new_run("run-1", status="suspended"))
    with pytest.raises(UsageError, match="running at version 0"):
        store.create_run(new_run("run-2", version=3))


def test_an_unknown_run_is_a_usage_error_naming_the_id_and_the_store(store: RunStore) -> None:
    calls = {
        "get_run": lambda: store.get_run("nope"),
        "append": lambda: store.append("nope", 0, [messages(0, "hi")]),
        "settle": lambda: store.settle(
            "nope", 0, status="finished", nonce=None, output="x", pending=[]
        ),
        "claim": lambda: store.claim("nope", "n"),
        "take_over": lambda: store.take_over("nope", 0),
    }
    for name, call in calls.items():
        with pytest.raises(UsageError) as caught:
            call()
        assert not isinstance(caught.value, ConflictError), name
        assert str(caught.value).startswith(f"no run 'nope' in {store.url}"), name
    assert store.events("nope") == []


# -- append ------------------------------------------------------------------------------------


def test_append_bumps_the_version_and_refuses_a_stale_one(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    assert store.append("run-1", 0, [messages(0, "a")]) == 1
    assert store.append("run-1", 1, [messages(1, "b"), messages(2, "c")]) == 2
    assert store.append("run-1", 2, []) == 3
    with pytest.raises(ConflictError) as caught:
        store.append("run-1", 1, [messages(3, "lost")])
    assert caught.value.run_id == "run-1"
    assert str(caught.value) == (
        "another process changed run 'run-1': it is at version 3, this process expected"
        " version 1 (a second resume or a recovery took the run over); reload the run before"
        " going on"
    )
    assert store.get_run("run-1").version == 3
    assert store.events("run-1") == [messages(0, "a"), messages(1, "b"), messages(2, "c")]


def test_append_moves_updated_at_but_not_created_at(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    store.append("run-1", 0, [messages(0, "a")])
    run = store.get_run("run-1")
    assert run.created_at == T0
    assert run.updated_at > T0


def test_events_round_trip_unicode_big_payloads_key_order_and_frames(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    store.create_run(new_run("run-2"))
    big = "x" * 3_000_000
    odd = 'naïve café — 日本語 🦜 \u0000 \u2028 "quotes" \\ back\nslash\ttab'
    events = [
        messages(0, odd, big),
        Event(
            frame="/call_1/call_7",
            kind="state",
            data={"z": 1, "a": [1.5, -0.0, 10**18, None, True], "m": {"b": {}, "a": []}},
        ),
        Event(frame="/call_1", kind="messages", data={"start": 4, "messages": []}),
    ]
    version = store.append("run-1", 0, events[:1])
    store.append("run-2", 0, [messages(0, "other run")])
    store.append("run-1", version, events[1:])
    back = store.events("run-1")
    assert back == events
    assert list(back[1].data) == ["z", "a", "m"]  # key order is kept
    assert list(back[1].data["m"]) == ["b", "a"]
    assert store.events("run-2") == [messages(0, "other run")]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
events_strategy = st.lists(
    st.builds(
        Event,
        frame=st.sampled_from(["", "/call_1", "/call_1/call_2"]),
        kind=st.sampled_from(["messages", "state"]),
        data=st.dictionaries(st.text(), json_values, max_size=4),
    ),
    max_size=5,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(events_strategy, min_size=1, max_size=3))
def test_any_json_events_come_back_equal_and_in_order(
    store: RunStore, batches: list[list[Event]]
) -> None:
    run_id = f"run-{len(store.list_runs(limit=1_000))}"
    store.create_run(new_run(run_id))
    version = 0
    for batch in batches:
        version = store.append(run_id, version, batch)
    assert store.events(run_id) == [e for batch in batches for e in batch]


# -- settle and pending ------------------------------------------------------------------------


def test_settle_records_the_outcome_and_lists_pending_oldest_first_across_runs(
    store: RunStore,
) -> None:
    for n, at in ((1, T0 + 30), (2, T0 + 10), (3, T0 + 20)):
        store.create_run(new_run(f"run-{n}", at=at))
    store.settle(
        "run-1",
        0,
        status="suspended",
        nonce="n1",
        output=None,
        pending=[pending_row("run-1", "call_9", T0 + 30), pending_row("run-1", "call_2", T0 + 5)],
        spec_digest="sha256:bbb",
    )
    store.settle(
        "run-2",
        0,
        status="suspended",
        nonce="n2",
        output=None,
        pending=[pending_row("run-2", "turns", T0 + 10, reason="turn_limit")],
    )
    store.settle("run-3", 0, status="finished", nonce=None, output="done", pending=[])
    assert [(p.run_id, p.call_id) for p in store.pending()] == [
        ("run-1", "call_2"),
        ("run-2", "turns"),
        ("run-1", "call_9"),
    ]
    assert store.pending(limit=1) == [pending_row("run-1", "call_2", T0 + 5)]
    assert store.pending()[1] == pending_row("run-2", "turns", T0 + 10, reason="turn_limit")
    one = store.get_run("run-1")
    assert (one.status, one.nonce, one.output, one.version) == ("suspended", "n1", None, 1)
    assert one.spec_digest == "sha256:bbb"
    three = store.get_run("run-3")
    assert (three.status, three.nonce, three.output) == ("finished", None, "done")
    assert three.spec_digest == "sha256:aaa"  # no digest given: kept


def test_settle_keeps_token_totals_and_the_trace_context_until_the_next_settle(
    store: RunStore,
) -> None:
    store.create_run(new_run("run-1"))
    fresh = store.get_run("run-1")
    assert (fresh.input_tokens, fresh.output_tokens, fresh.trace) == (0, 0, None)
    trace = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "k=v"}
    version = store.settle(
        "run-1", 0, status="suspended", nonce="n1", output=None, pending=[],
        usage=(1200, 34), trace=trace,
    )  # fmt: skip
    kept = store.get_run("run-1")
    assert (kept.input_tokens, kept.output_tokens, kept.trace) == (1200, 34, trace)
    assert store.list_runs()[0] == kept
    store.settle("run-1", version, status="finished", nonce=None, output="ok", pending=[])
    done = store.get_run("run-1")
    assert (done.input_tokens, done.output_tokens) == (1200, 34)  # no usage given: kept
    assert done.trace is None  # a drive without tracing leaves no context to link to


def test_settle_replaces_pending_rows_and_refuses_a_stale_version(store: RunStore) -> None:
    version = suspended(store, "run-1", "n1")
    with pytest.raises(ConflictError, match="at version 1, this process expected version 0"):
        store.settle("run-1", 0, status="failed", nonce=None, output="boom", pending=[])
    version = store.settle(
        "run-1",
        version,
        status="suspended",
        nonce="n2",
        output=None,
        pending=[pending_row("run-1", "call_5", T0 + 1)],
    )
    assert version == 2
    assert [p.call_id for p in store.pending()] == ["call_5"]
    store.settle("run-1", version, status="failed", nonce=None, output="boom", pending=[])
    assert store.pending() == []
    assert store.get_run("run-1").output == "boom"


def test_pending_lists_only_suspended_runs(store: RunStore) -> None:
    suspended(store, "run-1", "n1")
    store.create_run(new_run("run-2"))
    store.settle(
        "run-2",
        0,
        status="running",
        nonce=None,
        output=None,
        pending=[pending_row("run-2", "call_1", T0)],
    )
    assert [p.run_id for p in store.pending()] == ["run-1"]
    store.claim("run-1", "n1")
    assert store.pending() == []


def test_settle_refuses_pending_rows_of_another_run_and_unknown_statuses(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    with pytest.raises(UsageError, match="names run 'run-2', not 'run-1'"):
        store.settle(
            "run-1",
            0,
            status="suspended",
            nonce="n",
            output=None,
            pending=[pending_row("run-2", "call_1", T0)],
        )
    with pytest.raises(UsageError, match="unknown run status 'paused'"):
        store.settle("run-1", 0, status="paused", nonce=None, output=None, pending=[])  # type: ignore[arg-type]
    assert store.get_run("run-1").version == 0


# -- claim and take over -----------------------------------------------------------------------


def test_claim_succeeds_once_per_nonce(store: RunStore, store_url: str) -> None:
    version = suspended(store, "run-1", "n1")
    assert store.claim("run-1", "n1") == version + 1
    run = store.get_run("run-1")
    assert (run.status, run.version) == ("running", version + 1)
    with pytest.raises(ConflictError, match="already resumed") as caught:
        store.claim("run-1", "n1")
    assert caught.value.run_id == "run-1"
    assert query(store_url, "SELECT nonce, run_id FROM consumed_nonces") == [("n1", "run-1")]
    assert store.get_run("run-1").version == version + 1


def test_a_consumed_nonce_stays_refused_after_the_run_suspends_again(store: RunStore) -> None:
    suspended(store, "run-1", "n1")
    version = store.claim("run-1", "n1")
    version = store.settle(
        "run-1", version, status="suspended", nonce="n2", output=None, pending=[]
    )
    with pytest.raises(ConflictError, match=r"already resumed \(its nonce is consumed\)"):
        store.claim("run-1", "n1")
    assert store.claim("run-1", "n2") == version + 1


@pytest.mark.parametrize(
    ("status", "nonce", "claimed", "reason"),
    [
        ("suspended", "n1", "other", "the run waits on another continuation"),
        ("finished", None, "n1", "the run has finished"),
        ("failed", None, "n1", "the run has failed"),
        ("running", None, "n1", "the run is running"),
    ],
)
def test_claim_says_why_it_is_refused(
    store: RunStore, status: Any, nonce: str | None, claimed: str, reason: str
) -> None:
    store.create_run(new_run("run-1"))
    store.settle("run-1", 0, status=status, nonce=nonce, output=None, pending=[])
    with pytest.raises(ConflictError, match=f"cannot resume run 'run-1': {reason}"):
        store.claim("run-1", claimed)
    assert store.get_run("run-1").version == 1


def test_claim_from_8_processes_at_once_has_exactly_one_winner(
    store: RunStore, store_url: str
) -> None:
    version = suspended(store, "run-1", "n1")
    outcomes = race("spawn", claim_in_process, store_url, "run-1", "n1")
    assert sorted(kind for kind, _ in outcomes) == ["conflict"] * 7 + ["won"], outcomes
    assert [v for kind, v in outcomes if kind == "won"] == [version + 1]
    for kind, message in outcomes:
        if kind == "conflict":
            assert message.startswith("cannot resume run 'run-1': "), message
    run = store.get_run("run-1")
    assert (run.status, run.version) == ("running", version + 1)
    assert query(store_url, "SELECT nonce, run_id FROM consumed_nonces") == [("n1", "run-1")]


def test_take_over_bumps_a_running_run_so_its_old_driver_fails(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    driver = store.append("run-1", 0, [messages(0, "a")])
    assert store.take_over("run-1", driver) == driver + 1
    with pytest.raises(ConflictError, match="another process changed run 'run-1'"):
        store.append("run-1", driver, [messages(1, "from the old process")])
    with pytest.raises(ConflictError, match="at version 2, this process expected version 1"):
        store.take_over("run-1", driver)
    assert store.events("run-1") == [messages(0, "a")]


def test_take_over_refuses_a_run_that_is_not_running(store: RunStore) -> None:
    version = suspended(store, "run-1", "n1")
    with pytest.raises(ConflictError, match=r"is suspended, not running.*resume it instead"):
        store.take_over("run-1", version)
    version = store.claim("run-1", "n1")
    version = store.settle("run-1", version, status="finished", nonce=None, output="ok", pending=[])
    with pytest.raises(ConflictError, match="is finished, not running"):
        store.take_over("run-1", version)


# -- snapshots ---------------------------------------------------------------------------------


def snapshot_of(*texts: str) -> Event:
    """A `snapshot` event of a root frame holding `texts` as user messages."""
    frame = {
        "messages": [{"role": "user", "content": t} for t in texts],
        "state": {"agent": "hr_agent", "counters": {}, "ledger": {}},
    }
    return Event(frame="", kind="snapshot", data={"frames": {"": frame}})


def test_settle_keeps_a_snapshot_and_snapshot_returns_it_then_the_later_events(
    store: RunStore,
) -> None:
    store.create_run(new_run("run-1"))
    version = store.append("run-1", 0, [messages(0, "a"), messages(1, "b")])
    version = store.settle(
        "run-1", version, status="suspended", nonce="n1", output=None, pending=[],
        snapshot=snapshot_of("a", "b"),
    )  # fmt: skip
    version = store.claim("run-1", "n1")
    version = store.append("run-1", version, [messages(2, "c")])
    run, events = store.snapshot("run-1")
    assert run.version == version
    assert events == [snapshot_of("a", "b"), messages(2, "c")]
    assert store.events("run-1") == [messages(0, "a"), messages(1, "b"), messages(2, "c")]
    store.settle(
        "run-1", version, status="suspended", nonce="n2", output=None, pending=[],
        snapshot=snapshot_of("a", "b", "c"),
    )  # fmt: skip
    assert store.snapshot("run-1")[1] == [snapshot_of("a", "b", "c")]  # replaced, not added


def test_a_settle_refused_for_its_version_keeps_no_snapshot(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    store.append("run-1", 0, [messages(0, "a")])
    with pytest.raises(ConflictError):
        store.settle(
            "run-1", 0, status="suspended", nonce="n1", output=None, pending=[],
            snapshot=snapshot_of("a"),
        )  # fmt: skip
    assert store.snapshot("run-1")[1] == [messages(0, "a")]


def test_settle_keeps_only_a_snapshot_event_of_the_root_frame(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    with pytest.raises(UsageError, match="snapshot event of the root frame"):
        store.settle(
            "run-1", 0, status="suspended", nonce="n1", output=None, pending=[],
            snapshot=messages(0, "a"),
        )  # fmt: skip
    assert store.get_run("run-1").version == 0


# -- listing -----------------------------------------------------------------------------------


def test_list_runs_newest_first_with_status_filter_and_limit(store: RunStore) -> None:
    for n in range(5):
        store.create_run(new_run(f"run-{n}", at=T0 + n))
    assert [r.run_id for r in store.list_runs()] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["run-4", "run-3"]
    store.settle("run-1", 0, status="suspended", nonce="a", output=None, pending=[])
    store.settle("run-3", 0, status="finished", nonce=None, output="ok", pending=[])
    assert [r.run_id for r in store.list_runs(status="suspended")] == ["run-1"]
    assert [r.run_id for r in store.list_runs(status="finished")] == ["run-3"]
    assert store.list_runs(status="failed") == []
    assert [r.run_id for r in store.list_runs(status="running")] == ["run-4", "run-2", "run-0"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["run-3", "run-1"]  # just updated
    with pytest.raises(UsageError, match="unknown run status"):
        store.list_runs(status="waiting")  # type: ignore[arg-type]


# -- migrations, URLs --------------------------------------------------------------------------


def test_migrations_are_recorded_once_and_opening_again_is_a_no_op(
    store: RunStore, store_url: str
) -> None:
    store.create_run(new_run("run-1"))
    first = query(store_url, "SELECT version, applied_at FROM callcc_migrations")
    assert [version for version, _ in first] == SCHEMA_VERSIONS
    again = open_store(store_url)
    again.close()
    assert query(store_url, "SELECT version, applied_at FROM callcc_migrations") == first
    assert store.get_run("run-1").run_id == "run-1"


def test_a_store_from_a_newer_callcc_is_refused(store: RunStore, store_url: str) -> None:
    query(store_url, "INSERT INTO callcc_migrations (version, applied_at) VALUES (99, 0)")
    with pytest.raises(UsageError, match="has schema version 99, this callcc knows versions up"):
        open_store(store_url)


def test_8_processes_opening_a_new_store_at_once_migrate_it_once(store_url: str) -> None:
    outcomes = race("spawn", open_in_process, store_url)
    assert [kind for kind, _ in outcomes] == ["ok"] * 8, outcomes
    versions = query(store_url, "SELECT version FROM callcc_migrations ORDER BY version")
    assert [v for (v,) in versions] == SCHEMA_VERSIONS


def test_the_url_never_shows_a_password(store_url: str) -> None:
    if store_url.startswith("sqlite:"):
        opened = open_store(store_url)
        assert opened.url == store_url
        opened.close()
        return
    server, _, schema_param = store_url.partition("?")
    user, _, host = server.removeprefix("postgresql://").partition("@")
    secret_url = f"postgresql://{user}:s3cret@{host}?{schema_param}"
    opened = open_store(secret_url)  # trust auth ignores the password
    try:
        assert opened.url == f"postgresql://{user}:***@{host}?{schema_param}"
        assert "s3cret" not in repr(opened)
    finally:
        opened.close()
    with pytest.raises(UsageError) as caught:
        open_store("postgresql://someone:s3cret@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "s3cret" not in str(caught.value)
    assert "postgresql://someone:***@127.0.0.1:1/nowhere" in str(caught.value)


def test_mask_url_hides_passwords_in_user_info_and_query() -> None:
    assert mask_url("postgresql://u:p%40ss@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert mask_url("postgresql://db/x?password=hunter2&sslmode=require") == (
        "postgresql://db/x?password=***&sslmode=require"
    )
    assert mask_url("postgresql://u@db/x") == "postgresql://u@db/x"
    assert mask_url("sqlite:////tmp/runs.db") == "sqlite:////tmp/runs.db"


def test_sqlite_creates_parent_folders_and_uses_wal(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'runs.db'}"
    opened = open_store(url)
    opened.close()
    assert query(url, "PRAGMA journal_mode") == [("wal",)]


def test_postgres_schema_parameter_isolates_stores() -> None:
    server = require_postgres()
    names = ["callcc_test_iso_a", "callcc_test_iso_b"]
    stores = [open_store(with_schema(server, name)) for name in names]
    try:
        stores[0].create_run(new_run("run-1"))
        assert stores[1].list_runs() == []
        with pytest.raises(UsageError, match="no run 'run-1'"):
            stores[1].get_run("run-1")
    finally:
        for opened, name in zip(stores, names, strict=True):
            opened.close()
            drop_schema(server, name)


# -- retention -----------------------------------------------------------------------------------


def test_delete_removes_a_run_and_every_row_of_it_and_nothing_else(
    store: RunStore, store_url: str
) -> None:
    suspended(store, "run-1", "n1")
    version = store.claim("run-1", "n1")
    version = store.append("run-1", version, [messages(0, "a")])
    store.settle(
        "run-1",
        version,
        status="suspended",
        nonce="n2",
        output=None,
        pending=[pending_row("run-1", "call_2", T0)],
    )
    suspended(store, "run-2", "m1")
    store.append("run-2", 1, [messages(0, "b")])
    assert store.delete("run-1") is True
    with pytest.raises(UsageError, match="no run 'run-1'"):
        store.get_run("run-1")
    assert store.events("run-1") == []
    assert [p.run_id for p in store.pending()] == ["run-2"]
    assert query(store_url, "SELECT run_id FROM consumed_nonces") == []
    assert store.events("run-2") == [messages(0, "b")]
    assert store.delete("run-1") is False  # nothing left to delete
    with pytest.raises(UsageError, match="no run 'run-1'"):  # its continuation resumes nothing
        store.claim("run-1", "n2")


def aged(store: RunStore, store_url: str, run_id: str, status: Any, age: float) -> None:
    """A run of `status` last updated `age` seconds ago, with one event."""
    store.create_run(new_run(run_id))
    version = store.append(run_id, 0, [messages(0, run_id)])
    nonce = f"n-{run_id}" if status == "suspended" else None
    store.settle(run_id, version, status=status, nonce=nonce, output=None, pending=[])
    query(store_url, "UPDATE runs SET updated_at = ? WHERE id = ?", (time.time() - age, run_id))


def test_prune_deletes_old_runs_of_the_statuses_named_oldest_first_and_keeps_the_rest(
    store: RunStore, store_url: str
) -> None:
    day = 86_400.0
    for run_id, status, age in (
        ("old-finished", "finished", 40 * day),
        ("old-failed", "failed", 35 * day),
        ("old-stopped", "stopped", 50 * day),
        ("old-suspended", "suspended", 60 * day),
        ("old-running", "running", 60 * day),
        ("new-finished", "finished", 1 * day),
    ):
        aged(store, store_url, run_id, status, age)
    spec = SpecRow(digest="sha256:aaa", name="hr", path="/x.yaml", text="t", instructions={},
                   created_at=T0)  # fmt: skip
    store.put_spec(spec)
    everything = sorted(r.run_id for r in store.list_runs())

    dry = store.prune(status=["finished", "failed"], older_than=30 * day, dry_run=True)
    assert dry == ["old-finished", "old-failed"]  # least recently updated first
    assert sorted(r.run_id for r in store.list_runs()) == everything
    assert store.prune(status=["finished", "failed"], older_than=30 * day) == dry
    assert sorted(r.run_id for r in store.list_runs()) == [
        "new-finished", "old-running", "old-stopped", "old-suspended"
    ]  # fmt: skip
    assert store.events("old-finished") == []
    assert store.events("new-finished") == [messages(0, "new-finished")]
    assert store.prune(status="finished", older_than=30 * day) == []
    assert store.get_spec("sha256:aaa") == spec  # kept specs stay

    for guarded in ("suspended", "running"):
        with pytest.raises(UsageError, match=f"a {guarded} run may still go on"):
            store.prune(status=["stopped", guarded], older_than=0)  # type: ignore[list-item]
    assert store.get_run("old-stopped").status == "stopped"  # the refusal deleted nothing
    pruned = store.prune(status=["suspended", "running"], older_than=30 * day,
                         include_suspended=True)  # fmt: skip
    assert sorted(pruned) == ["old-running", "old-suspended"]
    with pytest.raises(UsageError, match="unknown run status 'old'"):
        store.prune(status="old", older_than=0)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="at least one status"):
        store.prune(status=[], older_than=0)


def test_prune_keeps_a_failed_run_that_can_be_resumed_unless_include_suspended(
    store: RunStore, store_url: str
) -> None:
    day = 86_400.0
    aged(store, store_url, "failed-for-good", "failed", 40 * day)
    store.create_run(new_run("failed-resumable"))
    version = store.append("failed-resumable", 0, [messages(0, "x")])
    store.settle("failed-resumable", version, status="failed", nonce="n-retry",
                 output="model down", pending=[])  # fmt: skip
    query(store_url, "UPDATE runs SET updated_at = ? WHERE id = ?",
          (time.time() - 50 * day, "failed-resumable"))  # fmt: skip

    assert store.prune(status="failed", older_than=30 * day, dry_run=True) == ["failed-for-good"]
    assert store.prune(status="failed", older_than=30 * day) == ["failed-for-good"]
    assert store.events("failed-resumable") == [messages(0, "x")]
    assert store.prune(status="failed", older_than=30 * day) == []
    assert store.prune(status="failed", older_than=30 * day, include_suspended=True,
                       dry_run=True) == ["failed-resumable"]  # fmt: skip
    assert store.get_run("failed-resumable").status == "failed"  # the dry run kept it
    assert store.prune(status="failed", older_than=30 * day,
                       include_suspended=True) == ["failed-resumable"]  # fmt: skip
    assert store.list_runs() == []
    assert store.events("failed-resumable") == []


def test_prune_never_takes_a_running_run_whose_lease_is_live(
    store: RunStore, store_url: str
) -> None:
    """A heartbeat renews the lease, not `updated_at`: a tool running longer than the age
    makes a driven run look old, and pruning it would delete what its process is writing."""
    day = 86_400.0
    lease = Lease(owner="host:1:live", seconds=3_600)
    store.start_run(new_run("driven"), [messages(0, "driven")], lease=lease)
    aged(store, store_url, "abandoned", "running", 40 * day)  # no lease: its process is gone
    query(store_url, "UPDATE runs SET updated_at = ? WHERE id = ?",
          (time.time() - 40 * day, "driven"))  # fmt: skip
    pruned = store.prune(status="running", older_than=30 * day, include_suspended=True)
    assert pruned == ["abandoned"]
    assert store.get_run("driven").lease_owner == "host:1:live"
    assert store.events("driven") == [messages(0, "driven")]


def test_a_postgres_url_option_with_a_blank_reaches_libpq_as_written() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from engine.store.postgres import split_url

    url = "postgresql://postgres@127.0.0.1:5432/test?options=-c%20statement_timeout%3D4321&schema=s"
    libpq_url, schema = split_url(url)
    assert schema == "s"
    assert conninfo_to_dict(libpq_url)["options"] == "-c statement_timeout=4321"  # was "-c+..."
