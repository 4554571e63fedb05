"""The worker side of the runner: one process per system, answering timing requests.

Standard library only (it runs inside every peer's environment). The runner writes one JSON
request a line on stdin; the worker answers one JSON line on the stdout it started with.
Anything a framework prints goes to stderr, so it cannot corrupt the protocol.

Requests: `{"op": "time", "workload", "n", "warmup"}` -> per-iteration seconds and the state
size (a workload with an async cycle is timed inside one running event loop, as a service
awaits it: no iteration pays for entering and leaving the loop); `{"op": "peak",
"workload"}` -> tracemalloc peak of one iteration; `{"op": "hold", "workload", "n"}` -> per
suspended run held in memory: its serialized bytes, the RSS growth while holding them, and
(tracemalloc) the memory of the live object a caller holds between suspend and resume;
`{"op": "quit"}`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass
class Workload:
    """How one system does one workload."""

    cycle: Callable[[], None]
    """One verified iteration; raises when the result (output, approval seen) is wrong."""
    state_bytes: Callable[[], int]
    """Size of the state the last iteration serialized (suspended, or final for a loop)."""
    acycle: Callable[[], Awaitable[None]] | None = None
    """The same iteration as a coroutine, for a system whose API is async: then it is what is
    timed, awaited on the worker's running loop (`cycle` runs it to completion from sync code,
    for the memory measurements)."""
    suspend: Callable[[], bytes] | None = None
    """One fresh run up to its suspension, serialized; for the memory of held runs."""
    live: Callable[[], Any] | None = None
    """One fresh run up to its suspension, as the live object a caller keeps to resume it."""


LIVE_RUNS = 2000
"""At most this many live suspended runs are traced (tracemalloc slows every allocation)."""


Factory = Callable[[str, str | None], "Workload | str"]
"""`(workload name, server url) -> Workload`, or the reason the system cannot do it."""


def serve(factory: Factory) -> None:
    """Answer requests until stdin closes; `--server URL` names the loopback server."""
    out: TextIO = sys.stdout
    sys.stdout = sys.stderr
    server = sys.argv[sys.argv.index("--server") + 1] if "--server" in sys.argv else None
    made: dict[str, Workload | str] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        try:
            name = request["workload"]
            if name not in made:
                made[name] = factory(name, server)
            answer = _answer(made[name], request)
        except Exception:  # reported to the runner, which stops with the traceback
            answer = {"error": traceback.format_exc()}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def _answer(workload: Workload | str, request: dict[str, Any]) -> dict[str, Any]:
    if isinstance(workload, str):
        return {"unsupported": workload}
    if request["op"] == "time":
        return _time(workload, request["n"], request["warmup"])
    if request["op"] == "peak":
        return {"peak_bytes": _peak(workload)}
    if request["op"] == "hold":
        return _hold(workload, request["n"])
    raise ValueError(f"unknown op {request['op']!r}")


LOOP = asyncio.new_event_loop()
"""The worker's event loop: every async iteration runs on it."""


def on_loop(acycle: Callable[[], Awaitable[None]], **kw: Any) -> Workload:
    """A workload whose iteration is the coroutine `acycle` (see `Workload.acycle`)."""

    def cycle() -> None:
        LOOP.run_until_complete(acycle())

    return Workload(cycle=cycle, acycle=acycle, **kw)


def _time(workload: Workload, n: int, warmup: int) -> dict[str, Any]:
    if workload.acycle is not None:
        samples = LOOP.run_until_complete(_atime(workload.acycle, n, warmup))
        return {"samples": samples, "state_bytes": workload.state_bytes()}
    for _ in range(warmup):
        workload.cycle()
    samples = []
    clock = time.perf_counter
    cycle = workload.cycle
    for _ in range(n):
        start = clock()
        cycle()
        samples.append(clock() - start)
    return {"samples": samples, "state_bytes": workload.state_bytes()}


async def _atime(acycle: Callable[[], Awaitable[None]], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await acycle()
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        start = clock()
        await acycle()
        samples.append(clock() - start)
    return samples


def _peak(workload: Workload) -> int:
    workload.cycle()
    gc.collect()
    tracemalloc.start()
    try:
        workload.cycle()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _hold(workload: Workload, n: int) -> dict[str, Any]:
    if workload.suspend is None:
        return {"unsupported": "this workload does not suspend"}
    workload.suspend()
    gc.collect()
    rss = _rss()
    held = [workload.suspend() for _ in range(n)]
    gc.collect()
    grown = _rss() - rss
    out = {"bytes_per_run": sum(sys.getsizeof(b) for b in held) / n, "rss_per_run": grown / n}
    del held
    if workload.live is not None:
        out["live_per_run"] = _live(workload.live, min(n, LIVE_RUNS))
    return out


def _live(make: Callable[[], Any], n: int) -> float:
    """Bytes per live suspended run: what `n` of them hold, traced (caches warmed first)."""
    make()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(n)]
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == n
    return grown / n


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
