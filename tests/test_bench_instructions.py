"""bench/bench_instructions.py's child runs each workload on each path (the counting itself,
under valgrind, is the benchmark's business: nothing here is timed or counted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("workload", ["approval_cycle:sync", "nested_approval:service"])
def test_the_child_runs_the_iterations_it_is_asked_for(workload: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_instructions", "--child", workload, "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_an_unknown_path_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_instructions", "--child", "long_loop:fast", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0


def test_an_unknown_workload_is_refused_before_anything_is_counted() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_instructions", "long_loop:fast"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "expected one of approval_cycle:sync" in done.stdout
