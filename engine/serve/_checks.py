"""What a decision request must pass before anything is recorded: the item it names exists
(404), the user may decide it (403), it is the item the reviewer saw (409), and the decision
is one the item allows with arguments that fit the tool (422, with the JSON pointer)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from engine.continuation import Continuation, PendingDecision
from engine.decisions import Decide
from engine.errors import DecisionError
from engine.runtime import Runtime
from engine.serve.auth import User
from engine.serve.views import DecisionIn, PendingView, ServeError


def checked(
    user: User,
    runtime: Runtime,
    continuation: Continuation,
    decisions: Sequence[DecisionIn],
) -> tuple[list[Decide], dict[str, str]]:
    """The decisions as `Decide`s addressed by full path, each checked: 404 an unknown id,
    403 a user its approvers do not name, 409 a stale fingerprint, 422 a decision the entry
    does not allow or an edit that fails the tool's parameters."""
    pending = continuation.pending()
    decides: list[Decide] = []
    fingerprints: dict[str, str] = {}
    for index, item in enumerate(decisions):
        where = f"/decisions/{index}"
        entry = _entry(continuation, pending, item.id, where)
        view = decision_view(continuation.run_id, entry)
        if not view.can_decide(user):
            raise ServeError(
                403,
                f"user {user.name!r} may not decide {entry.path}: its approvers are "
                f"{', '.join(view.approvers)}",
                where,
            )
        if item.fingerprint is not None and item.fingerprint != entry.fingerprint:
            raise ServeError(
                409,
                f"{entry.path} changed since it was shown (fingerprint "
                f"{item.fingerprint[:12]}..., now {entry.fingerprint[:12]}...): "
                "reload it and decide again",
                f"{where}/fingerprint",
            )
        if entry.decision is not None:
            raise ServeError(409, f"{entry.path} is decided already", where)
        if item.decision not in entry.decisions:
            raise ServeError(
                422,
                f"{entry.path} allows {', '.join(entry.decisions)}, not {item.decision}",
                f"{where}/decision",
            )
        decide = _decide_of(item, entry.path, where)
        try:  # one by one, so a refusal names its item
            runtime.check_decisions(continuation, [decide])
        except DecisionError as exc:
            pointer = where if exc.pointer is None else f"{where}/arguments{exc.pointer}"
            raise ServeError(422, exc.reason, pointer) from None
        decides.append(decide)
        fingerprints[entry.path] = entry.fingerprint
    try:
        runtime.check_decisions(continuation, decides)
    except DecisionError as exc:  # the batch as a whole (an item named twice)
        raise ServeError(422, exc.reason, "/decisions") from None
    return decides, fingerprints


def decision_view(
    run_id: str, entry: PendingDecision, *, since: float | None = None
) -> PendingView:
    """A pending entry of a continuation as the API shows it (`since`: now by default)."""
    return PendingView(
        run_id=run_id,
        id=entry.id,
        path=entry.path,
        agent=entry.agent,
        tool=entry.tool,
        arguments=entry.arguments,
        reason=entry.reason,
        decisions=entry.decisions,
        prompt=entry.prompt,
        fingerprint=entry.fingerprint,
        since=time.time() if since is None else since,
        expires_at=entry.expires_at,
        approvers=tuple(entry.approvers),
        policy=entry.policy,
    )


def _entry(
    continuation: Continuation, pending: list[PendingDecision], ident: str, where: str
) -> PendingDecision:
    """The pending entry `ident` names; 404 when none, 422 when several."""
    try:
        found, _ = continuation.find(ident)
    except DecisionError as exc:
        named = any(p.id == ident or p.path.endswith(f"/{ident}") for p in pending)
        status = 422 if named else 404
        raise ServeError(status, f"{exc}", f"{where}/id") from None
    return found


def _decide_of(item: DecisionIn, path: str, where: str) -> Decide:
    """The engine's decision for one request item."""
    kind = item.decision
    if kind == "edit" and item.arguments is None:
        raise ServeError(422, "an edit needs the new `arguments` (an object)", f"{where}/arguments")
    if kind == "extend" and (item.turns is None or item.turns < 1):
        raise ServeError(422, "an extend needs `turns`, at least 1", f"{where}/turns")
    if item.scope == "run" and kind not in ("approve", "reject"):
        raise ServeError(422, "only approve and reject take `scope: run`", f"{where}/scope")
    if item.where is not None and item.scope != "run":
        raise ServeError(422, 'a `where` needs `"scope": "run"` beside it', f"{where}/where")
    return Decide(
        id=path,
        kind=kind,
        arguments=item.arguments if kind == "edit" else None,
        reason=item.reason or "rejected by the reviewer",
        result=item.result,
        turns=item.turns or 0,
        scope=item.scope or "call",
        where=item.where,
    )


def conflict_message(exc: Any) -> str:
    why = {
        "not_suspended": "the run is not waiting on these decisions any more (resumed or ended)",
        "not_pending": "it is no longer pending",
        "stale": "it changed since it was shown (stale fingerprint): reload it and decide again",
        "decided": "it is decided already",
    }.get(getattr(exc, "why", ""), str(exc))
    return f"{getattr(exc, 'path', '') or 'the decision'}: {why}"
