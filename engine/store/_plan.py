"""Store operations written once, run by a blocking or an awaiting driver (sans-IO).

A store operation's body is a generator that yields `Query`s and is sent back each one's
`Result`; its return value is the operation's. It holds all the operation's SQL and its logic
(version checks, refusals, row mapping) and touches no connection, so the same body runs on a
blocking cursor (`run`) and on an asyncio cursor (`arun`): the sync and the async face of a
store never write a statement twice. `Operation` adds what the driver needs to know around the
body: what it is doing (for errors), how to tell whether a write landed before a connection was
lost, and what to do once it committed.

Driver-free: a cursor is anything with `execute`, `executemany`, `rowcount`, `description` and
`fetchall` (psycopg's `Cursor` and `AsyncCursor`, sqlite3's cursor).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

T = TypeVar("T")
Row: TypeAlias = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement to run."""

    sql: Any
    """The statement, with the driver's placeholders (text, or a driver's composed SQL)."""
    params: Sequence[Any] | None = None
    """Its parameters (None: none); with `many`, a sequence of parameter rows."""
    many: bool = False
    """Run once per row of `params` (`executemany`)."""


@dataclass(frozen=True, slots=True)
class Result:
    """What a statement did."""

    rowcount: int
    """Rows it changed (or returned), as the driver counts them."""
    rows: list[Row]
    """The rows it returned (empty for a statement that returns none)."""

    def one(self) -> Row | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None


Plan: TypeAlias = Generator[Query, Result, T]
"""A body: yields queries, receives their results, returns the operation's value."""


@dataclass(frozen=True, slots=True)
class Operation(Generic[T]):
    """One store method as data: run its `body` in one transaction."""

    doing: str
    """What the store was doing, as a `StoreError` says it (`cannot write to the run store`)."""
    body: Callable[[], Plan[T]]
    """A new body generator (called again when the operation is tried again)."""
    landed: Callable[[], Plan[T | None]] | None = None
    """After a lost connection: the operation's result when its write committed before the
    connection went, else None (the body is then run again). None: safe to run again."""
    committed: Callable[[T], None] | None = None
    """Called with the result once the transaction committed (a cache of what is stored)."""
    skip: bool = False
    """Nothing to do (a spec kept already): the drivers return None without a transaction."""

    def done(self, value: T) -> T:
        """`value`, after telling `committed` about it."""
        if self.committed is not None:
            self.committed(value)
        return value


class Cursor(Protocol):
    """A blocking DB-API cursor."""

    @property
    def rowcount(self) -> int: ...
    @property
    def description(self) -> Any: ...
    def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    def executemany(self, query: Any, params_seq: Any, /) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class AsyncCursor(Protocol):
    """An asyncio cursor (psycopg's `AsyncCursor`)."""

    @property
    def rowcount(self) -> int: ...
    @property
    def description(self) -> Any: ...
    async def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    async def executemany(self, query: Any, params_seq: Any, /) -> Any: ...
    async def fetchall(self) -> list[Any]: ...


def run(cursor: Cursor, plan: Plan[T]) -> T:
    """Drive `plan` on a blocking cursor; its value."""
    try:
        query = next(plan)
        while True:
            if query.many:
                cursor.executemany(query.sql, query.params)
                result = Result(cursor.rowcount, [])
            else:
                if query.params is None:
                    cursor.execute(query.sql)
                else:
                    cursor.execute(query.sql, query.params)
                rows = cursor.fetchall() if cursor.description is not None else []
                result = Result(cursor.rowcount, rows)
            query = plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arun(cursor: AsyncCursor, plan: Plan[T]) -> T:
    """Drive `plan` on an asyncio cursor; its value."""
    try:
        query = next(plan)
        while True:
            if query.many:
                await cursor.executemany(query.sql, query.params)
                result = Result(cursor.rowcount, [])
            else:
                await cursor.execute(query.sql, query.params)  # psycopg: None means none
                rows = await cursor.fetchall() if cursor.description is not None else []
                result = Result(cursor.rowcount, rows)
            query = plan.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
