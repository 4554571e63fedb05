"""bench/bench_scale.py on tiny sizes: every series runs, verifies its iterations and reports
an exponent; nothing here is timed (speed is the benchmark's business, not the tests')."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from store_fixtures import require_postgres

ROOT = Path(__file__).parent.parent


@pytest.fixture
def bench_scale(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import bench_scale

    return bench_scale


def test_the_growth_exponent_is_the_log_log_slope(bench_scale: object) -> None:
    growth = bench_scale.growth  # type: ignore[attr-defined]
    assert growth([1, 10, 100], [2.0, 20.0, 200.0]) == pytest.approx(1.0)
    assert growth([1, 10, 100], [1.0, 100.0, 10_000.0]) == pytest.approx(2.0)
    assert growth([10, 100], [5.0, 5.0]) == pytest.approx(0.0)


def test_a_series_is_flagged_above_the_limits(bench_scale: object) -> None:
    series = bench_scale.Series  # type: ignore[attr-defined]
    linear = series("turns", "run", sizes=[10, 100], seconds=[1.0, 10.0], per_turn=1.0)
    assert linear.flags() == []
    steep = series("turns", "run", sizes=[10, 100], seconds=[1.0, 20.0], per_turn=1.5)
    assert steep.flags() == ["exponent 1.30 > 1.05", "last/first 10% per turn 1.50 > 1.2"]


def test_the_quick_plan_on_tiny_sizes_runs_every_series_and_verifies_every_iteration(
    bench_scale: object,
) -> None:
    plan = bench_scale.Plan(  # type: ignore[attr-defined]
        depth=(1, 3),
        turns=(5, 20),
        pending=(1, 4),
        history=(5, 20),
        cycles=2,
        seconds=0.0,
        postgres=require_postgres(),
    )
    results = bench_scale.run(plan, log=io.StringIO())  # type: ignore[attr-defined]
    assert [(s.dimension, s.workload) for s in results] == [
        ("depth", "approval cycle"),
        ("turns", "run, in memory"),
        ("turns", "run, SQLite"),
        ("turns", "run, PostgreSQL"),
        ("pending", "suspend"),
        ("pending", "list"),
        ("pending", "decide"),
        ("pending", "resume"),
        ("history", "resume, SQLite"),
        ("history", "resume, PostgreSQL"),
    ]
    for s in results:
        assert s.skipped is None and len(s.seconds) == len(s.sizes) == 2, s
        assert s.checked >= 2 * 3 or (s.dimension == "history" and s.checked == 2 * 2), s
        assert all(t > 0 for t in s.seconds)
    turns = [s for s in results if s.dimension == "turns"]
    assert all(s.per_turn is not None and s.per_turn > 0 for s in turns)
    history = [s for s in results if s.dimension == "history"]
    assert all(s.versus is not None and len(s.versus) == 2 for s in history)
    out = io.StringIO()
    bench_scale.table(results, out)  # type: ignore[attr-defined]
    text = out.getvalue()
    assert text.startswith("machine: ") and "every iteration verified its result" in text
    assert text.count("\n") == len(results) + 3
