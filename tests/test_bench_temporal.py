"""bench/bench_temporal.py's callcc side on tiny sizes: every figure is there and has the
shape the README's table is made from. Nothing is timed here; the figures are the bench's.

The OpenAI Agents SDK's side is left out: its environment is built from PyPI on first use
(bench/.venvs/openai_agents_temporal), and no test reaches beyond loopback.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import require_postgres

from engine.temporal.devserver import DevServer

ROOT = Path(__file__).parent.parent


def test_callcc_side_of_the_bench_on_tiny_sizes(
    temporal_server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import bench_temporal

    r = bench_temporal.measure(
        1, 2, turns=3, peer=False, address=temporal_server.address, postgres=require_postgres()
    )

    cycle = r["approval_cycle_ms"]
    assert sorted(cycle) == [
        "in_process", "in_process_recorded", "ratio", "recorded_ratio", "temporal",
        "temporal_floor",
    ]  # fmt: skip
    assert all(isinstance(v, float) and v > 0 for v in cycle.values()), cycle
    assert r["cycles_per_side"] == 1
    assert sorted(r["runs_per_second"]) == ["1 worker", "2 workers"]
    assert all(v > 0 for v in r["runs_per_second"].values())
    assert list(r["history"]) == ["callcc"]
    hist: dict[str, dict[str, Any]] = r["history"]["callcc"]
    assert list(hist) == ["approval cycle", "2 turns", "3 turns"]
    for figures in hist.values():
        assert sorted(figures) == ["bytes", "events", "message_bytes"]
        assert all(isinstance(v, int) and v > 0 for v in figures.values()), figures
    # (how many events depends on when the client's update lands: not asserted)
    assert hist["3 turns"]["message_bytes"] > hist["2 turns"]["message_bytes"]
    assert {"machine", "date", "commit", "load_before", "load_after"} <= set(r)

    out = io.StringIO()
    bench_temporal.table(r, out)
    lines = out.getvalue().splitlines()
    assert lines[2:4] == ["| | callcc |", "|---|---|"]
    assert [line.split(" | ")[0] for line in lines[4:]] == [
        "| approval cycle through Temporal (median of 1)",
        "| the same in-process (load_run, approve, resume)",
        "| the same in-process as a worker resumes (recorded, audited)",
        "| Temporal's floor: the same messages, activities that do nothing",
        "| history, approval cycle",
        "| history, 2 turns",
        "| history, 3 turns",
        "| runs/s, 1 worker / 2 workers",
    ]
