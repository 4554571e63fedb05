"""Benchmark: the cost of forking a 1,000-turn stored run at turn 500 (`Runtime.fork`).

Run: `.venv/bin/python -m bench.bench_fork` (PostgreSQL from `CALLCC_TEST_POSTGRES_URL`,
default the loopback server; skipped with a message when unreachable). For each backend it
stores one run of 1,000 model turns (each calls a python tool, one checkpoint after the reply
and one after the result, and the answer: 2,002 steps), then times, median of `REPEATS`:

- `plan`: reading the run's row and events and working out the fork at the step that closes
  turn 500 (`engine.fork.plan`, nothing written);
- `fork`: the whole `Runtime.fork` at that step, up to the fork waiting again: its row and its
  1,001 copied events written in one transaction, the stack rebuilt and checked, and settled.
  The fork runs under the same spec with `max_turns: 500`, so it suspends on its turn limit
  before any model call: the figure is the fork's own cost, not the 500 turns a model would
  play after it.

Prints the medians with the date, the machine and its load (`uptime`).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from engine import Runtime, Suspended
from engine.fork import plan
from engine.models.scripted import ScriptedModel as ScriptedClient
from engine.spec.model import Agent, Limits, PythonTool, ScriptedModel, Spec
from engine.store import open_store

TURNS = 1_000
AT_TURN = 500
REPEATS = 11
POSTGRES_URL = (
    os.environ.get("CALLCC_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
)


def spec(max_turns: int) -> Spec:
    """One agent calling `callcc_examples.hr:send_email` every turn."""
    here = Path(__file__).resolve().parent.parent / "specs" / "bench.yaml"  # for the tool import
    return Spec(
        spec_version=1,
        name="bench_fork",
        path=str(here),
        entrypoint="clerk",
        models={"scripted": ScriptedModel(name="scripted", script=str(here))},
        tools={
            "send_email": PythonTool(
                name="send_email", description="send", ref="callcc_examples.hr:send_email"
            )
        },
        agents={
            "clerk": Agent(
                name="clerk",
                description="writes",
                model="scripted",
                instructions="Send the emails.",
                tools=("send_email",),
                limits=Limits(max_turns=max_turns, max_tool_calls=10 * TURNS),
            )
        },
        digest=f"sha256:bench-{max_turns}",
    )


def script() -> ScriptedClient:
    email = {"to": "ada@example.com", "subject": "Hello", "body": "A line of text. " * 8}
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"id": f"c{n}", "name": "send_email", "arguments": email}]}
        for n in range(TURNS)
    ]
    return ScriptedClient.from_data(
        {"script_version": 1, "agents": {"clerk": [*turns, {"text": "sent"}]}}
    )


def measure(url: str) -> dict[str, float]:
    """Medians in ms of planning and of making a fork of a stored 1,000-turn run."""
    source = f"long-{uuid.uuid4().hex[:8]}"
    with Runtime(spec(TURNS + 1), model_override=script(), store=url) as rt:
        outcome = rt.run("Send the emails", run_id=source)
        assert outcome.kind == "finished", outcome
    store = open_store(url)
    try:
        events = store.events(source)
        step = _closing(events, AT_TURN)
        planned, forked = [], []
        short = spec(AT_TURN)
        with Runtime(short, model_override=script(), store=store) as rt:
            for _ in range(REPEATS):
                started = time.perf_counter()
                plan(
                    store.get_run(source),
                    store.events(source),
                    step,
                    spec=short,
                    run_id="x",
                    allow_spec_change=True,
                )
                planned.append(time.perf_counter() - started)
                started = time.perf_counter()
                waiting = rt.fork(source, at=step, allow_spec_change=True)
                forked.append(time.perf_counter() - started)
                assert isinstance(waiting, Suspended), waiting
                assert waiting.continuation.pending()[0].reason == "turn_limit"
    finally:
        store.close()
    return {
        "steps": float(len(events)),
        "step": float(step),
        "plan_ms": statistics.median(planned) * 1e3,
        "fork_ms": statistics.median(forked) * 1e3,
    }


def _closing(events: list[Any], turn: int) -> int:
    """The step (from 1) whose tool message closes model turn `turn` of the root frame."""
    seen = 0
    for number, event in enumerate(events, start=1):
        for message in event.data.get("messages", []) if event.kind == "messages" else []:
            if message.get("role") == "tool":
                seen += 1
                if seen == turn:
                    return number
    raise AssertionError(f"the run has no turn {turn}")


def _postgres() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # no driver or no server: both mean skip it
        print(f"postgresql: skipped ({type(exc).__name__}: {exc})")
        return None
    return f"{POSTGRES_URL}?schema=callcc_bench_fork_{uuid.uuid4().hex[:8]}"


def _drop(url: str) -> None:
    import psycopg
    from psycopg import sql

    base, schema = url.split("?schema=")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    """Print the medians, the date and the machine's load."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"uptime: {uptime}")
    print(f"fork of a {TURNS}-turn stored run at turn {AT_TURN}, median of {REPEATS}")
    print(f"{'backend':<12}{'steps':>7}{'at':>7}{'plan ms':>10}{'fork ms':>10}")
    with tempfile.TemporaryDirectory() as folder:
        urls = [("sqlite", f"sqlite:///{folder}/runs.db")]
        postgres = _postgres()
        if postgres is not None:
            urls.append(("postgresql", postgres))
        for name, url in urls:
            try:
                r = measure(url)
            finally:
                if name == "postgresql":
                    _drop(url)
            print(
                f"{name:<12}{r['steps']:>7.0f}{r['step']:>7.0f}"
                f"{r['plan_ms']:>10.1f}{r['fork_ms']:>10.1f}"
            )
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime after: {uptime}")


if __name__ == "__main__":
    main()
