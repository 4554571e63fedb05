"""Driving a coroutine from sync code: eagerly while it never waits, on the loop once it does."""

from __future__ import annotations

import asyncio

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
