"""Tools of the payments example (`payments.yaml`)."""

from __future__ import annotations

_BALANCES = {"acct_alice": 1250.0, "acct_bob": 310.5}


def lookup_balance(account: str) -> dict[str, object]:
    """Return the balance of an account (fixed demo data)."""
    return {"account": account, "balance": _BALANCES.get(account, 0.0), "currency": "EUR"}


def transfer_money(
    from_account: str, to_account: str, amount: float, memo: str = ""
) -> dict[str, object]:
    """Pretend to move money between accounts and return the receipt."""
    return {
        "from": from_account,
        "to": to_account,
        "amount": amount,
        "memo": memo,
        "status": "transferred",
    }
