"""Tools that ask for approval themselves, fail, or tell the model what to correct; every
call is recorded (in `CALLS`, and in the file CALLCC_TEST_LOG names, for subprocess tests)
so tests prove what ran and how often."""

from __future__ import annotations

import json
import os
from typing import Any

from engine import NeedsApproval, RetryWithModel, ToolContext

CALLS: list[tuple[str, dict[str, Any], bool]] = []
"""(tool, arguments, ctx.approved) of every call, in order."""
ORDERS = {"A-1": 40.0, "A-2": 900.0}


def _record(name: str, arguments: dict[str, Any], approved: bool = False) -> None:
    CALLS.append((name, arguments, approved))
    log = os.environ.get("CALLCC_TEST_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps([name, arguments, approved]) + "\n")


def issue_refund(order_id: str, amount: float, ctx: ToolContext) -> str:
    """Refund an order; above 100 it asks a person first, capped at what the order cost."""
    _record("issue_refund", {"order_id": order_id, "amount": amount}, ctx.approved)
    if order_id not in ORDERS:
        raise LookupError(f"no order {order_id}")
    if amount > 100 and not ctx.approved:
        capped = min(amount, ORDERS[order_id])
        raise NeedsApproval(
            prompt=f"Refund {capped:g} EUR for order {order_id}?",
            arguments={"order_id": order_id, "amount": capped},
            reason="refunds above 100 EUR need a person",
        )
    return f"refunded {amount:g} EUR for {order_id}"


def always_asks(order_id: str) -> str:
    """A faulty tool: it asks even once approved (it cannot know: no ToolContext)."""
    _record("always_asks", {"order_id": order_id})
    raise NeedsApproval(prompt="again?")


def asks_badly(order_id: str) -> str:
    """A faulty tool: it asks to act on arguments that do not fit its parameters."""
    _record("asks_badly", {"order_id": order_id})
    raise NeedsApproval(arguments={"order": order_id})


def asks_in_numbers(order_id: str) -> str:
    """A faulty tool: its question is not text (the document holds only text there)."""
    _record("asks_in_numbers", {"order_id": order_id})
    raise NeedsApproval(prompt=123)  # type: ignore[arg-type]


def defers_in_numbers(order_id: str) -> str:
    """A faulty tool: it defers with a reason that is not text."""
    from engine import Deferred

    _record("defers_in_numbers", {"order_id": order_id})
    raise Deferred(456)  # type: ignore[arg-type]


def retries_in_numbers(order_id: str) -> str:
    """Tells the model a number rather than text (read as the text a result would be)."""
    _record("retries_in_numbers", {"order_id": order_id})
    raise RetryWithModel(7)  # type: ignore[arg-type]


def find_order(order_id: str) -> str:
    """Look an order up; an unknown one is an error the model can correct."""
    _record("find_order", {"order_id": order_id})
    if order_id not in ORDERS:
        raise KeyError(order_id)
    return f"order {order_id}: {ORDERS[order_id]:g} EUR"


def check_iban(iban: str) -> str:
    """Tell the model exactly what is wrong with an IBAN."""
    _record("check_iban", {"iban": iban})
    if not iban.startswith("DE"):
        raise RetryWithModel(f"{iban!r} is no German IBAN: it must start with DE; ask the user")
    return "valid"


class ProcessDied(BaseException):
    """Stands for the death of the process mid-call: nothing in callcc catches it."""


def dies(order_id: str) -> str:
    """Its process dies while it runs (the side effect may or may not have happened)."""
    _record("dies", {"order_id": order_id})
    raise ProcessDied(order_id)


async def stalls(order_id: str) -> str:
    """Never answers in time (its spec gives it a timeout)."""
    import asyncio

    _record("stalls", {"order_id": order_id})
    await asyncio.Event().wait()
    return "never"
