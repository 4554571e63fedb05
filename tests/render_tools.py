"""Tool functions of the stacks drawn by the render tests."""

from __future__ import annotations


def echo(text: str) -> str:
    """Return the text."""
    return f"echo: {text}"


def transfer(to: str, amount: int, api_token: str) -> dict[str, object]:
    """Move money (needs approval in the test spec); `api_token` must be drawn as ***."""
    return {"ok": True, "to": to, "amount": amount}
