"""Tools of the refunds example (`refunds.yaml`): a lookup whose errors the model corrects,
and a refund that asks a person itself when the amount is large."""

from __future__ import annotations

from engine import NeedsApproval, RetryWithModel, ToolContext

_ORDERS = {
    "A-10": {"total": 240.0, "paid_with": "card"},
    "A-11": {"total": 35.0, "paid_with": "card"},
}
ASK_ABOVE = 100.0
"""Refunds above this many EUR need a person."""


def find_order(order_id: str) -> dict[str, object]:
    """Look an order up; an unknown id raises, and the model reads why (`on_error: model`)."""
    order = _ORDERS.get(order_id.strip().upper())
    if order is None:
        raise LookupError(f"no order {order_id!r}; order ids look like A-10")
    return {"order_id": order_id, **order}


def issue_refund(order_id: str, amount: float, ctx: ToolContext) -> dict[str, object]:
    """Refund `amount` EUR of an order: never more than it cost (the model is told so), and
    above 100 EUR only once a person approved it."""
    order = _ORDERS.get(order_id)
    if order is None:
        raise RetryWithModel(f"no order {order_id!r}: look it up with find_order first")
    if amount > float(str(order["total"])):
        raise RetryWithModel(f"order {order_id} cost {order['total']} EUR: refund at most that")
    if amount > ASK_ABOVE and not ctx.approved:
        raise NeedsApproval(
            prompt=f"Refund {amount:g} EUR to the {order['paid_with']} that paid order {order_id}?",
            arguments={"order_id": order_id, "amount": amount},
            reason=f"refunds above {ASK_ABOVE:g} EUR need a person",
        )
    return {"order_id": order_id, "refunded": amount, "status": "refunded"}
