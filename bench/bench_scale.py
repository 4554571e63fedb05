"""How callcc's costs grow with size: nesting depth, turns, pending calls, stored history.

    .venv/bin/python -m bench.bench_scale            # the table (about 3 minutes on 2 cores)
    .venv/bin/python -m bench.bench_scale --quick    # a smoke run on small sizes (20 seconds)

For each dimension it times one workload at sizes spanning two or three decades (medians) and
fits the growth exponent: the least-squares slope of log(time) against log(size), 1.0 for
linear. An exponent above 1.05 is flagged, as is a per-turn cost whose last 10% of a long run
is more than 1.2 times its first 10%. Sizes are timed in turn, and the garbage collector is run
(untimed) before each size's samples, so neither the machine's drift nor the garbage one size
leaves is charged to another. Every iteration checks its own result (the final answer, the tool
results the model saw, the decisions that landed, the stored run rebuilt), so a figure never
comes from a run that went wrong.

- depth: a chain of sub-agents `depth` deep with an approval at the bottom: run, suspend,
  to_json, from_json, approve, resume, finish.
- turns: a run of `turns` model turns each calling a tool, in memory, on SQLite and on
  PostgreSQL; the tool notes when it ran, which gives the cost of every turn.
- pending: one turn with `pending` approval-gated calls: suspend (with to_json), list (from_json
  and pending()), decide (approve_all), resume to the end.
- history: a run of `history` turns, then approvals one after another: a stored resume
  (load_run, approve, resume to the next suspension) against the same cycle without a store
  (from_json, approve, resume, to_json), on SQLite and on PostgreSQL.

PostgreSQL comes from CALLCC_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test, in
a schema of its own that is dropped afterwards; without a server its rows say so.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.bench_loop import machine
from engine import Continuation, Finished, Runtime, Suspended
from engine.journal import rebuild
from engine.models.scripted import ScriptedModel
from engine.spec.model import Agent, AgentTool, Approval, Limits, PythonTool, Spec
from engine.spec.model import ScriptedModel as ScriptSpec
from engine.store import open_store

HERE = Path(__file__).parent
LIMIT = 1.05
"""Growth exponents above this are flagged."""
PER_TURN_LIMIT = 1.2
"""A last-10% per-turn cost more than this many times the first 10% is flagged."""
TRANSFER_RESULT = "sent 5 to bob"
POSTGRES_URL = (
    os.environ.get("CALLCC_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Plan:
    """The sizes of every dimension, and how long to spend per size."""

    depth: tuple[int, ...] = (1, 10, 50, 100, 200)
    turns: tuple[int, ...] = (10, 100, 1000, 5000)
    pending: tuple[int, ...] = (1, 10, 100, 1000)
    history: tuple[int, ...] = (100, 1000, 5000)
    cycles: int = 9
    """Approval cycles per history size."""
    seconds: float = 2.0
    """Timing budget per size (at least 3 samples, at most 15)."""
    postgres: str | None = POSTGRES_URL
    """The PostgreSQL server for the stored rows; None leaves them out."""


QUICK = Plan(
    depth=(1, 10, 50),
    turns=(10, 100, 500),
    pending=(1, 10, 100),
    history=(50, 200, 500),
    cycles=3,
    seconds=0.5,
)


@dataclass
class Series:
    """One workload timed at several sizes."""

    dimension: str
    """depth, turns, pending or history."""
    workload: str
    """What was timed."""
    sizes: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    """Median seconds at each size."""
    checked: int = 0
    """Iterations whose result was verified."""
    per_turn: float | None = None
    """Median per-turn cost of the last 10% of the longest runs over their first 10%."""
    versus: list[float] | None = None
    """For history: the median seconds of the same cycle without a store, at each size."""
    skipped: str | None = None
    """Why the series was not measured."""

    @property
    def exponent(self) -> float:
        """The growth exponent (see `growth`)."""
        return growth(self.sizes, self.seconds)

    def flags(self) -> list[str]:
        """What breaks the goals: the exponent, the per-turn drift."""
        out = []
        if self.skipped is None and self.exponent > LIMIT:
            out.append(f"exponent {self.exponent:.2f} > {LIMIT}")
        if self.per_turn is not None and self.per_turn > PER_TURN_LIMIT:
            out.append(f"last/first 10% per turn {self.per_turn:.2f} > {PER_TURN_LIMIT}")
        return out


def growth(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """The least-squares slope of log(seconds) against log(sizes)."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def interleaved(
    jobs: dict[int, Callable[[], Any]], budget: float, *, least: int = 3, most: int = 15
) -> tuple[list[float], int]:
    """Median seconds of each job, and how many jobs ran. The jobs are taken in turn, so the
    machine's drift hits every size alike: each round runs every job once, and a cheap one
    again until it has had about the time of the dearest (at most 20 times); rounds go on
    until `budget` seconds per job are spent (within least..most rounds)."""
    samples: dict[int, list[float]] = {size: [] for size in jobs}
    spent, rounds, ran = 0.0, 0, 0
    while rounds < most and (rounds < least or spent < budget * len(jobs)):
        dearest = max((samples[size][-1] for size in jobs if samples[size]), default=0.0)
        for size, job in jobs.items():
            took = 0.0
            gc.collect()  # untimed: no size pays for the garbage of the one before
            while True:
                began = time.perf_counter()
                job()
                samples[size].append(time.perf_counter() - began)
                took += samples[size][-1]
                ran += 1
                if took >= dearest or len(samples[size]) >= 20 * (rounds + 1):
                    break
            spent += took
        rounds += 1
    return [statistics.median(samples[size]) for size in jobs], ran


# -- specs and scripts -------------------------------------------------------------------------


def _tools() -> dict[str, Any]:
    return {
        "transfer": PythonTool(
            name="transfer",
            description="Move money.",
            ref="bench_tools:transfer",
            approval=Approval(required=True),
        ),
        "stamp": PythonTool(name="stamp", description="Echo.", ref="bench_tools:stamp"),
    }


def _spec(agents: list[Agent], tools: dict[str, Any]) -> Spec:
    return Spec(
        spec_version=1,
        name="bench_scale",
        path=str(HERE / "bench.yaml"),
        entrypoint=agents[0].name,
        models={"m": ScriptSpec(name="m", script="-")},
        tools=tools,
        agents={a.name: a for a in agents},
        digest="sha256:bench-scale",
    )


def _agent(name: str, *tools: str, budget: int = 10) -> Agent:
    return Agent(
        name=name,
        description=name,
        model="m",
        instructions=f"You are {name}.",
        tools=tools,
        limits=Limits(max_turns=budget, max_tool_calls=budget),
    )


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "name": name, "arguments": arguments}


PAY = {"to": "bob", "amount": 5}


def _stamps() -> list[float]:
    """The times the `stamp` tool noted (the module the engine imported it from)."""
    stamps: list[float] = sys.modules["bench_tools"].STAMPS
    return stamps


# -- depth ------------------------------------------------------------------------------------


def depth_cycle(depth: int) -> Callable[[], None]:
    """One approval cycle through `depth` nested sub-agents, checked."""
    names = [f"a{i}" for i in range(depth)]
    agents, tools, turns = [], _tools(), {}
    for i, name in enumerate(names):
        below = names[i + 1] if i + 1 < depth else "transfer"
        if i + 1 < depth:
            tools[below] = AgentTool(name=below, description="delegate", agent=below)
        agents.append(_agent(name, below))
        request = {"request": "pay bob 5"} if i + 1 < depth else PAY
        turns[name] = [{"tool_calls": [_call(f"c{i}", below, request)]}, {"text": f"{name} done"}]
    runtime = Runtime(
        _spec(agents, tools), model_override=ScriptedModel.from_data({"agents": turns})
    )
    expected = TRANSFER_RESULT if depth == 1 else f"{names[1]} done"

    def cycle() -> None:
        outcome = runtime.run("pay bob 5")
        assert isinstance(outcome, Suspended), outcome
        loaded = Continuation.from_json(outcome.continuation.to_json())
        [entry] = loaded.pending()
        assert (entry.tool, entry.arguments, entry.path.count("/")) == ("transfer", PAY, depth)
        final = runtime.resume(loaded.approve(entry.path))
        assert isinstance(final, Finished) and final.output == "a0 done", final
        assert final.messages[-2] == {"role": "tool", "tool_call_id": "c0", "content": expected}

    return cycle


# -- turns ------------------------------------------------------------------------------------


def _looper(turns: int, url: str | None, tail: list[dict[str, Any]]) -> Runtime:
    """A runtime whose `looper` makes `turns` stamped tool calls, then plays `tail`."""
    agent = _agent("looper", "stamp", "transfer", budget=turns + len(tail) + 1)
    script = [{"tool_calls": [_call(f"c{i}", "stamp", {"text": f"t{i}"})]} for i in range(turns)]
    data = {"agents": {"looper": script + tail}}
    return Runtime(
        _spec([agent], _tools()), model_override=ScriptedModel.from_data(data), store=url
    )


def long_run(runtime: Runtime, turns: int) -> list[float]:
    """Run `turns` turns to the answer, checked (also as the store keeps it); the seconds
    of each turn but the first."""
    stamps = _stamps()
    stamps.clear()
    outcome = runtime.run("loop")
    assert isinstance(outcome, Finished) and outcome.output == "done", outcome
    assert len(outcome.messages) == 2 + 2 * turns and len(stamps) == turns
    assert outcome.messages[-2]["content"] == f"t{turns - 1}"
    if runtime.store is not None:
        run, events = runtime.store.snapshot(outcome.run_id)
        assert rebuild(run, events).frames()[0][1].messages == outcome.messages
    return [b - a for a, b in itertools.pairwise(stamps)]


def turns_series(plan: Plan, backend: str, url: str | None) -> Series:
    series = Series("turns", f"run, {backend}", sizes=list(plan.turns))
    gaps: dict[int, list[list[float]]] = {turns: [] for turns in plan.turns}
    runtimes = {turns: _looper(turns, url, [{"text": "done"}]) for turns in plan.turns}

    def job(turns: int) -> Callable[[], None]:
        return lambda: gaps[turns].append(long_run(runtimes[turns], turns))

    try:
        series.seconds, series.checked = interleaved({t: job(t) for t in plan.turns}, plan.seconds)
    finally:
        for runtime in runtimes.values():
            runtime.close()
    longest = gaps[max(plan.turns)]
    tenth = max(1, len(longest[0]) // 10)
    first = [gap for run in longest for gap in run[:tenth]]  # pooled over the runs, so a
    last = [gap for run in longest for gap in run[-tenth:]]  # burst of load in one weighs less
    series.per_turn = statistics.median(last) / statistics.median(first)
    return series


# -- pending calls ----------------------------------------------------------------------------


def pending_steps(count: int) -> dict[str, Callable[[], None]]:
    """One turn with `count` gated calls: the four steps, each checked, run in order."""
    calls = [_call(f"p{i}", "transfer", {"to": f"b{i}", "amount": i}) for i in range(count)]
    script = {"agents": {"payer": [{"tool_calls": calls}, {"text": "paid"}]}}
    agent = _agent("payer", "transfer", budget=count + 2)
    runtime = Runtime(_spec([agent], _tools()), model_override=ScriptedModel.from_data(script))
    state: dict[str, Any] = {}

    def suspend() -> None:
        outcome = runtime.run("pay everyone")
        assert isinstance(outcome, Suspended), outcome
        state["text"] = outcome.continuation.to_json()

    def listing() -> None:
        loaded = Continuation.from_json(state["text"])
        entries = loaded.pending()
        assert [e.id for e in entries] == [c["id"] for c in calls]
        state["loaded"] = loaded

    def decide() -> None:
        decided = state["loaded"].approve_all()
        assert all(e.decision == "approve" for e in decided.pending())
        state["decided"] = decided

    def resume() -> None:
        final = runtime.resume(state["decided"])
        assert isinstance(final, Finished) and final.output == "paid", final
        results = [m["content"] for m in final.messages if m["role"] == "tool"]
        assert results == [f"sent {i} to b{i}" for i in range(count)]

    return {"suspend": suspend, "list": listing, "decide": decide, "resume": resume}


def pending_series(plan: Plan) -> list[Series]:
    """The four steps at every count, the counts taken in turn."""
    steps = ("suspend", "list", "decide", "resume")
    made = {count: pending_steps(count) for count in plan.pending}
    samples = {(count, step): [] for count in plan.pending for step in steps}
    spent, rounds = 0.0, 0
    while rounds < 15 and (rounds < 3 or spent < plan.seconds * len(made)):
        for count, run_steps in made.items():
            for step in steps:
                gc.collect()  # untimed, as in `interleaved`
                began = time.perf_counter()
                run_steps[step]()
                samples[count, step].append(time.perf_counter() - began)
                spent += samples[count, step][-1]
        rounds += 1
    return [
        Series(
            "pending",
            step,
            sizes=list(plan.pending),
            seconds=[statistics.median(samples[count, step]) for count in plan.pending],
            checked=rounds * len(made),
        )
        for step in steps
    ]


# -- stored history ---------------------------------------------------------------------------


@dataclass
class _History:
    """One size of the history series: a stored run and a store-less one, both suspended."""

    stored: Runtime
    plain: Runtime
    run_id: str
    text: str
    """The store-less run's latest continuation, as JSON."""
    done: int = 0
    """Approvals made."""


def _history(turns: int, cycles: int, url: str) -> _History:
    """Both runs of `turns` turns, suspended on the first of `cycles + 1` transfers."""
    tail = [{"tool_calls": [_call(f"pay{i}", "transfer", PAY)]} for i in range(cycles + 1)]
    tail.append({"text": "done"})
    stored, plain = _looper(turns, url, tail), _looper(turns, None, tail)
    run_id = f"history-{turns}-{uuid.uuid4().hex[:8]}"
    assert isinstance(stored.run("loop", run_id=run_id), Suspended)
    first = plain.run("loop")
    assert isinstance(first, Suspended)
    return _History(stored=stored, plain=plain, run_id=run_id, text=first.continuation.to_json())


def _stored_cycle(h: _History) -> Continuation:
    """load_run, approve, resume to the next transfer: the stored resume timed."""
    outcome = h.stored.resume(h.stored.load_run(h.run_id).approve(f"pay{h.done}"))
    assert isinstance(outcome, Suspended), outcome
    return outcome.continuation


def _plain_cycle(h: _History) -> Continuation:
    """from_json, approve, resume, to_json: the same cycle without a store."""
    again = h.plain.resume(Continuation.from_json(h.text).approve(f"pay{h.done}"))
    assert isinstance(again, Suspended), again
    h.text = again.continuation.to_json()
    return again.continuation


def history_series(plan: Plan, backend: str, url: str) -> Series:
    """Stored resumes after `history` turns against the same cycles without a store, the
    sizes taken in turn."""
    runs = {turns: _history(turns, plan.cycles, url) for turns in plan.history}
    samples: dict[tuple[int, str], list[float]] = {
        (turns, kind): [] for turns in plan.history for kind in ("stored", "plain")
    }
    series = Series("history", f"resume, {backend}", sizes=list(plan.history))
    try:
        for _ in range(plan.cycles):
            for turns, h in runs.items():
                gc.collect()  # untimed, as in `interleaved`
                began = time.perf_counter()
                stored = _stored_cycle(h)
                samples[turns, "stored"].append(time.perf_counter() - began)
                gc.collect()
                began = time.perf_counter()
                plain = _plain_cycle(h)
                samples[turns, "plain"].append(time.perf_counter() - began)
                messages = stored.frames()[0][1].messages
                assert messages == plain.frames()[0][1].messages
                assert messages[-2]["content"] == TRANSFER_RESULT  # the approved call's
                h.done += 1
                assert [p.id for p in stored.pending()] == [f"pay{h.done}"]
                series.checked += 1
    finally:
        for h in runs.values():
            h.stored.close()
            h.plain.close()
    series.seconds = [statistics.median(samples[t, "stored"]) for t in plan.history]
    series.versus = [statistics.median(samples[t, "plain"]) for t in plan.history]
    return series


# -- the run ----------------------------------------------------------------------------------


@contextmanager
def stores(plan: Plan) -> Iterator[dict[str, str | None]]:
    """A SQLite file and, when a server answers, a PostgreSQL schema (None: why not)."""
    folder = tempfile.mkdtemp(prefix="callcc-bench-scale-")
    urls: dict[str, str | None] = {"SQLite": f"sqlite:///{folder}/runs.db"}
    schema = f"callcc_scale_{uuid.uuid4().hex[:12]}"
    urls["PostgreSQL"] = None
    if plan.postgres is not None:
        try:
            open_store(f"{plan.postgres}?schema={schema}").close()
            urls["PostgreSQL"] = f"{plan.postgres}?schema={schema}"
        except Exception as exc:  # no server here: the rows say so
            print(f"PostgreSQL left out: {exc}", file=sys.stderr)
    try:
        yield urls
    finally:
        if urls["PostgreSQL"] is not None:
            import psycopg

            with psycopg.connect(plan.postgres or "", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(plan: Plan, log: TextIO = sys.stderr) -> list[Series]:
    """Every series of `plan`, in table order."""
    out: list[Series] = []

    def note(series: Series) -> None:
        out.append(series)
        print(f"  {series.dimension}: {series.workload} done", file=log)

    cycles = {size: depth_cycle(size) for size in plan.depth}
    depth = Series("depth", "approval cycle", sizes=list(plan.depth))
    depth.seconds, depth.checked = interleaved(cycles, plan.seconds)
    note(depth)
    with stores(plan) as urls:
        note(turns_series(plan, "in memory", None))
        for backend, url in urls.items():
            if url is None:
                out.append(Series("turns", f"run, {backend}", skipped="no server"))
            else:
                note(turns_series(plan, backend, url))
        for series in pending_series(plan):
            note(series)
        for backend, url in urls.items():
            if url is None:
                out.append(Series("history", f"resume, {backend}", skipped="no server"))
            else:
                note(history_series(plan, backend, url))
    return out


def table(results: list[Series], out: TextIO) -> int:
    """Print the table; the number of flags raised."""
    print(f"machine: {machine()}", file=out)
    print(
        f"{'dimension':<10}{'workload':<22}{'sizes':>12}{'smallest':>11}{'largest':>11}"
        f"{'exponent':>10}  notes",
        file=out,
    )
    flagged = 0
    for s in results:
        if s.skipped is not None:
            print(f"{s.dimension:<10}{s.workload:<22}{'':>12}  left out: {s.skipped}", file=out)
            continue
        notes = []
        if s.per_turn is not None:
            notes.append(f"per turn, last/first 10%: {s.per_turn:.2f}")
        if s.versus is not None:
            notes.append(
                f"without a store {_ms(s.versus[-1])}, ratio {s.seconds[-1] / s.versus[-1]:.2f}"
            )
        flags = s.flags()
        flagged += len(flags)
        notes.extend(f"FLAG {f}" for f in flags)
        print(
            f"{s.dimension:<10}{s.workload:<22}{f'{s.sizes[0]}-{s.sizes[-1]:,}':>12}"
            f"{_ms(s.seconds[0]):>11}{_ms(s.seconds[-1]):>11}{s.exponent:>10.2f}  "
            + "; ".join(notes),
            file=out,
        )
    verdict = f"{flagged} flagged" if flagged else f"no exponent above {LIMIT}"
    print(f"({verdict}; medians; every iteration verified its result)", file=out)
    return flagged


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def main(argv: list[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the plan and print the table; 0 when nothing is flagged, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_scale", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--no-postgres", action="store_true", help="leave PostgreSQL out")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.no_postgres:
        plan = dataclasses.replace(plan, postgres=None)
    flagged = table(run(plan), stdout or sys.stdout)
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
