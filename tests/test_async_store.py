"""The async API on a store: many runs on one event loop, none of them blocking it.

`arun` / `aresume` await the store's async face (PostgreSQL: a pool of asyncio connections;
SQLite: the store's worker thread), so while one run's write waits for the database the event
loop drives every other run. On both backends: 200 runs advanced at once through an approval
all finish with every tool executed exactly once, and a write held up by a lock another
connection holds leaves the loop free.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import loop_tools
import pytest
from builders import agent, call, calls, gated, make_spec, python_tool, say, script
from store_fixtures import query

from engine import Finished, Runtime, Suspended
from engine.errors import ConflictError
from engine.runtime import Outcome
from engine.store import open_store

RUNS = 200

SPEC = make_spec(
    [agent("main", "fetch", "pay")],
    [python_tool("fetch"), gated("pay")],
    name="concurrent",
)
TURNS = {
    "main": [
        calls(
            call("f1", "fetch", {"key": "invoice"}), call("p1", "pay", {"to": "bob", "amount": 5})
        ),
        say("paid"),
    ]
}


async def approve_and_finish(runtime: Runtime, run_id: str) -> tuple[Outcome, Outcome]:
    """Run `run_id` until it waits for the approval of `pay`, approve it, resume it."""
    first = await runtime.arun("pay the invoice", run_id=run_id)
    assert isinstance(first, Suspended), first
    return first, await runtime.aresume(first.continuation.approve("p1"))


def test_200_runs_advanced_at_once_on_one_event_loop_all_finish_each_tool_run_once(
    store_url: str,
) -> None:
    loop_tools.SEEN.clear()
    loop_tools._CROWD.clear()
    # the first tool call waits until a second is under way: the runs must interleave
    loop_tools.ACTIVE.update(now=0, peak=0, hold_first_until=2)
    ids = [f"run-{n:03}" for n in range(RUNS)]

    async def everything() -> list[tuple[Outcome, Outcome]]:
        async with Runtime(SPEC, model_override=script(TURNS), store=store_url) as runtime:
            return list(await asyncio.gather(*(approve_and_finish(runtime, i) for i in ids)))

    try:
        outcomes = asyncio.run(everything())
    finally:
        loop_tools.ACTIVE["hold_first_until"] = 0

    assert [type(last) for _, last in outcomes] == [Finished] * RUNS
    assert {last.output for _, last in outcomes if isinstance(last, Finished)} == {"paid"}
    executed = Counter(loop_tools.SEEN)
    expected = {(tool, f"{i}:{c}") for i in ids for tool, c in (("fetch", "f1"), ("pay", "p1"))}
    assert set(executed) == expected
    assert set(executed.values()) == {1}  # every tool of every run ran exactly once
    assert loop_tools.ACTIVE["peak"] > 1  # the runs did interleave: tools of several at once
    store = open_store(store_url)
    try:
        runs = store.list_runs(limit=1_000)
        assert sorted(r.run_id for r in runs) == ids
        # the same writes for every run: start, the reply, fetch's result, the claim, the
        # decision, pay's result, the answer, and a settle after each drive
        assert {(r.status, r.output, r.version, r.lease_owner) for r in runs} == {
            ("finished", "paid", runs[0].version, None)
        }
        assert store.pending() == []
        for run_id in ids[:: RUNS // 10]:
            messages = [m.get("content") for m in runs_messages(store_url, run_id)]
            assert messages == ["pay the invoice", "", "fetch invoice", "pay bob:5", "paid"]
    finally:
        store.close()
    assert query(store_url, "SELECT COUNT(*) FROM consumed_nonces") == [(RUNS,)]


def runs_messages(store_url: str, run_id: str) -> list[dict[str, object]]:
    """The root frame's messages of a stored run, rebuilt from its events."""
    from engine.journal import rebuild

    store = open_store(store_url)
    try:
        run, events = store.snapshot(run_id)
        return list(rebuild(run, events).frames()[0][1].messages)
    finally:
        store.close()


@contextmanager
def write_lock_held(store_url: str) -> Iterator[None]:
    """Another connection holds what a new run's first write needs, until the block ends."""
    if store_url.startswith("sqlite:///"):
        db = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # the file's write lock
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()
        return
    import psycopg

    server, _, params = store_url.partition("?")
    schema = params.split("schema=", 1)[1].split("&", 1)[0]
    with psycopg.connect(server) as conn:
        conn.execute(f'LOCK TABLE "{schema}".runs IN SHARE ROW EXCLUSIVE MODE')  # no inserts
        try:
            yield
        finally:
            conn.rollback()


def test_a_write_waiting_for_a_lock_leaves_the_event_loop_free(store_url: str) -> None:
    """With the store's blocking methods on the loop, the first write would hold the loop
    until the lock went (or the busy timeout struck): nothing else could run meanwhile."""

    async def scenario() -> tuple[int, Outcome]:
        async with Runtime(SPEC, model_override=script(TURNS), store=store_url) as runtime:
            with write_lock_held(store_url):
                started = asyncio.create_task(runtime.arun("pay", run_id="held-up"))
                turns = 0
                while turns < 200 and not started.done():  # the loop keeps turning
                    await asyncio.sleep(0)
                    turns += 1
            return turns, await started

    turns, outcome = asyncio.run(scenario())
    assert turns == 200  # 200 turns of the loop while the run's first write waited
    assert isinstance(outcome, Suspended)  # and once the lock went, the run went on
    assert [p.id for p in outcome.continuation.pending()] == ["p1"]


def test_a_stored_run_is_loaded_and_resumed_through_the_async_face_alone(store_url: str) -> None:
    async def scenario() -> tuple[list[str], Outcome]:
        async with Runtime(SPEC, model_override=script(TURNS), store=store_url) as first:
            await first.arun("pay", run_id="later")
        async with Runtime(SPEC, model_override=script(TURNS), store=store_url) as second:
            waiting = await second.aload_run("later")
            done = await second.aresume(waiting.approve("p1"))
            with pytest.raises(ConflictError, match="is finished, not suspended"):
                await second.aload_run("later")
        return [p.id for p in waiting.pending()], done

    pending, done = asyncio.run(scenario())
    assert pending == ["p1"]
    assert isinstance(done, Finished) and done.output == "paid"


def test_a_turn_of_several_calls_is_kept_through_the_async_face_one_checkpoint_at_a_time(
    store_url: str,
) -> None:
    """The calls of one turn finish concurrently and each result is checkpointed the moment it
    exists: on the async face each append awaits the store, and two appends must not both go
    out at the version the first one moves on from (that raised a ConflictError naming
    'another process' and left the run running)."""
    loop_tools.SEEN.clear()
    spec = make_spec([agent("main", "fetch", "pay")], [python_tool("fetch"), gated("pay")])
    first = calls(
        call("f1", "fetch", {"key": "a"}),
        call("f2", "fetch", {"key": "b"}),
        call("p1", "pay", {"to": "bob", "amount": 5}),
        call("p2", "pay", {"to": "eve", "amount": 7}),
    )
    turns = {"main": [first, say("all done")]}

    async def go() -> tuple[Outcome, Outcome]:
        async with Runtime(spec, model_override=script(turns), store=store_url) as runtime:
            waiting = await runtime.arun("fetch and pay", run_id="fan")
            assert isinstance(waiting, Suspended), waiting
            return waiting, await runtime.aresume(waiting.continuation.approve_all())

    _, outcome = asyncio.run(go())
    assert isinstance(outcome, Finished) and outcome.output == "all done", outcome
    assert sorted(name for name, _ in loop_tools.SEEN) == ["fetch", "fetch", "pay", "pay"]
    assert query(store_url, "SELECT status FROM runs WHERE id = ?", ("fan",)) == [("finished",)]
