"""The runner: one worker process per system, the same workloads, alternating in rounds.

Every system runs in its own process (callcc in the project's environment, each peer in its
own under bench/.venvs/), all started at once and kept alive, so imports and warm-up happen
once. Each round asks every system for a slice of the iterations, in a rotated order, so
machine drift hits all of them alike. The loopback server for `over_http` runs here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.peers import report, venvs
from bench.peers.server import ScriptServer

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = (
    "approval_cycle",
    "nested_approval",
    "long_loop",
    "over_http",
    "store_sqlite",
    "store_postgresql",
)
CALLCC_ONLY = ("store_sqlite", "store_postgresql")
"""approval_cycle with callcc's run stores, a checkpoint at every step (no peer equivalent)."""
CALLCC = ("callcc", "callcc_sync", "callcc_eager")
"""callcc on its production path (awaited on a running event loop, an async model client: the
headline every ratio is to), through its sync API (a loop entered per call), and on its eager
path (scripted models only; see callcc_worker)."""
PEERS = ("langgraph", "openai_agents", "pydantic_ai")
SYSTEMS = (*CALLCC, *PEERS)
ROUNDS = 5


@dataclass(frozen=True)
class Plan:
    """How much to run."""

    iterations: int = 1000
    """Timed iterations per workload and system, after warm-up."""
    held: int = 10_000
    """Suspended runs held in memory per system."""
    workloads: tuple[str, ...] = WORKLOADS
    systems: tuple[str, ...] = SYSTEMS


@dataclass
class Worker:
    """One system's worker process, speaking `bench/peers/worker.py`'s protocol."""

    system: str
    server: str
    proc: subprocess.Popen[str] = field(init=False)

    def __post_init__(self) -> None:
        ours = self.system in CALLCC
        python = sys.executable if ours else str(venvs.python(self.system))
        module = "bench.peers.callcc_worker" if ours else f"bench.peers.{self.system}_worker"
        path = {"callcc_eager": ["--eager"], "callcc_sync": ["--sync"]}.get(self.system, [])
        self.proc = subprocess.Popen(
            [python, "-m", module, "--server", self.server, *path],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"},
        )

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.system} worker died (see its stderr above)")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.system} failed {request}:\n{answer['error']}")
        return answer

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.write('{"op": "quit"}\n')
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run(plan: Plan, log: TextIO) -> dict[str, Any]:
    """Every workload of the plan on every system; the results document."""
    for system in plan.systems:
        if system not in CALLCC:
            venvs.ensure(system, log=lambda m: print(m, file=log))
    with ScriptServer() as server:
        workers = {s: Worker(s, server.base_url) for s in plan.systems}
        try:
            results = {
                w: _workload(
                    w,
                    {s: workers[s] for s in CALLCC if s in workers}
                    if w in CALLCC_ONLY
                    else workers,
                    plan,
                    log,
                )
                for w in plan.workloads
            }
            held = _held(workers, plan, log) if "approval_cycle" in plan.workloads else None
        finally:
            for worker in workers.values():
                worker.close()
    return {
        "machine": report.machine(),
        "commit": report.git_commit(ROOT),
        "versions": _versions(plan.systems),
        "plan": {"iterations": plan.iterations, "rounds": ROUNDS, "held": plan.held},
        "workloads": results,
        "held": held,
    }


def _workload(
    name: str, workers: dict[str, Worker], plan: Plan, log: TextIO
) -> dict[str, dict[str, Any]]:
    print(f"{name}: {plan.iterations} iterations x {len(workers)} systems", file=log, flush=True)
    rows: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[float]] = {}
    per_round = max(1, plan.iterations // ROUNDS)
    warmup = max(5, per_round // 10)
    order = list(workers)
    for i in range(ROUNDS):
        for system in order[i % len(order) :] + order[: i % len(order)]:
            if "unsupported" in rows.get(system, {}):
                continue
            answer = workers[system].ask(op="time", workload=name, n=per_round, warmup=warmup)
            if "unsupported" in answer:
                rows[system] = answer
                continue
            samples.setdefault(system, []).extend(answer["samples"])
            rows.setdefault(system, {})["state_bytes"] = answer["state_bytes"]
    for system, row in rows.items():
        if system in samples:
            assert len(samples[system]) == per_round * ROUNDS, (system, len(samples[system]))
            row.update(report.summary(samples[system]), iterations=len(samples[system]))
            row["peak_bytes"] = workers[system].ask(op="peak", workload=name)["peak_bytes"]
    base = rows.get("callcc", {}).get("median_us")
    for row in rows.values():
        if base and "median_us" in row:
            row["ratio"] = row["median_us"] / base
    return {s: rows[s] for s in workers if s in rows}


def _held(workers: dict[str, Worker], plan: Plan, log: TextIO) -> dict[str, Any]:
    print(f"held: {plan.held:,} suspended runs per system", file=log, flush=True)
    systems = {
        s: w.ask(op="hold", workload="approval_cycle", n=plan.held) for s, w in workers.items()
    }
    base = systems.get("callcc", {}).get("bytes_per_run")
    live = systems.get("callcc", {}).get("live_per_run")
    for row in systems.values():
        if base:
            row["ratio"] = row["bytes_per_run"] / base
        if live and "live_per_run" in row:
            row["live_ratio"] = row["live_per_run"] / live
    return {"runs": plan.held, "systems": systems}


def _versions(systems: tuple[str, ...]) -> dict[str, dict[str, str]]:
    from importlib.metadata import version

    out = {"callcc": {"callcc": version("callcc"), "openai": version("openai")}}
    out.update({s: venvs.versions(s) for s in systems if s not in CALLCC})
    return out
