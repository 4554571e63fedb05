"""Async faces of a store: the `AsyncRunStore` methods, each handed on to one `_call`.

`AsyncFace` spells out the protocol once; a face only says how a method is carried out:

- `Threaded`: the blocking store's own method, run on one worker thread of the store's own
  (SQLite, and any `RunStore` without an async face of its own). sqlite3 does its I/O with the
  GIL released, so the event loop goes on while a write waits for the file; the thread is
  started at the first call and ended by `aclose`.
- `Blocking`: the blocking method, called right there. For the sync API (`Runtime.run`), whose
  code is the same coroutines: no event-loop round trip, so `run()` costs what it did.
- `engine.store.postgres.AsyncPostgresStore`: the same SQL operations as the blocking store,
  on a pool of asyncio connections.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.store.base import (
    Event,
    Lease,
    PendingRow,
    RunRecord,
    RunStatus,
    RunStore,
    SpecRow,
)


class AsyncFace:
    """The `AsyncRunStore` protocol, every method handed to `_call(name, ...)`."""

    url: str

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Carry out the `RunStore` method `name` with these arguments; its result."""
        raise NotImplementedError

    async def create_run(self, run: RunRecord) -> None:
        """As `RunStore.create_run`."""
        await self._call("create_run", run)

    async def start_run(self, run: RunRecord, events: Sequence[Event], *, lease: Lease) -> int:
        """As `RunStore.start_run`."""
        return int(await self._call("start_run", run, events, lease=lease))

    async def append(
        self, run_id: str, version: int, events: Sequence[Event], *, lease: Lease | None = None
    ) -> int:
        """As `RunStore.append`."""
        return int(await self._call("append", run_id, version, events, lease=lease))

    async def settle(
        self,
        run_id: str,
        version: int,
        *,
        status: RunStatus,
        nonce: str | None,
        output: str | None,
        pending: Sequence[PendingRow],
        spec_digest: str | None = None,
        usage: tuple[int, int] | None = None,
        trace: Mapping[str, str] | None = None,
        snapshot: Event | None = None,
    ) -> int:
        """As `RunStore.settle`."""
        return int(
            await self._call(
                "settle",
                run_id,
                version,
                status=status,
                nonce=nonce,
                output=output,
                pending=pending,
                spec_digest=spec_digest,
                usage=usage,
                trace=trace,
                snapshot=snapshot,
            )
        )

    async def claim(self, run_id: str, nonce: str, *, lease: Lease | None = None) -> int:
        """As `RunStore.claim`."""
        return int(await self._call("claim", run_id, nonce, lease=lease))

    async def take_over(
        self, run_id: str, version: int, *, lease: Lease | None = None, force: bool = False
    ) -> int:
        """As `RunStore.take_over`."""
        return int(await self._call("take_over", run_id, version, lease=lease, force=force))

    async def renew(self, run_id: str, lease: Lease) -> bool:
        """As `RunStore.renew`."""
        return bool(await self._call("renew", run_id, lease))

    async def get_run(self, run_id: str) -> RunRecord:
        """As `RunStore.get_run`."""
        record: RunRecord = await self._call("get_run", run_id)
        return record

    async def events(self, run_id: str) -> list[Event]:
        """As `RunStore.events`."""
        events: list[Event] = await self._call("events", run_id)
        return events

    async def snapshot(self, run_id: str) -> tuple[RunRecord, list[Event]]:
        """As `RunStore.snapshot`."""
        both: tuple[RunRecord, list[Event]] = await self._call("snapshot", run_id)
        return both

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """As `RunStore.list_runs`."""
        runs: list[RunRecord] = await self._call("list_runs", status=status, limit=limit)
        return runs

    async def pending(self, *, limit: int = 100) -> list[PendingRow]:
        """As `RunStore.pending`."""
        rows: list[PendingRow] = await self._call("pending", limit=limit)
        return rows

    async def put_spec(self, spec: SpecRow) -> None:
        """As `RunStore.put_spec`."""
        await self._call("put_spec", spec)

    async def get_spec(self, digest: str) -> SpecRow | None:
        """As `RunStore.get_spec`."""
        row: SpecRow | None = await self._call("get_spec", digest)
        return row

    async def delete(self, run_id: str) -> bool:
        """As `RunStore.delete`."""
        return bool(await self._call("delete", run_id))

    async def prune(
        self,
        *,
        status: RunStatus | Sequence[RunStatus],
        older_than: float,
        include_suspended: bool = False,
        dry_run: bool = False,
    ) -> list[str]:
        """As `RunStore.prune`."""
        pruned: list[str] = await self._call(
            "prune",
            status=status,
            older_than=older_than,
            include_suspended=include_suspended,
            dry_run=dry_run,
        )
        return pruned

    async def aclose(self) -> None:
        """Release what this face holds (nothing, unless a subclass says otherwise)."""


class Blocking(AsyncFace):
    """A blocking store behind the async protocol, called in place (see the module doc)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.url = store.url

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.store, name)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Blocking({self.store!r})"


class Threaded(AsyncFace):
    """A blocking store whose methods run on one worker thread of its own."""

    def __init__(self, store: RunStore, *, name: str = "callcc-store") -> None:
        self.store = store
        self.url = store.url
        self._name = name
        self._thread: ThreadPoolExecutor | None = None

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        call = functools.partial(getattr(self.store, name), *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def aclose(self) -> None:
        """End the worker thread once the calls given to it are done."""
        self.close()

    def close(self) -> None:
        """`aclose`, for the blocking store's `close`."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"Threaded({self.store!r})"


def async_face(store: RunStore) -> Any:
    """`store.aio`, or (a store written before async faces) the store on a worker thread."""
    face = getattr(store, "aio", None)
    return face if face is not None else Threaded(store)
