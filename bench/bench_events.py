"""What watching a run costs: bench_loop's workloads unobserved and with one no-op observer.

Both runtimes run in the same process, alternating in rounds, so machine drift hits both
alike; figures are medians. A run nobody observes builds no event at all, so its figures are
bench_loop's.

    .venv/bin/python -m bench.bench_events
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.bench_loop import SCRIPT, TURNS, _spec, callcc_cycle, callcc_loop, machine
from engine.events import RunEvent
from engine.models.scripted import ScriptedModel
from engine.runtime import Runtime


def _ignore(event: RunEvent) -> None:
    """The cheapest observer."""


def _time(fn: Callable[[], None], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def measure(rounds: int = 20) -> dict[str, float]:
    """Medians in microseconds: the approval cycle and one model turn, each both ways."""
    model = ScriptedModel.from_data(SCRIPT, source="bench")
    plain = Runtime(_spec(), model_override=model)
    watched = Runtime(_spec(), model_override=model, observers=[_ignore])
    jobs: dict[str, tuple[Callable[[], None], int]] = {
        "cycle": (lambda: callcc_cycle(plain), 100),
        "cycle_observed": (lambda: callcc_cycle(watched), 100),
        "loop": (lambda: callcc_loop(plain), 10),
        "loop_observed": (lambda: callcc_loop(watched), 10),
    }
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for fn, repeat in jobs.values():  # warm-up
        _time(fn, repeat)
    for _ in range(rounds):
        for name, (fn, repeat) in jobs.items():
            samples[name].extend(_time(fn, repeat))
    plain.close()
    watched.close()
    med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
    return {
        "cycle_us": med["cycle"],
        "cycle_observed_us": med["cycle_observed"],
        "turn_us": med["loop"] / (TURNS + 1),
        "turn_observed_us": med["loop_observed"] / (TURNS + 1),
    }


def main() -> None:
    """Print the table."""
    r = measure()
    print(f"machine: {machine()}")
    print(f"{'workload':<34}{'unobserved':>12}{'observed':>12}{'ratio':>8}")
    for label, key in (
        ("approval cycle (us, median)", "cycle"),
        ("per model turn (us, median)", "turn"),
    ):
        plain, observed = r[f"{key}_us"], r[f"{key}_observed_us"]
        print(f"{label:<34}{plain:>12.1f}{observed:>12.1f}{observed / plain:>8.2f}")


if __name__ == "__main__":
    main()
