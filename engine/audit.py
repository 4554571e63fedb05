"""The entries of a run's audit trail (`engine.store.base.AuditEntry`): who acted, and how a
decision, a start, a resume and an end of a run are written down.

A runtime with a store writes `started`, `resumed` (with a `decided` entry before it for each
decision that was not recorded in the store beforehand) and the end of a run (`finished`,
`failed`, `stopped`); `engine.inbox` writes `decided` and `expired` with the decisions it
records. The acting user is whoever the caller names: the service's signed-in user, the CLI's
`os:LOGIN` (`os_user`), `callcc` for what callcc does on its own (expiry).
"""

from __future__ import annotations

import getpass
import os
from typing import Any

from engine.store.base import AuditEntry

CALLCC_USER = "callcc"
"""The user of what callcc does by itself: expiring undecided calls, resuming after."""


def os_user() -> str:
    """`os:NAME`, this process's login name: who acts when no user is named."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        name = f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"os:{name}"


def decision_entry(
    *,
    run_id: str,
    at: float,
    user: str,
    path: str,
    call_id: str,
    tool: str | None,
    fingerprint: str,
    arguments: dict[str, Any] | None,
    decision: dict[str, Any],
    action: str = "decided",
) -> AuditEntry:
    """The entry of one decision: `decision` as a `RecordedDecision` holds it (`{"kind",
    "reason"?, "arguments"?, "result"?, "turns"?, "scope"?, "where"?}`), `arguments` the
    call's arguments the decider saw (kept as `before`, with the edited ones as `after`, for
    an edit); a decision of scope `run` keeps `{"scope": "run", "where"?}` as its `detail`."""
    kind = decision["kind"]
    detail: dict[str, Any] | None = None
    if kind == "answer":
        detail = {"result": decision.get("result")}
    elif kind == "extend":
        detail = {"turns": decision.get("turns")}
    if decision.get("scope") == "run":  # the decision grants for the run (`engine.grants`)
        detail = {"scope": "run"}
        if decision.get("where") is not None:
            detail["where"] = decision["where"]
    return AuditEntry(
        run_id=run_id,
        at=at,
        user=user,
        action=action,
        path=path,
        call_id=call_id,
        tool=tool,
        fingerprint=fingerprint,
        decision=kind,
        reason=decision.get("reason") if kind == "reject" else None,
        before=arguments if kind == "edit" else None,
        after=decision.get("arguments") if kind == "edit" else None,
        detail=detail,
    )


def run_entry(
    run_id: str, action: str, *, user: str, at: float, reason: str | None = None
) -> AuditEntry:
    """The entry of a run's start, resume or end (`reason`: why it failed)."""
    return AuditEntry(run_id=run_id, at=at, user=user, action=action, reason=reason)
