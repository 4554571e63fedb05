"""Tool functions for the interpreter tests; every call is recorded so tests can prove what ran.

Set CALLCC_TEST_LOG to a file path to also append each call there (for subprocess tests).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from engine.tools import Deferred, ToolContext

CALLS: list[tuple[str, dict[str, Any]]] = []
FLAKY: dict[str, int] = {}


def _record(name: str, **kwargs: Any) -> None:
    CALLS.append((name, kwargs))
    log = os.environ.get("CALLCC_TEST_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps([name, kwargs]) + "\n")


def echo(text: str) -> str:
    """Return the text."""
    _record("echo", text=text)
    return f"echo: {text}"


def transfer(to: str, amount: int) -> dict[str, Any]:
    """Move money (a side effect worth approving)."""
    _record("transfer", to=to, amount=amount)
    return {"ok": True, "to": to, "amount": amount}


def lookup(key: str, ctx: ToolContext) -> str:
    """Return the idempotency key so tests can see the context."""
    _record("lookup", key=key)
    return f"{key}@{ctx.idempotency_key}"


def later(topic: str) -> str:
    """Always defers: the result comes from outside."""
    _record("later", topic=topic)
    raise Deferred(f"waiting for a result about {topic}")


def flaky(key: str) -> str:
    """Fails the first time for each key, then works."""
    _record("flaky", key=key)
    FLAKY[key] = FLAKY.get(key, 0) + 1
    if FLAKY[key] == 1:
        raise ConnectionError("upstream unavailable")
    return f"ok {key}"


def slow(key: str) -> str:
    """Logs that it started; then, while the file named by CALLCC_TEST_BLOCK exists and holds
    this key, waits (so a test can kill the process in the middle of this very call)."""
    _record("slow", key=key)
    block = os.environ.get("CALLCC_TEST_BLOCK")
    if block:
        import time
        from pathlib import Path

        gate = Path(block)
        if gate.exists() and gate.read_text(encoding="utf-8") == key:
            Path(block + ".started").write_text(key, encoding="utf-8")
            deadline = time.monotonic() + 60
            while gate.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
    return f"slow {key} done"


CANCELLED: list[str] = []


async def hang(key: str) -> str:
    """Waits until its task is cancelled (records the key in CANCELLED when it is)."""
    _record("hang", key=key)
    try:
        await asyncio.Event().wait()
    finally:
        CANCELLED.append(key)
    return key


SEEN: list[tuple[str, str]] = []
"""(tool, idempotency key) of every call of the async tools below, in the order they ran."""
ACTIVE = {"now": 0, "peak": 0, "hold_first_until": 0}
"""How many calls of the async tools are under way at once, and the most there ever were.

With `hold_first_until` set to N, the first call waits (up to 30 s, then fails) until N calls are
under way at once: a test proves that runs interleave without relying on scheduling luck."""
_CROWD: list[asyncio.Event] = []


async def fetch(key: str, ctx: ToolContext) -> str:
    """An async lookup that yields to the event loop (so concurrent runs interleave)."""
    return await _awaited("fetch", key, ctx)


async def pay(to: str, amount: int, ctx: ToolContext) -> str:
    """An async side effect worth approving; counted by its idempotency key."""
    return await _awaited("pay", f"{to}:{amount}", ctx)


async def _awaited(name: str, what: str, ctx: ToolContext) -> str:
    ACTIVE["now"] += 1
    ACTIVE["peak"] = max(ACTIVE["peak"], ACTIVE["now"])
    try:
        wanted = ACTIVE["hold_first_until"]
        if wanted:
            if not _CROWD:
                _CROWD.append(asyncio.Event())
                await asyncio.wait_for(_CROWD[0].wait(), timeout=30)
            elif ACTIVE["now"] >= wanted:
                _CROWD[0].set()
        for _ in range(3):
            await asyncio.sleep(0)
        SEEN.append((name, ctx.idempotency_key))
        return f"{name} {what}"
    finally:
        ACTIVE["now"] -= 1
