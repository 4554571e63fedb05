"""The JSON shapes of the API (issue 14) as dataclasses, `to_dict()` exactly the shape, and
`ServeError`, a refusal (`{"error": {"status", "message", "pointer"}}`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from engine._codec import policy_to_data
from engine.frames import PolicyWhy
from engine.serve.auth import User

DecisionKind = Literal["approve", "reject", "edit", "answer", "extend", "stop", "resume"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingView:
    """One decision a suspended run waits for."""

    run_id: str
    """The run."""
    id: str
    """The entry's id (the call id, or `limit-1`, `pause-1`, `error-1`)."""
    path: str
    """Where in the stack it waits (`hr_agent/account_agent@call_hr_1/call_acc_2`)."""
    agent: str
    """The agent whose frame waits."""
    tool: str | None
    """The tool called, None for a frame-level wait."""
    arguments: dict[str, Any] | None
    """The call's arguments."""
    reason: str
    """approval, external, turn_limit, pause or error."""
    decisions: tuple[str, ...]
    """The decision kinds allowed."""
    prompt: str | None
    """What the reviewer is asked."""
    fingerprint: str
    """What a decision must name to be sure it answers this call as shown."""
    since: float
    """When the run began waiting on it (seconds since the epoch)."""
    expires_at: float | None
    """When it is rejected unless decided (seconds since the epoch), or None."""
    approvers: tuple[str, ...]
    """Roles or user names who may decide it; empty: any approver."""
    policy: PolicyWhy | None = None
    """Why a condition (`approval.when`) made the call wait; None: no condition did."""
    spec: str = ""
    """The run's spec name (not in the JSON: for the inbox)."""
    detail: str | None = None
    """More about the reason (not in the JSON: for the inbox)."""
    decided: bool = False
    """A decision is recorded for it, waiting for the rest (not listed by the API)."""

    def can_decide(self, user: User) -> bool:
        """True when `user` may decide this entry: an approver named by `approvers` (by name
        or role), any approver when it names none; an admin always."""
        if "admin" in user.roles:
            return True
        if not user.can("approver"):
            return False
        return (
            not self.approvers
            or user.name in self.approvers
            or bool(user.roles & set(self.approvers))
        )

    def to_dict(self) -> dict[str, Any]:
        """The issue's pending object."""
        return {
            "run_id": self.run_id,
            "id": self.id,
            "path": self.path,
            "agent": self.agent,
            "tool": self.tool,
            "arguments": self.arguments,
            "reason": self.reason,
            "decisions": list(self.decisions),
            "prompt": self.prompt,
            "fingerprint": self.fingerprint,
            "since": self.since,
            "expires_at": self.expires_at,
            "approvers": list(self.approvers),
            "policy": None if self.policy is None else policy_to_data(self.policy),
            "why": self.why,
        }

    @property
    def why(self) -> str | None:
        """The condition's verdict as one line (`why:` in `callcc pending`), or None."""
        return None if self.policy is None else self.policy.line()


RunStatusView = Literal["running", "suspended", "finished", "failed", "stopped"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunView:
    """A run, as the API answers for it."""

    run_id: str
    """The run's id."""
    status: RunStatusView
    """running, suspended, finished, failed, or stopped (a `stop` decision ended it)."""
    output: str | None
    """The final reply (finished, stopped) or why it failed (failed); None otherwise."""
    pending: list[PendingView]
    """What it waits on (suspended runs), not yet decided."""
    usage: dict[str, int]
    """`{"input_tokens", "output_tokens"}` the run spent so far."""
    created_at: float
    """When it started (seconds since the epoch)."""
    updated_at: float
    """When it last changed (seconds since the epoch)."""
    spec: str = ""
    """The spec's name (not in the JSON: for the inbox)."""

    def to_dict(self) -> dict[str, Any]:
        """The issue's run object."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "output": self.output,
            "pending": [p.to_dict() for p in self.pending],
            "usage": dict(self.usage),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionIn:
    """One decision of a `POST /v1/runs/{run_id}/decisions` body."""

    id: str
    """The entry: its id, or its path."""
    decision: DecisionKind
    """What is decided."""
    reason: str | None = None
    """For `reject`: why, in words the model reads."""
    arguments: dict[str, Any] | None = None
    """For `edit`: the arguments to run with instead."""
    result: Any = None
    """For `answer`: the call's result."""
    turns: int | None = None
    """For `extend`: how many more turns to grant."""
    fingerprint: str | None = None
    """The entry's fingerprint as the reviewer saw it; a different current one is a 409."""
    resume: Literal["now"] | None = None
    """`"now"`: resume once recorded, even if other entries are undecided."""
    scope: Literal["call", "run"] | None = None
    """`"run"` (approve, reject): also later calls of the tool in this run (a grant)."""
    where: str | None = None
    """With scope `run`: the CEL condition a later call must meet to be covered."""

    def to_dict(self) -> dict[str, Any]:
        """The issue's decision object (None fields left out)."""
        data: dict[str, Any] = {"id": self.id, "decision": self.decision}
        for name in (
            "reason",
            "arguments",
            "result",
            "turns",
            "fingerprint",
            "resume",
            "scope",
            "where",
        ):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data


class ServeError(Exception):
    """A request the service refuses: the HTTP status, what to tell, and where in the
    request (a JSON pointer) when one part of it is at fault."""

    def __init__(self, status: int, message: str, pointer: str | None = None) -> None:
        self.status = status
        self.message = message
        self.pointer = pointer
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        """The API's error object."""
        return {"error": {"status": self.status, "message": self.message, "pointer": self.pointer}}
