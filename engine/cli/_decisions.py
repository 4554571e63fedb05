"""What `callcc resume` adds to the decision API: `--patch`, `--reject all`, and the refusal
of a resume that decides nothing."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli._output import describe
from engine.continuation import Continuation, Decide
from engine.errors import UsageError


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396: `patch` merged onto `target` (a copy); `null` removes a member, an object
    merges into an object, anything else replaces. Iterative, so any depth is fine."""
    result = dict(target)
    stack = [(result, patch)]
    while stack:
        into, changes = stack.pop()
        for key, value in changes.items():
            if value is None:
                into.pop(key, None)
            elif isinstance(value, dict):
                inner = into.get(key)
                merged = dict(inner) if isinstance(inner, dict) else {}
                into[key] = merged
                stack.append((merged, value))
            else:
                into[key] = value
    return result


def reject_all(continuation: Continuation, reason: str) -> Continuation:
    """Reject every undecided entry that allows `reject` (`--reject all`), in one batch."""
    return continuation.decide_many(
        Decide.reject(view.path, reason)
        for view in continuation.undecided()
        if "reject" in view.decisions
    )


def nothing_decided(continuation: Continuation, args: argparse.Namespace) -> None:
    """Refuse (exit 2) a resume after which no entry has a decision: the run would only
    suspend again, on the same entries; say what waits and what each allows."""
    if any(p.decision is not None for p in continuation.pending()):
        return
    why = []
    for flag, kind in (("--approve", "approve"), ("--reject", "reject")):
        if "all" in getattr(args, flag[2:]):
            why.append(f"{flag} all found no call that allows {kind}")
    reason = "; ".join(why) or "no decision was given"
    raise UsageError(
        f"nothing was decided ({reason}), so the run would only wait again; waiting:\n"
        + describe(continuation.undecided()).rstrip("\n")
    )
