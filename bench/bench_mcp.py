"""MCP tool calls: what callcc adds to a call, and what a stdio server costs a run.

    .venv/bin/python -m bench.bench_mcp [--calls N] [--rounds R]

Over the example ledger server (specs/callcc_examples/ledger_server.py, stdio), in one
process, alternating round by round:

- bare: an open `ClientSession` calling `lookup` N times in a loop; the time per call.
- callcc: a run of a scripted agent whose N turns each call `ledger_lookup` (read-only: no
  approval); the time from the first call's end to the last's, divided by N - 1 (an observer
  notes when each `ToolFinished` arrives): a call through the whole loop (a model turn,
  sorting, the runner, the tool message), without the server's start-up.
- start-up: that run that answers at once, whole: starting the server, initializing, listing
  its tools and stopping it, which every run (and every resume) of a spec with a stdio server
  pays once.

Medians of R rounds; the ratio callcc / bare is the figure the README quotes (goal <= 1.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from bench.bench_loop import machine
from engine.events import ToolFinished
from engine.runtime import Finished, Runtime
from engine.spec import load_spec

SERVER = Path(__file__).resolve().parent.parent / "specs" / "callcc_examples" / "ledger_server.py"


def _spec(folder: Path, calls: int) -> Path:
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"id": f"c{i}", "name": "ledger_lookup", "arguments": {"account": "a"}}]}
        for i in range(calls)
    ]
    turns.append({"text": "done"})
    script = folder / f"bench{calls}.script.yaml"
    script.write_text(yaml.safe_dump({"script_version": 1, "agents": {"keeper": turns}}))
    spec = {
        "spec_version": 1,
        "name": "bench_mcp",
        "models": {"scripted": {"kind": "scripted", "script": script.name}},
        "tools": {
            "ledger": {
                "kind": "mcp",
                "command": ["python", str(SERVER)],
                "env": {"LEDGER_DB": str(folder / "ledger.json")},
            }
        },
        "agents": {
            "keeper": {
                "model": "scripted",
                "instructions": "Look things up.",
                "tools": ["ledger"],
                "limits": {"max_turns": calls + 1},
            }
        },
        "entrypoint": "keeper",
    }
    path = folder / f"bench{calls}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


async def _bare(calls: int, folder: Path) -> float:
    """Seconds per `call_tool` over an open session."""
    params = StdioServerParameters(
        command=sys.executable, args=[str(SERVER)], env={"LEDGER_DB": str(folder / "ledger.json")}
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        await session.call_tool("lookup", {"account": "a"})  # warm
        started = time.perf_counter()
        for _ in range(calls):
            await session.call_tool("lookup", {"account": "a"})
        return (time.perf_counter() - started) / calls


async def _run(runtime: Runtime) -> float:
    started = time.perf_counter()
    out = await runtime.arun("look up a")
    assert isinstance(out, Finished), out
    return time.perf_counter() - started


class _Stamps:
    """When each tool call of a run finished."""

    def __init__(self) -> None:
        self.at: list[float] = []

    def on_event(self, event: Any) -> None:
        if isinstance(event, ToolFinished):
            self.at.append(time.perf_counter())


def measure(calls: int, rounds: int) -> dict[str, float]:
    """Medians: bare and callcc seconds per call, their ratio, start-up seconds per run."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stamps = _Stamps()
        many = Runtime(load_spec(_spec(folder, calls)), observers=[stamps])
        none = Runtime(load_spec(_spec(folder, 0)))
        bare: list[float] = []
        per_call: list[float] = []
        startup: list[float] = []

        async def rounds_of() -> None:
            await _run(none)  # warm both paths once
            for _ in range(rounds):
                bare.append(await _bare(calls, folder))
                startup.append(await _run(none))
                stamps.at.clear()
                await _run(many)
                per_call.append((stamps.at[-1] - stamps.at[0]) / (len(stamps.at) - 1))

        asyncio.run(rounds_of())
    b, c = statistics.median(bare), statistics.median(per_call)
    return {"bare": b, "callcc": c, "ratio": c / b, "startup": statistics.median(startup)}


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_mcp")
    parser.add_argument("--calls", type=int, default=200, help="tool calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (medians)")
    args = parser.parse_args(argv)
    r = measure(args.calls, args.rounds)
    print(f"machine: {machine()}")
    print(f"{args.calls} calls a round, medians of {args.rounds} rounds, stdio ledger server")
    print(f"bare ClientSession.call_tool   {r['bare'] * 1e3:8.3f} ms/call")
    print(f"callcc (loop + runner)         {r['callcc'] * 1e3:8.3f} ms/call")
    print(f"ratio callcc / bare            {r['ratio']:8.2f}x   (goal <= 1.5x)")
    print(f"stdio server start-up per run  {r['startup'] * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
