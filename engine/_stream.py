"""`Runtime.astream*`: one run driven as a task, its events handed to the consumer as they come.

Each stream has an observer of its own (joined to the runtime's), so the events of concurrent
runs never mix between streams. The run never waits for its consumer: events queue up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from engine.events import Observers, RunEvent

log = logging.getLogger("callcc")
T = TypeVar("T")


async def stream(
    observers: Observers, start: Callable[[Observers], Awaitable[T]]
) -> AsyncIterator[RunEvent | T]:
    """Yield the events of the run `start(observers')` drives, then its outcome; an error
    of the run is raised once its events are out.

    A consumer that leaves early (`break`) leaves the run half-driven, so closing the stream
    cancels the run (at once under `contextlib.aclosing`, else when the generator is
    collected) and logs a warning: with a store the run stays `running` at its last
    checkpoint and `recover` continues it once its lease has expired; without one nothing of
    it is kept. Nothing is executed twice either way."""
    queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()
    task = asyncio.ensure_future(start(observers.joined(queue.put_nowait)))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    run_id = None
    try:
        while (event := await queue.get()) is not None:
            run_id = event.run_id
            yield event
        yield task.result()
    finally:
        if not task.done():
            task.cancel()
            log.warning(
                "run %s: the consumer of its event stream left before the outcome; the run is "
                "cancelled where it was (with a store, `recover` continues it once its lease "
                "has run out, or at once with force=True / `callcc recover --force`)",
                run_id,
            )
            with contextlib.suppress(asyncio.CancelledError):
                await task
