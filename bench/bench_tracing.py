"""What tracing costs: bench_loop's workloads untraced and traced (the real OpenTelemetry SDK,
every span handed to an in-memory exporter that is emptied between samples).

Both runtimes run in the same process, alternating in rounds, so machine drift hits both
alike; figures are medians. An untraced runtime has no observer, so its figures are
bench_loop's.

    .venv/bin/python -m bench.bench_tracing
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.bench_loop import SCRIPT, TURNS, _spec, callcc_cycle, callcc_loop, machine
from engine.models.scripted import ScriptedModel
from engine.runtime import Runtime


def measure(rounds: int = 20) -> dict[str, float]:
    """Medians in microseconds: the approval cycle and one model turn, each both ways."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    model = ScriptedModel.from_data(SCRIPT, source="bench")
    plain = Runtime(_spec(), model_override=model, tracing=False)
    traced = Runtime(_spec(), model_override=model, tracing=provider)
    jobs: dict[str, tuple[Callable[[], None], int]] = {
        "cycle": (lambda: callcc_cycle(plain), 100),
        "cycle_traced": (lambda: callcc_cycle(traced), 100),
        "loop": (lambda: callcc_loop(plain), 10),
        "loop_traced": (lambda: callcc_loop(traced), 10),
    }
    samples: dict[str, list[float]] = {name: [] for name in jobs}

    def timed(fn: Callable[[], None], repeat: int) -> list[float]:
        out = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
            exporter.clear()
        return out

    for fn, repeat in jobs.values():  # warm-up
        timed(fn, repeat)
    for _ in range(rounds):
        for name, (fn, repeat) in jobs.items():
            samples[name].extend(timed(fn, repeat))
    plain.close()
    traced.close()
    provider.shutdown()
    med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
    return {
        "cycle_us": med["cycle"],
        "cycle_traced_us": med["cycle_traced"],
        "turn_us": med["loop"] / (TURNS + 1),
        "turn_traced_us": med["loop_traced"] / (TURNS + 1),
    }


def main() -> None:
    """Print the table."""
    r = measure()
    print(f"machine: {machine()}")
    print(f"{'workload':<34}{'untraced':>12}{'traced':>12}{'ratio':>8}")
    for label, key in (
        ("approval cycle (us, median)", "cycle"),
        ("per model turn (us, median)", "turn"),
    ):
        plain, traced = r[f"{key}_us"], r[f"{key}_traced_us"]
        print(f"{label:<34}{plain:>12.1f}{traced:>12.1f}{traced / plain:>8.2f}")


if __name__ == "__main__":
    main()
