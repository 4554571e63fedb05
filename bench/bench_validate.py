"""Benchmark: validate and load a generated ~2,000-line spec with 200 agents.

Run: `.venv/bin/python -m bench.bench_validate`. The validator is built once before timing;
the figure printed is the median of the runs, with the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.spec import load_spec, validate_file
from engine.spec.schema import spec_validators

AGENTS = 200
RUNS = 30


def generate(agents: int = AGENTS) -> str:
    """A valid spec: each agent has python tools and calls up to two later agents (a DAG)."""
    out = [
        "spec_version: 1",
        "name: bench",
        "description: Generated for the validation benchmark.",
        "allow_modules: [bench_tools]",
        "models:",
        "  main:",
        "    kind: openai",
        "    model: gpt-4o-mini",
        "    base_url: ${env:BENCH_BASE_URL:-http://127.0.0.1:8080/v1}",
        "    params: {temperature: 0}",
        "tools:",
    ]
    for i in range(agents):
        out += [
            f"  lookup_{i}:",
            "    kind: python",
            f"    ref: bench_tools.mod_{i % 10}:lookup_{i}",
            f"    description: Look up record {i}.",
        ]
        if i % 2 == 0:
            out.append(
                "    parameters: {type: object, properties: {key: {type: string}}, required: [key]}"
            )
        if i > 0:
            out.append(
                f"  call_agent_{i}: {{kind: agent, agent: agent_{i}, description: Ask agent {i}.,"
                " approval: {prompt: 'Run {{ args.request }}?'}}"
            )
    out.append("agents:")
    for i in range(agents):
        children = [c for c in (2 * i + 1, 2 * i + 2) if c < agents]
        tools = [f"lookup_{i}"] + [f"call_agent_{c}" for c in children]
        out += [
            f"  agent_{i}:",
            f"    description: Agent number {i}.",
            "    model: main",
            f"    instructions: You are agent {i}. Use your tools and answer briefly.",
            f"    tools: [{', '.join(tools)}]",
        ]
        if i % 4 == 0:
            out.append(f"    suspend: {{every_turns: 4, before_tools: [lookup_{i}]}}")
    out.append("entrypoint: agent_0")
    return "\n".join(out) + "\n"


def _median_ms(func: object, path: Path) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        func(path)  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    """Generate the spec, time validate_file and load_spec, print the medians."""
    spec_validators()  # built once, outside the timing
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        text = generate()
        path.write_text(text, encoding="utf-8")
        findings = validate_file(path, env={})
        errors = [d for d in findings if d.severity == "error"]
        if errors:
            print("generated spec is invalid:", errors[0], file=sys.stderr)
            return 1
        validate_ms = _median_ms(lambda p: validate_file(p, env={}), path)
        load_ms = _median_ms(lambda p: load_spec(p, env={}), path)
    lines = text.count("\n")
    cpu = platform.processor() or "unknown CPU"
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {cpu}"
    print(f"spec: {lines} lines, {AGENTS} agents; median of {RUNS} runs")
    print(f"validate_file: {validate_ms:.1f} ms")
    print(f"load_spec:     {load_ms:.1f} ms")
    print(f"machine: {machine}, Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
