"""Long stored runs: a checkpoint costs the same at any length of history, and a suspended run
keeps a snapshot so loading it reads one document and the few events after it.

Both are checked by what the store holds, never by timing (speed is in bench/bench_scale.py):
the state a checkpoint writes from the ledger's changes alone is the frame's whole state; a
rebuild from the snapshot and the events after it is the document the run suspended with, and
the one a replay of every event gives; a store written before snapshots existed still loads.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

import loop_tools
import pytest
from builders import (
    agent,
    call,
    calls,
    gated,
    make_spec,
    python_tool,
    say,
    script,
    suspended,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_fixtures import drop_schema, query, require_postgres, undo_inbox_migration, with_schema

from engine import Continuation, Finished, Runtime, Suspended
from engine._codec import frame_state_data
from engine.errors import ConflictError
from engine.frames import Frame
from engine.journal import SNAPSHOT_EVENTS, Journal, rebuild, replay
from engine.spec.model import Limits
from engine.store import Event, RunRecord, RunStore, open_store
from engine.store._aio import Blocking
from engine.store.postgres import PostgresStore
from engine.store.sqlite import MIGRATIONS

LONG = SNAPSHOT_EVENTS  # turns: each writes at least one event, so a long run passes the mark


def long_spec(turns: int) -> Any:
    limits = Limits(max_turns=2 * turns + 5, max_tool_calls=2 * turns + 5)
    return make_spec(
        [agent("clerk", "echo", "transfer", limits=limits)],
        [python_tool("echo"), gated("transfer", "approve", "reject")],
    )


def long_turns(turns: int, *, first: int = 0, pays: str = "pay") -> list[dict[str, Any]]:
    """`turns` echo turns, then a transfer that waits for approval."""
    echoes = [calls(call(f"e{i}", "echo", {"text": f"t{i}"})) for i in range(first, first + turns)]
    return [*echoes, calls(call(pays, "transfer", {"to": "bob", "amount": 5}))]


def suspend_long(store: RunStore | str, run_id: str, turns: int = LONG) -> Continuation:
    spec = long_spec(turns)
    model = script({"clerk": [*long_turns(turns), say("paid")]})
    with Runtime(spec, model_override=model, store=store) as runtime:
        outcome = runtime.run("go", run_id=run_id)
    assert isinstance(outcome, Suspended)
    return outcome.continuation


def kinds(events: list[Event]) -> list[str]:
    return [event.kind for event in events]


# -- the snapshot ----------------------------------------------------------------------------


def test_a_long_run_keeps_a_snapshot_when_it_suspends_and_loads_from_it_alone(
    store: RunStore,
) -> None:
    waiting = suspend_long(store, "long")
    run, events = store.snapshot("long")
    assert kinds(events) == ["snapshot"]  # nothing was appended after it
    everything = store.events("long")
    assert len(everything) >= SNAPSHOT_EVENTS and "snapshot" not in kinds(everything)
    from_snapshot = rebuild(run, events)
    assert from_snapshot == rebuild(run, everything)
    assert from_snapshot.nonce == waiting.nonce
    assert from_snapshot == waiting


def test_a_short_run_keeps_no_snapshot(store: RunStore) -> None:
    waiting = suspend_long(store, "short", turns=2)
    run, events = store.snapshot("short")
    assert events == store.events("short")
    assert rebuild(run, events) == waiting


def test_the_events_after_a_snapshot_rebuild_the_document_the_run_waits_on(
    store: RunStore,
) -> None:
    suspend_long(store, "twice")
    spec = long_spec(LONG)
    turns = [*long_turns(LONG), *long_turns(3, first=LONG, pays="pay2"), say("paid twice")]
    with Runtime(spec, model_override=script({"clerk": turns}), store=store) as runtime:
        again = runtime.resume(runtime.load_run("twice").approve("pay"))
        assert isinstance(again, Suspended)
        run, events = store.snapshot("twice")
        assert kinds(events)[0] == "snapshot" and "snapshot" not in kinds(events)[1:]
        assert 0 < len(events) - 1 < SNAPSHOT_EVENTS  # the snapshot of the first suspension
        assert rebuild(run, events) == again.continuation == rebuild(run, store.events("twice"))
        final = runtime.resume(runtime.load_run("twice").approve("pay2"))
    assert isinstance(final, Finished) and final.output == "paid twice"
    run, events = store.snapshot("twice")
    assert rebuild(run, events).frames()[0][1].messages == final.messages
    assert rebuild(run, store.events("twice")).frames()[0][1].messages == final.messages


def test_a_snapshot_is_replaced_not_added_to(store: RunStore, store_url: str) -> None:
    suspend_long(store, "replaced")
    spec = long_spec(LONG)
    turns = [*long_turns(LONG), *long_turns(LONG, first=LONG, pays="pay2"), say("paid")]
    with Runtime(spec, model_override=script({"clerk": turns}), store=store) as runtime:
        again = runtime.resume(runtime.load_run("replaced").approve("pay"))
    assert isinstance(again, Suspended)
    rows = query(store_url, "SELECT run_id, seq FROM snapshots")
    assert [(run_id, seq) for run_id, seq in rows] == [("replaced", len(store.events("replaced")))]
    run, events = store.snapshot("replaced")
    assert kinds(events) == ["snapshot"] and rebuild(run, events) == again.continuation


# -- resuming through the snapshot -------------------------------------------------------------


def test_a_loaded_run_edited_on_its_way_back_changes_nothing_but_its_decisions(
    store: RunStore,
) -> None:
    suspend_long(store, "edited")
    spec = long_spec(LONG)
    with Runtime(
        spec, model_override=script({"clerk": [*long_turns(LONG), say("paid")]}), store=store
    ) as runtime:
        data = runtime.load_run("edited").approve("pay").to_dict()
        data["frames"][0]["messages"][0]["content"] = "pay Mallory instead"  # not a decision
        final = runtime.resume(Continuation.from_dict(data))
    assert isinstance(final, Finished)
    assert final.messages[0]["content"] == "go"  # the store's, not the edit


def test_a_run_loaded_before_another_process_resumed_it_is_refused_then(
    store_url: str,
) -> None:
    suspend_long(store_url, "raced")
    spec = long_spec(LONG)
    turns = [*long_turns(LONG), *long_turns(2, first=LONG, pays="pay2"), say("paid")]
    with (
        Runtime(spec, model_override=script({"clerk": turns}), store=store_url) as first,
        Runtime(spec, model_override=script({"clerk": turns}), store=store_url) as second,
    ):
        stale = first.load_run("raced").approve("pay")
        assert isinstance(second.resume(second.load_run("raced").approve("pay")), Suspended)
        with pytest.raises(ConflictError):
            first.resume(stale)
        final = first.resume(first.load_run("raced").approve("pay2"))
    assert isinstance(final, Finished) and final.output == "paid"


# -- stores from before snapshots ----------------------------------------------------------------


def test_a_store_written_before_snapshots_loads_its_runs_and_keeps_snapshots_from_then_on(
    store_url: str,
) -> None:
    waiting = suspend_long(store_url, "old")
    # As the callcc before snapshots left it: the same events, no snapshots table, one
    # migration fewer.
    undo_inbox_migration(store_url)  # migration 8 came after snapshots (7)
    query(store_url, "DROP TABLE snapshots")
    query(store_url, "DELETE FROM callcc_migrations WHERE version = 7")
    spec = long_spec(LONG)
    turns = [*long_turns(LONG), *long_turns(LONG, first=LONG, pays="pay2"), say("paid")]
    with Runtime(spec, model_override=script({"clerk": turns}), store=store_url) as runtime:
        store = runtime.store
        assert store is not None
        run, events = store.snapshot("old")
        assert "snapshot" not in kinds(events)
        loaded = runtime.load_run("old")
        assert loaded == waiting
        again = runtime.resume(loaded.approve("pay"))
        assert isinstance(again, Suspended)
        run, events = store.snapshot("old")
        assert kinds(events) == ["snapshot"] and rebuild(run, events) == again.continuation
    versions = query(store_url, "SELECT version FROM callcc_migrations ORDER BY version")
    assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))


def new_record(run_id: str) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        spec_name="hr",
        spec_digest="sha256:aaa",
        spec_path=None,
        agent="hr_agent",
        status="running",
        version=0,
        nonce=None,
        output=None,
        created_at=0.0,
        updated_at=0.0,
    )


def started(store: RunStore, run_id: str) -> None:
    store.create_run(new_record(run_id))


def message(text: str) -> Event:
    return Event(frame="", kind="messages", data={"messages": [{"role": "user", "content": text}]})


# -- checkpoints read only what changed --------------------------------------------------------

STATUSES = ("running", "done", "failed", "rejected", "pending")
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("turn"), st.integers(1, 3)),
        st.tuples(st.just("status"), st.integers(0, 2), st.sampled_from(STATUSES)),
        st.tuples(st.just("close"), st.just(0)),
    ),
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_a_checkpoint_writes_the_whole_state_though_it_reads_only_what_changed(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[Any, ...]]
) -> None:
    """Turns open and close, calls of the current turn change status in any order; after
    every checkpoint the replayed state is the frame's whole state."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'runs.db'}"
    store = open_store(url)
    try:
        started(store, "ledger")
        frame = Frame(agent="clerk", messages=[{"role": "user", "content": "go"}])
        journal = Journal(store=Blocking(store), run_id="ledger", version=0)
        serial = 0
        for step in steps:
            calls_now = frame.in_flight()
            if step[0] == "turn" and not calls_now:
                ids = [f"c{serial + i}" for i in range(step[1])]
                serial += step[1]
                tool_calls = [
                    {"id": i, "type": "function", "function": {"name": "echo", "arguments": "{}"}}
                    for i in ids
                ]
                frame.messages.append(
                    {"role": "assistant", "content": "", "tool_calls": tool_calls}
                )
                frame.ledger.update(dict.fromkeys(ids, "running"))
            elif step[0] == "status" and calls_now:
                frame.ledger[calls_now[step[1] % len(calls_now)]["id"]] = step[2]
            elif step[0] == "close" and calls_now:
                for c in calls_now:
                    frame.messages.append(
                        {"role": "tool", "tool_call_id": c["id"], "content": "ok"}
                    )
                    if frame.ledger[c["id"]] in ("running", "pending"):
                        frame.ledger[c["id"]] = "done"
            asyncio.run(journal.checkpoint(frame))
            assert replay(store.events("ledger"))[""]["state"] == frame_state_data(frame)
    finally:
        store.close()


def test_a_deleted_run_takes_its_snapshot_with_it(store: RunStore, store_url: str) -> None:
    suspend_long(store, "gone")
    suspend_long(store, "kept")
    assert store.delete("gone")
    assert [run_id for (run_id,) in query(store_url, "SELECT run_id FROM snapshots")] == ["kept"]


# -- PostgreSQL: a checkpoint rewrites no index --------------------------------------------------


def test_a_postgres_append_moves_updated_at_only_once_it_is_a_second_old() -> None:
    """So the row's update touches no indexed column and stays HOT (see engine.store.postgres);
    the write is still found to have landed after a lost connection, by its own events."""
    server = require_postgres()
    schema = f"callcc_test_{uuid.uuid4().hex[:16]}"
    store = open_store(with_schema(server, schema))
    assert isinstance(store, PostgresStore)
    try:
        ahead = time.time() + 3600  # fresher than any clock here: an append keeps it
        store.create_run(replace(new_record("fresh"), created_at=ahead, updated_at=ahead))
        store.create_run(new_record("stale"))  # updated at 0: an append moves it
        event = message("a")
        op = store._op_append("fresh", 0, [event], lease=None)
        assert op.landed is not None
        assert store._once(op.landed) is None  # not written yet: a retry writes it
        assert store._run(op) == 1
        assert store._once(op.landed) == 1  # written: a retry after a lost connection stops
        assert store.get_run("fresh").updated_at == ahead
        assert store.append("stale", 0, [event]) == 1
        assert store.get_run("stale").updated_at > time.time() - 60
        store.append("fresh", 1, [message("b")])
        assert store._once(op.landed) is None  # another write came after it
    finally:
        store.close()
        drop_schema(server, schema)


def test_changing_what_load_run_returned_changes_nothing_the_resume_runs(
    tmp_path: Any,
) -> None:
    spec = make_spec([agent("main", "transfer")], [gated("transfer")], name="kept_apart")
    turns = {"main": [calls(call("t1", "transfer", {"to": "bob", "amount": 5})), say("done")]}
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with Runtime(spec, model_override=script(turns), store=url, secret_key="k" * 32) as runtime:
        text = suspended(runtime.run("pay bob 5", run_id="r1")).to_json()
        shown = runtime.load_run("r1")  # the stack it keeps for the claim comes from this
        view, entry = shown.find("t1")
        view.arguments["amount"] = 5000  # type: ignore[index]
        assert entry.arguments is not None
        entry.arguments["amount"] = 6000
        for p in shown.pending():
            p.arguments["amount"] = 7000  # type: ignore[index]
        runtime.resume(runtime.load(text).approve("t1"))  # approves amount=5, as signed
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]
