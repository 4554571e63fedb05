"""The cost of an approval condition per tool call (issue 17): evaluating a compiled
`approval.when` on one call's arguments, as `engine.tooling` does before it gates a call (a
fresh activation of `args`, `agent` and `run` each time), for a simple comparison and for the
README's two-clause example; and compiling one (done once per tool, when a runtime is made).

    .venv/bin/python -m bench.bench_policy

Each figure is the median of 7 repeats of 20,000 evaluations (per call, in microseconds), the
garbage collector paused as `timeit` pauses it. Goal: under 5 µs for a simple comparison.
"""

from __future__ import annotations

import statistics
import timeit

from engine.policy import compile_condition

SIMPLE = "args.amount > 1000"
EXAMPLE = 'args.amount > 1000 || args.currency != "EUR"'
ARGS = {"to_account": "acct_shop", "amount": 950, "currency": "EUR", "memo": "Rent"}
AGENT = {"name": "treasurer", "path": "treasurer"}
RUN = {"id": "0f3c", "turns": 1, "tool_calls": 2}
GOAL_US = 5.0


def per_call(text: str, number: int = 20_000, repeat: int = 7) -> float:
    """Median microseconds of one evaluation of `text`."""
    condition = compile_condition(text)
    assert not condition.evaluate(ARGS, AGENT, RUN).gates
    for _ in range(number):  # warm up: the first thousands of calls run slower
        condition.evaluate(ARGS, AGENT, RUN)
    times = timeit.repeat(
        lambda: condition.evaluate(ARGS, AGENT, RUN), number=number, repeat=repeat
    )
    return statistics.median(times) / number * 1e6


def compile_cost(text: str, number: int = 500, repeat: int = 5) -> float:
    times = timeit.repeat(lambda: compile_condition(text), number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main() -> None:
    simple = per_call(SIMPLE)
    example = per_call(EXAMPLE)
    print(f"evaluate `{SIMPLE}`: {simple:.2f} µs per call (goal < {GOAL_US:g} µs)")
    print(f"evaluate `{EXAMPLE}`: {example:.2f} µs per call")
    print(f"compile `{EXAMPLE}`: {compile_cost(EXAMPLE):.0f} µs, once per tool")
    print("goal met" if simple < GOAL_US else "GOAL MISSED")


if __name__ == "__main__":
    main()
