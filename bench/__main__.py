"""callcc side by side with LangGraph, the OpenAI Agents SDK and PydanticAI.

    .venv/bin/python -m bench                  # everything (about 30 minutes on 2 cores)
    .venv/bin/python -m bench --quick          # 100 iterations, 1,000 held runs
    .venv/bin/python -m bench --only long_loop --only langgraph
    .venv/bin/python -m bench --only serve     # bench/bench_serve.py alone

The first run creates bench/.venvs/<peer> with pinned versions (bench/peers/venvs.py). The
table goes to stdout, progress to stderr, the record to bench/results/<date>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from bench import bench_serve
from bench.peers import report, runner

SUITES = {"serve": bench_serve}
"""Benchmarks of their own, run after the peers' table (`--only NAME` runs just them)."""


def main(argv: list[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the plan; 0 when every system verified every workload it supports."""
    out = stdout or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 iterations, 1,000 held runs")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        choices=runner.WORKLOADS + runner.SYSTEMS[1:] + tuple(SUITES),
        help="a workload, another system (callcc_sync, callcc_eager, a peer) or a suite (serve)"
        " to run (repeatable); callcc on its production path, the headline, always runs",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    workloads = tuple(w for w in runner.WORKLOADS if w in args.only) or runner.WORKLOADS
    peers = tuple(s for s in runner.SYSTEMS[1:] if s in args.only) or runner.SYSTEMS[1:]
    plan = runner.Plan(
        iterations=100 if args.quick else 1000,
        held=1000 if args.quick else 10_000,
        workloads=workloads,
        systems=("callcc", *peers),
    )
    suites = [name for name in SUITES if not args.only or name in args.only]
    if not args.only or set(args.only) - set(SUITES):
        results = runner.run(plan, log=sys.stderr)
        report.table(results, out)
        if not args.no_save:
            path = report.write(results, Path(__file__).parent / "results")
            print(f"\nwritten to {path}", file=out)
    for name in suites:
        print(f"\n== {name}", file=out)
        SUITES[name].main(["--quick"] if args.quick else [], stdout=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
