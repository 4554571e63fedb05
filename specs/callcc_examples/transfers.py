"""Tools of the transfers example (`transfers.yaml`)."""

from __future__ import annotations


def transfer(
    to_account: str, amount: float, currency: str = "EUR", memo: str = ""
) -> dict[str, object]:
    """Pretend to send money and return the receipt."""
    return {
        "to": to_account,
        "amount": amount,
        "currency": currency,
        "memo": memo,
        "status": "sent",
    }
