"""Deciding K pending calls (issue 13 item 1): one turn of K approval-gated calls, decided
through `approve_all()`, a `decide_many` batch of mixed decisions, and K one-by-one
`approve(id)` calls, for K = 1, 10, 100 and 1,000; with the growth exponent of each (the
slope of log time over log K from 100 to 1,000, and fitted over all four), flagged above 1.05.

    .venv/bin/python -m bench.bench_decide

Each figure is the median of several repeats of the CPU time the deciding thread spends (on a
shared machine, wall time charges a long repeat for the other processes that preempt it, which
inflates the exponent), with the garbage collector paused as `timeit` pauses it; every repeat
decides a continuation freshly parsed from JSON (not timed), so no index built by an earlier
repeat is reused.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.bench_loop import machine
from engine import Continuation, Decide, Runtime, Suspended
from engine.models.scripted import ScriptedModel
from engine.spec.model import (
    Agent,
    Approval,
    Limits,
    PythonTool,
    Spec,
)
from engine.spec.model import (
    ScriptedModel as ScriptedModelSpec,
)

SIZES = (1, 10, 100, 1000)
FLAG = 1.05


def waiting(k: int) -> str:
    """The JSON of a run suspended on `k` approval-gated calls of one turn."""
    tool = PythonTool(
        name="transfer",
        description="Move money.",
        ref="bench.bench_tools:transfer",
        approval=Approval(required=True, decisions=("approve", "edit", "reject")),
    )
    agent = Agent(
        name="bank",
        model="scripted",
        instructions="Pay.",
        tools=("transfer",),
        limits=Limits(max_tool_calls=k),
    )
    spec = Spec(
        spec_version=1,
        name="decide",
        path=str(Path(__file__).resolve().parent.parent / "bench.yaml"),
        entrypoint="bank",
        models={"scripted": ScriptedModelSpec(name="scripted", script="unused.yaml")},
        tools={"transfer": tool},
        agents={"bank": agent},
        digest="sha256:bench",
    )
    calls = [
        {"id": f"t{i}", "name": "transfer", "arguments": {"to": "bob", "amount": i}}
        for i in range(k)
    ]
    script = {"script_version": 1, "agents": {"bank": [{"tool_calls": calls}, {"text": "ok"}]}}
    runtime = Runtime(spec, model_override=ScriptedModel.from_data(script, source="bench"))
    outcome = runtime.run("Pay", run_id=f"decide-{k}")
    assert isinstance(outcome, Suspended), outcome
    return outcome.continuation.to_json()


def _approve_all(document: Continuation) -> Continuation:
    return document.approve_all()


def _batch(document: Continuation) -> Continuation:
    items = [
        Decide.approve(p.id) if i % 2 else Decide.reject(p.id, "not this one")
        for i, p in enumerate(document.pending())
    ]
    return document.decide_many(items)


def _one_by_one(document: Continuation) -> Continuation:
    for view in document.pending():
        document = document.approve(view.id)
    return document


WAYS: dict[str, Callable[[Continuation], Continuation]] = {
    "approve_all()": _approve_all,
    "decide_many (mixed)": _batch,
    "one by one approve(id)": _one_by_one,
}


def _once_ms(text: str, decide: Callable[[Continuation], Continuation]) -> float:
    document = Continuation.from_json(text)
    gc.collect()
    gc.disable()  # as timeit does: a collection is the heap's cost, not the decisions'
    try:
        started = time.thread_time()
        decided = decide(document)
        spent = time.thread_time() - started
    finally:
        gc.enable()
    assert all(p.decision is not None for p in decided.pending())
    return spent * 1000


def exponents(ms: dict[int, float]) -> tuple[float, float]:
    """The slope of log time over log K from 100 to 1,000, and the least-squares slope over
    every K."""
    tail = math.log(ms[1000] / ms[100]) / math.log(10)
    xs = [math.log(k) for k in ms]
    ys = [math.log(t) for t in ms.values()]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    fit = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return tail, fit


def measure(repeats: int = 15) -> dict[str, dict[int, float]]:
    """Median milliseconds of each way of deciding, by K; every repeat measures every way and
    every K in turn, so a change in the machine's load falls on all of them alike."""
    texts = {k: waiting(k) for k in SIZES}
    samples: dict[str, dict[int, list[float]]] = {name: {k: [] for k in SIZES} for name in WAYS}
    for _ in range(repeats):
        for name, way in WAYS.items():
            for k in SIZES:
                samples[name][k].append(_once_ms(texts[k], way))
    return {
        name: {k: statistics.median(times) for k, times in by_k.items()}
        for name, by_k in samples.items()
    }


def main() -> int:
    """Print the table; 1 when an exponent from 100 to 1,000 is above 1.05."""
    results = measure()
    print(f"machine: {machine()}")
    heads = "".join(f"{f'K={k:,}':>11}" for k in SIZES)
    print(f"{'deciding K calls (ms, median)':<28}{heads}{'exp 100-1k':>12}{'fit 1-1k':>10}")
    worst = 0.0
    for name, ms in results.items():
        tail, fit = exponents(ms)
        worst = max(worst, tail)
        cells = "".join(f"{ms[k]:>11.3f}" for k in SIZES)
        flag = "  !" if tail > FLAG else ""
        print(f"{name:<28}{cells}{tail:>12.2f}{fit:>10.2f}{flag}")
    return 1 if worst > FLAG else 0


if __name__ == "__main__":
    sys.exit(main())
