"""Run a coroutine to completion from sync code, without an event-loop round trip when it
never has to wait.

A scripted model and plain python tools never wait on I/O, so the coroutine finishes on its
first `send`; handing it to `run_until_complete` would cost more than a whole model turn.
While it runs eagerly the thread's loop is marked running, so anything that needs the loop
(tasks, threads, timeouts) gets it; the first time the coroutine does wait, the rest of it
continues as an ordinary task on that loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """`loop.run_until_complete(coro)`, minus the loop when `coro` never waits."""
    asyncio._set_running_loop(loop)
    try:
        try:
            first = coro.send(None)
        except StopIteration as done:
            result: T = done.value
            return result
    finally:
        asyncio._set_running_loop(None)
    return loop.run_until_complete(_adopt(coro, first))


async def _adopt(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Drive `coro` on from where it first waited, as a task would."""
    while True:
        thrown: BaseException | None = None
        if waiting is None:  # a bare yield (`asyncio.sleep(0)`)
            await asyncio.sleep(0)
        else:
            waiting._asyncio_future_blocking = False
            try:
                await asyncio.wait((waiting,))  # wait until done; never raises its error
            except BaseException as exc:  # cancelled while waiting: pass it on
                thrown = exc
        try:
            waiting = coro.throw(thrown) if thrown is not None else coro.send(None)
        except StopIteration as done:
            result: T = done.value
            return result
