"""bench/bench_serve.py on tiny sizes: both backends run through a real `callcc serve`, every
answer is checked, the table has its rows; nothing here is timed (speed is the benchmark's
business, not the tests')."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from store_fixtures import require_postgres

ROOT = Path(__file__).parent.parent


@pytest.fixture
def bench_serve(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import bench_serve

    return bench_serve


def test_the_percentiles_are_the_median_and_the_99th(bench_serve: object) -> None:
    percentiles = bench_serve.percentiles  # type: ignore[attr-defined]
    samples = [i / 1000 for i in range(1, 101)]  # 1 ms ... 100 ms
    assert percentiles(samples) == pytest.approx((50.5, 99.0))


def test_a_tiny_plan_measures_both_backends_through_http(bench_serve: object) -> None:
    plan = bench_serve.Plan(  # type: ignore[attr-defined]
        decisions=4, rounds=1, stored=120, samples=3, postgres=require_postgres(), thread=True
    )
    results = bench_serve.run(plan, log=io.StringIO())  # type: ignore[attr-defined]
    assert [r.backend for r in results] == ["SQLite", "PostgreSQL"]
    for r in results:
        assert r.skipped is None, r
        assert r.stored == 120, r
        assert r.http_rate > 0 and r.local_rate > 0 and r.ratio > 0
        assert r.checked == 4 * 2 + 4 * 2 + 2 * 3, (
            r
        )  # started + decided, in-process twice, listings
        assert r.recorded_rate > 0
        assert set(r.pending_ms) == {
            "GET /v1/pending",
            "GET /v1/pending?tool=",
            "store.pending(limit=100)",
        }
    out = io.StringIO()
    bench_serve.table(results, plan, out)  # type: ignore[attr-defined]
    text = out.getvalue()
    assert text.startswith("machine: ") and "every answer checked" in text
    assert text.count("\n") == len(results) + 3
