"""Cheap tools for the loop benchmarks (no I/O: the framework's own cost is what is measured)."""

import time


def transfer(to: str, amount: int) -> str:
    """Pretend to move money."""
    return f"sent {amount} to {to}"


def echo(text: str) -> str:
    """Return the text."""
    return text


STAMPS: list[float] = []
"""When each `stamp` call ran (`time.perf_counter()`): bench_scale times every turn by them."""


def stamp(text: str) -> str:
    """Return the text, noting when the call ran."""
    STAMPS.append(time.perf_counter())
    return text
