"""What one iteration of a peer-benchmark workload costs callcc, counted in instructions.

Wall-clock times on a shared 2-core VM move by tens of percent from one minute to the next;
`valgrind --tool=callgrind` counts the instructions a process runs, which repeat to a fraction
of a percent however loaded the machine is. Each figure is the difference between a process
that runs `MANY` iterations and one that runs `FEW` (start-up, imports and warm-up cancel
out), divided by `MANY - FEW`.

    .venv/bin/python -m bench.bench_instructions            # every workload, both paths
    .venv/bin/python -m bench.bench_instructions approval_cycle:service

A workload is `NAME:PATH`, NAME one of `bench/peers/callcc_worker.py`'s (approval_cycle,
nested_approval, long_loop) and PATH `service` (awaited on a running loop, the headline) or
`sync` (the sync API).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = [
    f"{name}:{path}"
    for name in ("approval_cycle", "nested_approval", "long_loop")
    for path in ("sync", "service")
]
WARMUP, FEW, MANY = 20, 20, 220


def iterate(workload: str, n: int) -> None:
    """Run `WARMUP` and then `n` iterations of `workload` (the child's side)."""
    name, _, path = workload.partition(":")
    if path not in ("sync", "service"):
        raise SystemExit(f"{workload!r}: expected NAME:sync or NAME:service")
    if path == "sync":
        sys.argv.append("--sync")  # read when the worker module is imported
    from bench.peers import callcc_worker

    made = callcc_worker.make(name, None)
    assert not isinstance(made, str)
    if path == "sync":
        for _ in range(WARMUP + n):
            made.cycle()
        return
    acycle = made.acycle
    assert acycle is not None

    async def many() -> None:
        for _ in range(WARMUP + n):
            await acycle()

    asyncio.run(many())


def instructions(workload: str, n: int) -> int:
    """The instructions a child process running `n` iterations of `workload` executes."""
    child = [sys.executable, "-m", "bench.bench_instructions", "--child", workload, str(n)]
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *child],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"valgrind reported no count for {workload}:\n{done.stderr}")
    return int(found.group(1))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        iterate(argv[1], int(argv[2]))
        return 0
    unknown = [w for w in argv if w not in WORKLOADS]
    if unknown:
        print(f"unknown workload {unknown[0]!r}; expected one of {', '.join(WORKLOADS)}")
        return 2
    for workload in argv or WORKLOADS:
        per = (instructions(workload, MANY) - instructions(workload, FEW)) / (MANY - FEW)
        print(f"{workload:<24} {per / 1e6:8.3f} M instructions an iteration", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
