"""Tool functions of the stacks drawn by the render tests."""

from __future__ import annotations


def echo(text: str) -> str:
    """Return the text."""
    return f"echo: {text}"


def transfer(to: str, amount: int, api_token: str) -> dict[str, object]:
    """Move money (needs approval in the test spec); `api_token` must be drawn as ***."""
    return {"ok": True, "to": to, "amount": amount}


def lookup_order(order: str) -> dict[str, object]:
    """The order a refund is about; `card_token` must be drawn as ***."""
    return {"order": order, "total": 80, "currency": "EUR", "card_token": "tok_4242"}


def issue_refund(order: str, amount: int) -> str:
    """Refund part of an order (needs approval in the test spec, with no prompt)."""
    return f"refunded {amount} EUR on {order}"
