"""Driving a coroutine from sync code: eagerly while it never waits, on the loop once it does."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest

from engine import _eager


@pytest.fixture
def loop() -> asyncio.AbstractEventLoop:
    new = asyncio.new_event_loop()
    yield new  # type: ignore[misc]
    new.close()


def test_a_coroutine_that_never_waits_finishes_without_the_loop_running(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[bool] = []

    async def work() -> int:
        seen.append(asyncio.get_running_loop() is loop)  # the loop is there for those who ask
        return 42

    assert _eager.run(loop, work()) == 42
    assert seen == [True]
    assert not loop.is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # and marked running no more


def test_a_coroutine_that_waits_is_finished_on_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    async def child(n: int) -> int:
        await asyncio.sleep(0.01)
        return n * 2

    async def work() -> list[int]:
        first = await asyncio.to_thread(sum, [1, 2, 3])
        await asyncio.sleep(0)
        both = await asyncio.gather(child(first), asyncio.ensure_future(child(5)))
        return [first, *both]

    assert _eager.run(loop, work()) == [6, 12, 10]


def test_errors_raised_before_and_after_the_first_wait_reach_the_caller(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def early() -> None:
        raise ValueError("early")

    async def late() -> None:
        await asyncio.sleep(0.001)
        raise KeyError("late")

    async def awaited_failure() -> None:
        async def fails() -> None:
            await asyncio.sleep(0.001)
            raise OSError("in a task")

        await asyncio.ensure_future(fails())

    with pytest.raises(ValueError, match="early"):
        _eager.run(loop, early())
    with pytest.raises(KeyError, match="late"):
        _eager.run(loop, late())
    with pytest.raises(OSError, match="in a task"):
        _eager.run(loop, awaited_failure())


def _drivers(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    return {"run_until_complete": loop.run_until_complete, "on_loop": partial(_eager.on_loop, loop)}


@pytest.mark.parametrize("driver", ["run_until_complete", "on_loop"])
def test_on_loop_runs_what_the_last_step_scheduled_as_run_until_complete_does(
    loop: asyncio.AbstractEventLoop, driver: str
) -> None:
    seen: list[str] = []

    def later() -> None:
        seen.append("later")  # scheduled by a callback: the next iteration, not this drive's

    def soon() -> None:
        seen.append("soon")
        loop.call_soon(later)

    async def work() -> str:
        await asyncio.sleep(0)
        loop.call_soon(soon)  # in the task's last step
        return "done"

    drive = _drivers(loop)[driver]
    assert drive(work()) == "done"
    assert seen == ["soon"]
    assert not loop.is_running()

    async def next_drive() -> list[str]:
        return list(seen)

    assert drive(next_drive()) == ["soon", "later"]  # the next drive's first iteration ran it


@pytest.mark.parametrize("driver", ["run_until_complete", "on_loop"])
def test_on_loop_passes_errors_and_cancellation_on(
    loop: asyncio.AbstractEventLoop, driver: str
) -> None:
    drive = _drivers(loop)[driver]

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("late")

    async def cancelled() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    async def stops_the_loop() -> None:
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0.01)

    with pytest.raises(ValueError, match="late"):
        drive(fails())
    with pytest.raises(asyncio.CancelledError):
        drive(cancelled())
    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        drive(stops_the_loop())


def test_a_drive_cut_short_by_keyboard_interrupt_leaves_the_loop_fit_for_the_next(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """An interrupt raised by a callback of the drive's last iteration: the stop scheduled
    with it is this drive's, so the next drive still runs to its end (a leftover done
    callback of `run_until_complete` stops the next drive after its first iteration)."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def interrupted() -> None:
        loop.call_soon(interrupt)

    async def waits() -> int:
        for _ in range(3):
            await asyncio.sleep(0)
        return 7

    with pytest.raises(KeyboardInterrupt):
        _eager.on_loop(loop, interrupted())
    assert _eager.on_loop(loop, waits()) == 7

    async def raises() -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _eager.on_loop(loop, raises())
    assert _eager.on_loop(loop, waits()) == 7


def test_on_loop_drives_each_thread_on_its_own_loop() -> None:
    async def where() -> asyncio.AbstractEventLoop:
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    def in_thread() -> bool:
        own = asyncio.new_event_loop()
        try:
            return all(_eager.on_loop(own, where()) is own for _ in range(50))
        finally:
            own.close()

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(lambda _: in_thread(), range(8)))
