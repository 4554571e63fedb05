"""The peer benchmark's worker protocol and callcc's three paths through it (the production
path awaited on a running loop, the sync API, the eager path); nothing here is timed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def worker() -> Iterator[Any]:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.peers import worker
    finally:
        sys.path.remove(str(ROOT))
    yield worker
    worker.LOOP.close()  # the worker process's loop lives as long as the process


def test_an_async_iteration_is_timed_awaited_on_the_running_loop_not_through_cycle(
    worker: Any,
) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def acycle() -> None:
        loops.append(asyncio.get_running_loop())  # raises outside a running loop

    workload = worker.on_loop(acycle, state_bytes=lambda: 7)
    workload.cycle = lambda: pytest.fail("the sync cycle was timed")
    answer = worker._time(workload, 4, 2)
    assert len(answer["samples"]) == 4 and answer["state_bytes"] == 7
    assert loops == [worker.LOOP] * 6  # warm-up and timed iterations, all on one loop


def test_the_sync_cycle_of_an_async_workload_runs_it_to_completion(worker: Any) -> None:
    done: list[bool] = []

    async def acycle() -> None:
        await asyncio.sleep(0)  # waits once: the loop must drive it on
        done.append(True)

    worker.on_loop(acycle, state_bytes=lambda: 0).cycle()
    assert done == [True]


def _ask(flags: list[str], requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = "".join(json.dumps(r) + "\n" for r in [*requests, {"op": "quit"}])
    proc = subprocess.run(
        [sys.executable, "-m", "bench.peers.callcc_worker", *flags],
        input=lines,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("flags", [[], ["--sync"], ["--eager"]], ids=["service", "sync", "eager"])
def test_each_callcc_path_verifies_every_workload_it_times(flags: list[str]) -> None:
    workloads = ("approval_cycle", "nested_approval", "long_loop")
    answers = _ask(
        flags,
        [{"op": "time", "workload": w, "n": 3, "warmup": 1} for w in workloads]
        + [{"op": "hold", "workload": "approval_cycle", "n": 5}],
    )
    for workload, answer in zip(workloads, answers, strict=False):
        assert "error" not in answer, answer.get("error")
        assert len(answer["samples"]) == 3, workload
        assert answer["state_bytes"] > 0, workload
    held = answers[-1]
    assert "error" not in held, held.get("error")
    assert held["bytes_per_run"] > 0 and held["live_per_run"] > 0
