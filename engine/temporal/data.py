"""What travels through Temporal: small, plain dataclasses, never messages.

The workflow holds a run's id, the nonce it waits on and the summary of what it waits for;
the run's state (messages, frames, results) stays in the run store. Stdlib only: the workflow
sandbox imports this module, and Temporal's converter turns these into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WAITING = ("suspended", "failed")
"""Statuses under which a run can wait on decisions (a failed run only when `resumable`)."""


@dataclass(kw_only=True)
class Entry:
    """One pending decision, as the workflow keeps it (`PendingDecision` without messages)."""

    id: str
    """The call (or synthetic) id."""
    path: str
    """The entry's full path; decisions are addressed by it."""
    agent: str
    """The agent whose frame waits."""
    tool: str | None
    """The tool called, None for a frame-level wait."""
    reason: str
    """approval, external, turn_limit, pause or error."""
    decisions: list[str]
    """Decision kinds allowed."""
    fingerprint: str
    """What a decision must match."""
    arguments: str | None = None
    """The call's arguments as JSON text (Temporal's converter would sort an object's keys;
    the reviewer sees them in the model's order)."""
    prompt: str | None = None
    """What the reviewer is asked."""
    detail: str | None = None
    """The limit reached, the error message, ..."""
    decision: str | None = None
    """A decision already recorded for it, if any (kind only)."""
    expires_at: float | None = None
    """When an undecided approval is rejected by the workflow's timer (epoch seconds)."""
    approvers: list[str] = field(default_factory=list)
    """Who may decide (roles or user names); empty: any approver."""
    policy: dict[str, Any] | None = None
    """Why a condition (`approval.when`) made the call wait, as the document holds it
    (`{"kind", "when", "outcome", "error"?}`); None: no condition did."""


@dataclass(kw_only=True)
class Summary:
    """Where a run stands after an `advance`: what the workflow needs to wait and decide."""

    run_id: str
    """The run (also the workflow id)."""
    status: str
    """suspended, finished, failed or stopped."""
    nonce: str | None = None
    """The nonce of the continuation the run waits on (suspended, resumable failures)."""
    pending: list[Entry] = field(default_factory=list)
    """What it waits for, in stack order."""
    output: str | None = None
    """The final reply (finished, stopped) or the failure's reason (failed)."""
    resumable: bool = False
    """A failed run that can be resumed with a decision."""
    refused: str | None = None
    """Set when the decisions of this advance were refused (the run did not move)."""
    pause_in: float | None = None
    """Seconds of active running the next advance may take before `suspend.after_seconds`
    pauses the run (the workflow's durable timer); None: no frame of the run has it."""

    @property
    def waiting(self) -> bool:
        """True while the run waits on decisions."""
        return self.status == "suspended" or (self.status == "failed" and self.resumable)


@dataclass(kw_only=True)
class Decision:
    """One decision of an update: `engine.decisions.Decide` as plain data."""

    id: str
    """The entry: its full path, or its bare id when unique."""
    kind: str
    """approve, edit, reject, answer, extend, stop or resume."""
    fingerprint: str | None = None
    """The fingerprint the decider saw; a different one is refused as stale."""
    arguments: dict[str, Any] | None = None
    """For edit."""
    reason: str | None = None
    """For reject."""
    result: Any = None
    """For answer."""
    turns: int = 0
    """For extend."""
    scope: str = "call"
    """For approve and reject: `run` makes it a grant for the rest of the run."""
    where: str | None = None
    """With scope `run`: the CEL condition a later call must meet to be covered."""


@dataclass(kw_only=True)
class DecideRequest:
    """The argument of the `decide` update."""

    decisions: list[Decision]
    """What is decided."""
    nonce: str | None = None
    """The nonce the decider saw; a different one (the run moved on) is refused as stale."""
    user: str = ""
    """Who decides (kept with the decisions)."""
    resume: bool = True
    """Resume the run once they are recorded (`callcc resume`); False: only once every entry
    is decided (by this or other reviewers: the service)."""


@dataclass(kw_only=True)
class Advance:
    """The argument of the `advance` activity: start, resume or take over one run."""

    run_id: str
    """The run."""
    spec_digest: str
    """The spec the run goes on with, kept in the run store under this digest."""
    prompt: str | None = None
    """For the first advance: the user's request."""
    agent: str | None = None
    """For the first advance: the agent to start (None: the entrypoint)."""
    nonce: str | None = None
    """For a resume: the nonce the decisions were made on."""
    decisions: list[Decision] = field(default_factory=list)
    """For a resume: what was decided."""
    user: str = ""
    """Who decided."""
    pause: bool = False
    """The workflow's `after_seconds` timer fired already (an earlier attempt was cancelled
    before it paused the run): pause at the first step boundary."""


@dataclass(kw_only=True)
class Start:
    """The workflow's input: a new run, or one carried on by continue-as-new."""

    run_id: str
    """The run (and workflow) id."""
    spec_digest: str
    """The digest of the spec kept in the run store."""
    prompt: str | None = None
    """The user's request; None when `summary` carries a run on (continue-as-new)."""
    agent: str | None = None
    """The agent to start (None: the entrypoint)."""
    user: str = ""
    """Who started the run (its audit's `started` entry; empty: the worker's default)."""
    summary: Summary | None = None
    """Where the run stood when the previous workflow run continued as new."""
    heartbeat_seconds: float = 30.0
    """How long an advance may go without a heartbeat before Temporal retries it elsewhere."""
    advances_per_history: int = 1000
    """Continue as new after this many advances (Temporal's own suggestion comes first)."""
    advances: int = 0
    """Advances done by earlier workflow runs of this run (continue-as-new)."""
    pause_after: float | None = None
    """The entry agent's `suspend.after_seconds`: the first advance's durable timer."""
