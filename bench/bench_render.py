"""Benchmark: draw a suspended stack of 50 frames holding 1,000 messages.

Run: `.venv/bin/python -m bench.bench_render`. Times building the networkx graph (goal under
20 ms) and rendering it to SVG through Graphviz `dot` (goal under 2 s); prints the medians of
several runs with the machine they ran on.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from engine.continuation import Continuation
from engine.frames import CallStatus, Frame, Pending
from engine.render import render, stack_graph, to_dot

FRAMES = 50
MESSAGES = 1_000
RUNS = 9


def build_stack(frames: int = FRAMES, messages: int = MESSAGES) -> Continuation:
    """A chain of `frames` frames, each with `messages // frames` messages and a few ledger
    entries; the deepest waits for an approval."""
    per = messages // frames
    child: Frame | None = None
    for depth in reversed(range(frames)):
        msgs: list[dict[str, Any]] = []
        ledger: dict[str, CallStatus] = {}
        for i in range(per - 1):
            if i % 2 == 0:
                msgs.append({"role": "user", "content": f"request {depth}.{i} " + "words " * 40})
            else:
                call_id = f"c{depth}_{i}"
                statuses: tuple[CallStatus, ...] = ("done", "rejected", "failed")
                ledger[call_id] = statuses[i % 3]
                msgs.append(
                    {
                        "role": "assistant",
                        "content": "thinking " * 30,
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": "lookup", "arguments": '{"key": "k"}'},
                            }
                        ],
                    }
                )
        call = f"call_{depth}"
        msgs.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": call,
                        "type": "function",
                        "function": {"name": "delegate", "arguments": '{"request": "next"}'},
                    }
                ],
            }
        )
        ledger[call] = "pending"
        frame = Frame(agent=f"agent_{depth}", messages=msgs, turns=per // 2, ledger=ledger)
        if child is not None:
            frame.pending.append(
                Pending.for_call(
                    id=call,
                    reason="subagent",
                    tool="delegate",
                    arguments={"request": "next"},
                    decisions=(),
                    child=child,
                )
            )
        else:
            frame.pending.append(
                Pending.for_call(
                    id=call,
                    reason="approval",
                    tool="transfer",
                    arguments={"to": "bob", "amount": 5},
                    decisions=("approve", "reject"),
                )
            )
        child = frame
    assert child is not None
    return Continuation(run_id="bench", spec_name="bench", spec_digest="sha256:0", root=child)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    cont = build_stack()
    count = sum(len(f.messages) for _, f in cont.frames())
    graph = stack_graph(cont)
    dot_version = subprocess.run(["dot", "-V"], capture_output=True, text=True, check=False)
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}, "
        f"{dot_version.stderr.strip()}"
    )
    print(
        f"stack: {len(cont.frames())} frames, {count} messages, "
        f"{graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges"
    )
    build = median_ms(lambda: stack_graph(cont), RUNS * 5)
    dot = median_ms(lambda: to_dot(graph), RUNS * 5)
    svg = median_ms(lambda: render(stack_graph(cont), "svg"), RUNS)
    print(f"networkx graph build: {build:8.2f} ms median of {RUNS * 5}  (goal < 20 ms)")
    print(f"DOT text:             {dot:8.2f} ms median of {RUNS * 5}")
    print(f"SVG (build+dot+render): {svg:6.0f} ms median of {RUNS}  (goal < 2000 ms)")


if __name__ == "__main__":
    main()
