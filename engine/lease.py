"""Leases on running runs: who drives a run, and the heartbeat that keeps saying so.

A process that drives a stored run holds its lease (`engine.store.base.Lease`): taken when the
run starts, is claimed for a resume or is recovered, renewed with every checkpoint, and renewed
by a heartbeat every third of the lease while no checkpoint comes (a tool or a model call that
takes long): `heartbeat`, one thread per process renewing through the blocking store, for the
sync API; `aheartbeat`, an asyncio task per drive renewing through the store's async face, for
`arun` / `aresume` / `arecover`. A run whose lease is live is refused to `recover`
(`LeaseHeldError`); once its process died the lease runs out and the run can be taken over.

The lease lasts `CALLCC_LEASE_SECONDS` (default 30 s) unless `Runtime(lease_seconds=...)` says
otherwise: long enough that a busy machine never misses a renewal, short enough that a dead
run is recovered soon after.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager

from engine.errors import UsageError
from engine.store.base import AsyncRunStore, Lease, RunStore

LEASE_ENV = "CALLCC_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 30.0
LINGER_SECONDS = 5.0
"""How long the heartbeat thread waits for another drive before it ends."""

log = logging.getLogger("callcc")


MAX_LEASE_SECONDS = 86_400.0
"""A day: a lease is renewed every third of its length, and a process dead for longer than
this is not worth waiting for (larger values also overflow the heartbeat's timers)."""


def lease_seconds(value: float | None = None) -> float:
    """The lease duration: `value`, else `CALLCC_LEASE_SECONDS`, else 30 s."""
    source = "lease_seconds"
    if value is None:
        text = os.environ.get(LEASE_ENV)
        if not text:
            return DEFAULT_LEASE_SECONDS
        source = LEASE_ENV
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if isinstance(value, bool) or not math.isfinite(value) or not 0 < value <= MAX_LEASE_SECONDS:
        raise UsageError(
            f"{source} must be a number of seconds above 0 and at most {MAX_LEASE_SECONDS:g}"
            f" (got {value!r}); the default is {DEFAULT_LEASE_SECONDS:g}"
        )
    return float(value)


_HOST = socket.gethostname()


def new_owner() -> str:
    """A lease owner id that names the process: `host:pid:random`."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


class _Heartbeat:
    """One daemon thread per process renewing the lease of every drive in progress."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._beats: dict[int, tuple[RunStore, str, Lease]] = {}
        self._due: dict[int, float] = {}
        self._serial = 0
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf

    @contextmanager
    def beating(self, store: RunStore, run_id: str, lease: Lease) -> Iterator[None]:
        """Renew `lease` on `run_id` every `lease.seconds / 3` until the block ends."""
        with self._cond:
            self._serial += 1
            key = self._serial
            due = time.monotonic() + lease.seconds / 3
            self._beats[key] = (store, run_id, lease)
            self._due[key] = due
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="callcc-lease-heartbeat", daemon=True
                )
                self._thread.start()
            elif due < self._wakes_at:
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._beats.pop(key, None)
                self._due.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._due:
                    self._wakes_at = math.inf
                    self._cond.wait(LINGER_SECONDS)
                    if not self._due:
                        self._thread = None
                        return
                    continue
                key = min(self._due, key=self._due.__getitem__)
                now = time.monotonic()
                if self._due[key] > now:
                    self._wakes_at = self._due[key]
                    self._cond.wait(self._due[key] - now)
                    continue
                store, run_id, lease = self._beats[key]
                self._due[key] = now + lease.seconds / 3
            try:
                held = store.renew(run_id, lease)
            except Exception as exc:  # a store hiccup: the next beat tries again
                _not_renewed(run_id, exc)
                continue
            if not held:
                with self._cond:
                    lost = self._due.pop(key, None) is not None
                    self._beats.pop(key, None)
                if lost:
                    _taken_over(run_id)


def _not_renewed(run_id: str, exc: Exception) -> None:
    log.warning("run %s: could not renew its lease: %s", run_id, exc)


def _taken_over(run_id: str) -> None:
    log.warning(
        "run %s: another process took the run over (recover --force); this process fails at"
        " its next checkpoint",
        run_id,
    )


_HEARTBEAT = _Heartbeat()


def _after_fork() -> None:
    global _HEARTBEAT
    _HEARTBEAT = _Heartbeat()  # the parent's thread does not exist in a forked child


os.register_at_fork(after_in_child=_after_fork)


def heartbeat(store: RunStore, run_id: str, lease: Lease) -> AbstractContextManager[None]:
    """Keep renewing `lease` on `run_id` while the `with` block runs (a drive in progress)."""
    return _HEARTBEAT.beating(store, run_id, lease)


@asynccontextmanager
async def aheartbeat(store: AsyncRunStore, run_id: str, lease: Lease) -> AsyncIterator[None]:
    """Keep renewing `lease` on `run_id` while the `async with` block runs: a task on the
    running event loop, renewing through `store` every `lease.seconds / 3`."""
    done: list[bool] = []
    task = asyncio.create_task(_abeat(store, run_id, lease, done), name=f"callcc-lease-{run_id}")
    try:
        yield
    finally:
        done.append(True)
        task.cancel()
        await asyncio.wait((task,))  # never raises the task's error, passes a cancel of ours on


async def _abeat(store: AsyncRunStore, run_id: str, lease: Lease, done: list[bool]) -> None:
    # `done` ends the loop even when the cancel is lost: on Python 3.11 `asyncio.wait_for`
    # drops a cancel that arrives as its inner wait completes, and the connection pool waits
    # with it, so a renewal that got its connection at that moment returned normally, and the
    # drive waited for this task forever (a Temporal worker hung at 50 concurrent runs).
    while not done:
        await asyncio.sleep(lease.seconds / 3)
        if done:
            return
        try:
            held = await store.renew(run_id, lease)
        except Exception as exc:  # a store hiccup: the next beat tries again
            _not_renewed(run_id, exc)
            continue
        if not held:
            _taken_over(run_id)
            return
