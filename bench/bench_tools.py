"""Cheap tools for the loop benchmarks (no I/O: the framework's own cost is what is measured)."""


def transfer(to: str, amount: int) -> str:
    """Pretend to move money."""
    return f"sent {amount} to {to}"


def echo(text: str) -> str:
    """Return the text."""
    return text
