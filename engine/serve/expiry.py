"""The service's expiry task: every `interval` seconds, reject what waited past its deadline.

A tool whose approval says `expires_after: 24h` gives each of its pending calls an
`expires_at`; once that passes undecided, `engine.inbox.aexpire` records a `reject` with the
reason `expired: no decision within 24h` (user `callcc`, audit action `expired`) and resumes
every run whose entries are then all decided, so the model is told and the run goes on. The
service runs one pass when it starts (deadlines that passed while it was down) and then one
every `interval` seconds; `wake()` asks for a pass now. A pass that fails is logged and the
next one tries again: expiry never stops the service. Several services on one store may all
run it: a decision recorded twice is refused by the store, so each entry expires once.

Without a service, `callcc runs expire --store URL` (from cron, say) does one pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("callcc.serve")

__all__ = ["DEFAULT_INTERVAL", "Expiry"]

DEFAULT_INTERVAL = 30.0
"""Seconds between passes: an entry is rejected at most this long after its deadline."""

ExpirePass = Callable[[float], Awaitable[list[str]]]
"""One pass at the given time (seconds since the epoch): the ids of the runs it expired
entries of (`lambda now: engine.inbox.aexpire(runtime_for, now=now)`)."""


class Expiry:
    """The periodic task; `start()` and `aclose()` belong to the service's own."""

    def __init__(
        self,
        expire: ExpirePass,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`expire` does one pass; `interval` is the seconds between passes; `clock` gives
        the time a pass compares deadlines with (injectable, as `interval` is, for tests)."""
        if interval <= 0:
            raise ValueError(f"the expiry interval must be positive, not {interval!r}")
        self.interval = interval
        """Seconds between passes (read before each wait: a change applies from the next)."""
        self.clock = clock
        """The time passes compare deadlines with."""
        self._expire = expire
        self._wake = asyncio.Event()
        self._done = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        """Passes finished so far (failed ones included)."""
        self.expired: list[str] = []
        """The runs the latest pass expired entries of."""

    async def start(self) -> None:
        """Start the task (its first pass runs at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="callcc-expiry")

    async def aclose(self) -> None:
        """Stop the task (a pass under way is cancelled: what it recorded stays recorded,
        and an entry it did not reach waits for the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Run a pass now rather than at the end of the interval."""
        self._wake.set()

    async def run_once(self) -> list[str]:
        """One pass, now; its expired run ids (a failure is logged and gives [])."""
        try:
            expired = list(await self._expire(self.clock()))
        except Exception:
            log.exception("expiry pass failed; the next one runs in %.0f s", self.interval)
            expired = []
        async with self._done:
            self.passes += 1
            self.expired = expired
            self._done.notify_all()
        if expired:
            log.info("expired pending decisions of %d run(s): %s", len(expired), expired)
        return expired

    async def passed(self, count: int) -> list[str]:
        """Wait until `count` passes have finished since the start; what the latest expired."""
        async with self._done:
            await self._done.wait_for(lambda: self.passes >= count)
            return self.expired

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
