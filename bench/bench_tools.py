"""Cheap tools for the loop benchmarks (no I/O: the framework's own cost is what is measured)."""

import time


def transfer(to: str, amount: int) -> str:
    """Pretend to move money."""
    return f"sent {amount} to {to}"


def echo(text: str) -> str:
    """Return the text."""
    return text


REMOTE_SECONDS = 0.002
"""How long the async tools below wait, as a call to another service would."""


async def lookup(key: str) -> str:
    """Look something up elsewhere (waits `REMOTE_SECONDS` on the event loop)."""
    import asyncio

    await asyncio.sleep(REMOTE_SECONDS)
    return f"found {key}"


async def pay(to: str, amount: int) -> str:
    """Move money through another service (waits `REMOTE_SECONDS` on the event loop)."""
    import asyncio

    await asyncio.sleep(REMOTE_SECONDS)
    return f"sent {amount} to {to}"


STAMPS: list[float] = []
"""When each `stamp` call ran (`time.perf_counter()`): bench_scale times every turn by them."""


def stamp(text: str) -> str:
    """Return the text, noting when the call ran."""
    STAMPS.append(time.perf_counter())
    return text
