"""Run a coroutine to completion from sync code, without an event-loop round trip when it
never has to wait.

A scripted model and plain python tools never wait on I/O, so the coroutine finishes on its
first `send`; handing it to `run_until_complete` would cost more than a whole model turn.
While it runs eagerly the thread's loop is marked running, so anything that needs the loop
(tasks, threads, timeouts) gets it; the first time the coroutine does wait, the rest of it
continues as an ordinary task on that loop. Every other run goes through the loop from the
start, by `on_loop` (`run_until_complete`, with less machinery around it).
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


def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """`loop.run_until_complete(coro)`, for a coroutine, with less machinery around it: the
    task asks the loop to stop as its last act (a callback scheduled in its last step, as
    `run_until_complete`'s done callback is scheduled when the task ends), so the loop runs
    the very iterations `run_until_complete` runs, and whatever that last step scheduled
    runs before this returns; no done callback is added, called and removed. A drive cut
    short (KeyboardInterrupt, a signal's exception) leaves a stop that stops nothing: it is
    tied to this call, so a later run on the loop runs to its end."""
    live = [True]
    task = loop.create_task(_then_stop(loop, coro, live))
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # as run_until_complete
    try:
        loop.run_forever()
    except BaseException:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: raised here, not logged as never retrieved
        raise
    finally:
        live.clear()
    if not task.done():  # something else stopped the loop (a tool calling `loop.stop()`)
        raise RuntimeError("Event loop stopped before Future completed.")
    return task.result()


async def _then_stop(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], live: list[bool]
) -> T:
    try:
        return await coro
    finally:
        if live:  # not a task closed after its drive gave up on it (its loop may be closed)
            loop.call_soon(_stop, loop, live)


def _stop(loop: asyncio.AbstractEventLoop, live: list[bool]) -> None:
    if live:  # the call that scheduled it still waits on the loop
        loop.stop()


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
