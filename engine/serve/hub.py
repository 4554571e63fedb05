"""`EventHub`: the run events of the service's runtimes, fanned out to whoever listens.

Every runtime of the service has the hub's `publish` as an observer, so each event of each run
reaches every subscriber: all of them (`subscribe(None)`) or one run's (`subscribe(run_id)`).
A subscription is registered when `subscribe` returns, so nothing published after is missed.
Publishing never waits: a subscriber that falls `QUEUE_SIZE` events behind is dropped (its
iteration ends; an SSE client reconnects), so a slow reader never slows a run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from engine.events import RunEvent

QUEUE_SIZE = 1000
"""Events a subscriber may fall behind before it is dropped."""


class Subscription(AsyncIterator[RunEvent]):
    """The events of one subscription, in publishing order; `close` ends it."""

    def __init__(self, hub: EventHub, run_id: str | None) -> None:
        self.run_id = run_id
        """Only this run's events; None: every run's."""
        self._hub = hub
        self._queue: asyncio.Queue[RunEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self._closed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> RunEvent:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._closed = True
            raise StopAsyncIteration
        return event

    def _offer(self, event: RunEvent | None) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:  # too far behind: dropped, never waited for
            self._hub._drop(self)
            self._closed = True

    def close(self) -> None:
        """Stop receiving events."""
        self._hub._drop(self)
        self._closed = True
        if not self._queue.full():
            self._queue.put_nowait(None)  # wakes an iteration waiting for the next event


class EventHub:
    """Fans run events out to subscribers, on the event loop it was started on."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    def start(self) -> None:
        """Bind to the running event loop (events published from other threads are handed
        to it)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def publish(self, event: RunEvent) -> None:
        """Hand `event` to every subscriber that wants it; never blocks, never raises."""
        if self._loop is None or self._loop.is_closed():
            return
        if threading.get_ident() == self._thread:
            self._deliver(event)
        else:
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: RunEvent | None) -> None:
        for subscription in list(self._subscribers):
            if event is None or subscription.run_id in (None, event.run_id):
                subscription._offer(event)

    def subscribe(self, run_id: str | None = None) -> Subscription:
        """The events published from now on: of the run `run_id`, or of every run (None)."""
        subscription = Subscription(self, run_id)
        self._subscribers.add(subscription)
        return subscription

    def _drop(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def close(self) -> None:
        """End every subscription (the service is shutting down)."""
        self._deliver(None)
        self._subscribers.clear()

    def __len__(self) -> int:
        return len(self._subscribers)
