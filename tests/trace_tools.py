"""Tools for tests/test_tracing.py."""

from __future__ import annotations

import asyncio

_waiting: list[asyncio.Future[None]] = []


async def rendezvous(who: str) -> str:
    """Two callers meet: the first waits for the second, which wakes it and waits in turn
    until the first goes on. So two sub-agents calling it run interleaved: the first one's
    call ends while the second one's spans are open."""
    mine = asyncio.get_running_loop().create_future()
    other = _waiting.pop() if _waiting else None
    _waiting.append(mine)
    if other is not None:
        other.set_result(None)  # wake the first caller
    await mine
    if _waiting:  # the first caller, going on: let the second one go on too
        _waiting.pop().set_result(None)
    return f"met {who}"
