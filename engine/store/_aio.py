"""Async faces of a store: the `AsyncRunStore` methods, each handed on to one `_call`.

`AsyncFace` derives every method from the `RunStore` protocol's own signature (`_forward`), so
a new store operation is one line here; a face only says how a method is carried out:

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
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from engine.store.base import RunStore

P = ParamSpec("P")
T = TypeVar("T")


def _forward(
    sync: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The `AsyncRunStore` method for the `RunStore` method `sync`: the same signature,
    awaited, handed to the face's `_call` (so no signature is written out again here)."""
    name = sync.__name__

    async def method(self: AsyncFace, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return cast(T, await self._call(name, *args, **kwargs))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"As `RunStore.{name}`."
    return method


class AsyncFace:
    """The `AsyncRunStore` protocol, every method handed to `_call(name, ...)`."""

    url: str

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Carry out the `RunStore` method `name` with these arguments; its result."""
        raise NotImplementedError

    create_run = _forward(RunStore.create_run)
    start_run = _forward(RunStore.start_run)
    append = _forward(RunStore.append)
    settle = _forward(RunStore.settle)
    claim = _forward(RunStore.claim)
    take_over = _forward(RunStore.take_over)
    renew = _forward(RunStore.renew)
    get_run = _forward(RunStore.get_run)
    events = _forward(RunStore.events)
    snapshot = _forward(RunStore.snapshot)
    list_runs = _forward(RunStore.list_runs)
    pending = _forward(RunStore.pending)
    put_spec = _forward(RunStore.put_spec)
    get_spec = _forward(RunStore.get_spec)
    delete = _forward(RunStore.delete)
    prune = _forward(RunStore.prune)
    record_decisions = _forward(RunStore.record_decisions)
    recorded_decisions = _forward(RunStore.recorded_decisions)
    add_audit = _forward(RunStore.add_audit)
    audit = _forward(RunStore.audit)
    expired = _forward(RunStore.expired)

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
