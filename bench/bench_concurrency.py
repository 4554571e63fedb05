"""200 runs advanced at once on one event loop, the async store against the blocking one.

Each run starts (`arun`), calls an async lookup and a payment that waits for approval (the
tools wait 2 ms each, as a call to another service would), suspends, is approved and resumed
(`aresume`), pays and finishes: 200 of them under one `asyncio.gather`. Two ways to keep them:

- async: the store's async face (`store.aio`: PostgreSQL on a pool of asyncio connections,
  SQLite on the store's worker thread), which is what `arun` uses;
- blocking: the same store's blocking methods called from the coroutines (what `arun` did
  before the async face), so every write holds the event loop until it is done.

Both in the same process, alternating, on each backend; figures are medians over `REPEATS`.
Also how long the event loop was held: how late a 1 ms timer fired (99th percentile).

    .venv/bin/python -m bench.bench_concurrency [sqlite|postgresql] [--repeats N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_durable import _postgres_url
from bench.bench_loop import HERE, machine
from engine.models.scripted import ScriptedModel
from engine.runtime import Finished, Runtime, Suspended
from engine.spec.model import Agent, Approval, PythonTool, Spec
from engine.spec.model import ScriptedModel as ScriptSpec
from engine.store import RunStore, open_store
from engine.store._aio import Blocking

RUNS = 200
REPEATS = 5

SCRIPT = {
    "agents": {
        "payer": [
            {
                "tool_calls": [
                    {"id": "l1", "name": "lookup", "arguments": {"key": "invoice"}},
                    {"id": "p1", "name": "pay", "arguments": {"to": "bob", "amount": 5}},
                ]
            },
            {"text": "paid"},
        ]
    }
}


def _spec() -> Spec:
    tools = {
        "lookup": PythonTool(name="lookup", description="Look up.", ref="bench_tools:lookup"),
        "pay": PythonTool(
            name="pay",
            description="Pay.",
            ref="bench_tools:pay",
            approval=Approval(required=True),
        ),
    }
    payer = Agent(
        name="payer", description="pays", model="m", instructions="Pay.", tools=("lookup", "pay")
    )
    return Spec(
        spec_version=1,
        name="bench-concurrency",
        path=str(HERE / "bench.yaml"),
        entrypoint="payer",
        models={"m": ScriptSpec(name="m", script="-")},
        tools=tools,
        agents={"payer": payer},
        digest="sha256:bench-concurrency",
    )


class BlockingOnly:
    """A store whose async face is its blocking methods, called in place: `arun` as it was."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self.aio = Blocking(store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def _lag(stop: asyncio.Event, late: list[float]) -> None:
    """How late a 1 ms timer fires, again and again until `stop` (the loop held that long)."""
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append(time.perf_counter() - asked - 0.001)


async def _advance(runtime: Runtime, run_id: str) -> None:
    first = await runtime.arun("pay the invoice", run_id=run_id)
    assert isinstance(first, Suspended), first
    last = await runtime.aresume(first.continuation.approve("p1"))
    assert isinstance(last, Finished) and last.output == "paid", last


def one_round(store: RunStore, face: str, tag: str) -> tuple[float, float]:
    """Seconds for `RUNS` runs at once through `face`, and the 99th percentile of how late the
    event loop ran a timer meanwhile."""
    keeper: Any = store if face == "async" else BlockingOnly(store)
    model = ScriptedModel.from_data(SCRIPT, source="bench")

    async def everything() -> tuple[float, float]:
        runtime = Runtime(_spec(), model_override=model, store=keeper)
        await keeper.aio.list_runs(limit=1)  # the pool (or the thread) is up before the clock
        stop, late = asyncio.Event(), []
        watcher = asyncio.create_task(_lag(stop, late))
        start = time.perf_counter()
        await asyncio.gather(*(_advance(runtime, f"{tag}-{n}") for n in range(RUNS)))
        took = time.perf_counter() - start
        stop.set()
        await watcher
        await keeper.aio.aclose()
        return took, statistics.quantiles(late, n=100)[98]

    return asyncio.run(everything())


def measure(url: str, repeats: int) -> dict[str, dict[str, float]]:
    """Medians per face on the store at `url`."""
    store = open_store(url)
    times: dict[str, list[float]] = {"async": [], "blocking": []}
    lags: dict[str, list[float]] = {"async": [], "blocking": []}
    try:
        one_round(store, "async", "warm")  # imports, the spec kept, the first pages touched
        for n in range(repeats):
            order = ("async", "blocking") if n % 2 == 0 else ("blocking", "async")
            for face in order:
                took, lag = one_round(store, face, f"{face}-{n}")
                times[face].append(took)
                lags[face].append(lag)
    finally:
        store.close()
    return {
        face: {"seconds": statistics.median(times[face]), "lag": statistics.median(lags[face])}
        for face in times
    }


def main(argv: list[str] | None = None) -> None:
    """Print the figures for the backends named (default both)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("backends", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"{RUNS} runs at once (arun, approval, aresume), medians of {args.repeats}")
    for backend in args.backends:
        cleanup = None
        if backend == "sqlite":
            url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='callcc-bench-')) / 'runs.db'}"
        else:
            server, schema, url = _postgres_url()
            cleanup = (server, schema)
        try:
            r = measure(url, args.repeats)
        finally:
            if cleanup is not None:
                import psycopg

                with psycopg.connect(cleanup[0], autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{cleanup[1]}" CASCADE')
        a, b = r["async"], r["blocking"]
        print(f"[{backend}]")
        for face, r_ in (("async store:   ", a), ("blocking store:", b)):
            print(
                f"  {face} {r_['seconds'] * 1000:8.0f} ms,"
                f" a timer late by {r_['lag'] * 1000:6.1f} ms (p99)"
            )
        print(f"  blocking / async: {b['seconds'] / a['seconds']:.2f}x the time")


if __name__ == "__main__":
    main()
