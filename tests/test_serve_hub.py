"""`EventHub`: every subscriber gets the events it asked for, in order; a slow one is dropped
rather than waited for; closing the hub ends every subscription."""

from __future__ import annotations

import asyncio

from engine.events import RunFinished, RunStarted
from engine.serve.hub import QUEUE_SIZE, EventHub


def _started(run_id: str) -> RunStarted:
    return RunStarted(run_id=run_id, path="a", agent="a", prompt="p")


def test_subscribers_get_their_runs_events_in_order_and_a_slow_one_is_dropped() -> None:
    async def scenario() -> None:
        hub = EventHub()
        hub.start()
        every, one, slow = hub.subscribe(), hub.subscribe("r1"), hub.subscribe()
        hub.publish(_started("r1"))
        hub.publish(_started("r2"))
        hub.publish(RunFinished(run_id="r1", path="a", output="done"))
        assert [(e.kind, e.run_id) for e in [await anext(every) for _ in range(3)]] == [
            ("run_started", "r1"), ("run_started", "r2"), ("run_finished", "r1")
        ]  # fmt: skip
        assert [e.kind for e in [await anext(one), await anext(one)]] == [
            "run_started", "run_finished"
        ]  # fmt: skip
        for _ in range(QUEUE_SIZE):  # `slow` holds 3 already: it falls behind and is dropped
            hub.publish(_started("r3"))
        assert len(hub) == 2
        received = [e async for e in slow]
        assert len(received) == QUEUE_SIZE  # what it had queued, then its iteration ends
        hub.close()
        assert [e async for e in one] == [] and len(hub) == 0

    asyncio.run(scenario())


def test_events_published_from_another_thread_reach_the_loop() -> None:
    async def scenario() -> None:
        hub = EventHub()
        hub.start()
        subscription = hub.subscribe("r1")
        await asyncio.to_thread(hub.publish, _started("r1"))
        event = await asyncio.wait_for(anext(subscription), 10)
        assert event.run_id == "r1"

    asyncio.run(scenario())
