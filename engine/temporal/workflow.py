"""The workflow of one run: wait for decisions, timers and signals; `advance` does the work.

The workflow id is the run id. Its state is references only (`data.Summary`: the nonce the
run waits on and what it waits for), so its history grows by a few events per suspension,
whatever the run's messages weigh. Everything non-deterministic (clocks, ids, models, tools,
the store) happens in the `advance` and `cancel` activities (`engine.temporal.activities`).

- Update `decide` (`data.DecideRequest` -> `data.Summary`): its validator refuses an unknown
  id, a stale nonce or fingerprint, a decision the entry does not allow and an entry decided
  already, before anything is recorded; accepted decisions are recorded in the run store by
  the `record` activity (`engine.inbox.arecord`: audited, so the service, `runs show` and
  `runs audit` see them; several reviewers of one suspension each record theirs), and the
  next advance applies every recorded decision once the request asks to resume or nothing is
  left undecided; the update returns where the run stands after it.
- Update `settled` waits until no advance is in flight and returns the summary (a client
  waits on it after starting a run).
- Query `pending` lists what the run waits for; query `summary` the whole summary.
- Signal `cancel` (a reason) ends a waiting run as stopped (a running one when it next waits).
- Durable timers: when an undecided approval's `expires_at` passes, an advance with no
  decision lets `engine.inbox` reject it (recorded and audited as expired by `callcc`); and
  while an advance runs, a timer of the run's `suspend.after_seconds` left (`pause_in`)
  cancels it when it fires, which pauses the run at its next step (`_timed`).
- Continue-as-new when Temporal suggests it (or after `Start.advances_per_history` advances).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from engine.temporal.data import Advance, DecideRequest, Entry, Start, Summary

WORKFLOW = "callcc.run"
ADVANCE = "callcc.advance"
CANCEL = "callcc.cancel"
RECORD = "callcc.record"
PAUSE_TIMER = "suspend.after_seconds"
"""The summary of the durable timer that pauses a run for `suspend.after_seconds`."""
REFUSED = "DecisionRefused"
"""The error type of an update whose decisions were refused (the CLI's exit 2); the validator's
refusals carry why as their one detail: unknown, ambiguous, stale, decided, not_allowed, busy
or ended (`DecisionRefused.why`; the service answers 404, 422 or 409 by it)."""

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["UsageError", "SpecError", "RunError"],
)
"""An advance is retried (on another worker) until it succeeds, unless the input is bad."""


@workflow.defn(name=WORKFLOW)
class RunWorkflow:
    """One callcc run, from its start to its end."""

    @workflow.init
    def __init__(self, start: Start) -> None:
        self._start = start
        self._summary: Summary | None = start.summary
        self._queue: list[DecideRequest] = []
        self._busy = start.summary is None
        self._generation = 0
        self._recording = 0
        """Decisions being recorded now (`record` activities in flight): an advance waits for
        them, so one recorded while it read the store is never answered 200 and left unread."""
        self._refused: dict[int, str] = {}
        self._cancel: str | None = None
        self._expiry_retry = 0.0
        """When to look again at an expiry the advance found not yet due (another clock)."""

    @workflow.run
    async def run(self, start: Start) -> Summary:
        advances = start.advances
        if self._summary is None:
            self._summary = await self._advance(
                Advance(
                    run_id=start.run_id,
                    spec_digest=start.spec_digest,
                    prompt=start.prompt,
                    agent=start.agent,
                    user=start.user,
                ),
                start.pause_after,
            )
            advances += 1
            self._busy = False
        while self._summary.waiting:
            woke = await self._wait(advances)
            if woke == "renew":  # a decide still recording will queue a request: take it
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or bool(self._queue)
                )
                if self._queue:
                    continue
                workflow.continue_as_new(
                    replace(start, prompt=None, summary=self._summary, advances=advances)
                )
            summary = self._summary
            if self._cancel is not None:
                self._summary = await self._cancelled(summary, self._cancel)
                break
            await workflow.wait_condition(lambda: self._recording == 0)
            requests, self._queue = self._queue, []
            if not requests and woke != "expiry":
                continue
            self._busy = True
            result = await self._advance(  # no decision given: the store's and the expiries
                Advance(
                    run_id=start.run_id,
                    spec_digest=start.spec_digest,
                    nonce=summary.nonce,
                    decisions=[d for request in requests for d in request.decisions],  # none:
                    # the `decide` update recorded them in the store
                    user=",".join(sorted({r.user for r in requests if r.user})) or "callcc",
                ),
                summary.pause_in,
            )
            advances += 1
            if result.refused is None:
                self._summary = result
            elif requests:
                self._refused[self._generation] = result.refused
            else:  # the expiry was not due by the worker's clock yet: look again soon
                self._expiry_retry = workflow.now().timestamp() + 1.0
            self._generation += 1
            self._busy = False
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary

    async def _wait(self, advances: int) -> str:
        """Wait for decisions, a cancel, the next expiry (a durable timer) or the time to
        continue as new: "work", "expiry" or "renew"."""
        due = _next_expiry(self._summary)
        if due is not None:
            due = max(due, self._expiry_retry)
        timeout = None if due is None else max(0.0, due - workflow.now().timestamp())
        try:
            await workflow.wait_condition(
                lambda: bool(self._queue) or self._cancel is not None or self._renew(advances),
                timeout=timeout,
            )
        except TimeoutError:
            return "expiry"
        if not self._queue and self._cancel is None and self._renew(advances):
            return "renew"
        return "work"

    def _renew(self, advances: int) -> bool:
        """True when the history should start afresh (continue-as-new)."""
        return workflow.info().is_continue_as_new_suggested() or (
            advances - self._start.advances >= self._start.advances_per_history
        )

    async def _advance(self, request: Advance, pause_in: float | None) -> Summary:
        try:
            return await self._timed(request, pause_in)
        except ActivityError as exc:  # refused for good: the workflow fails with its reason
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise ApplicationError(message, type="AdvanceFailed", non_retryable=True) from exc

    async def _timed(self, request: Advance, pause_in: float | None) -> Summary:
        """The `advance` activity, beside a durable timer for the run's `after_seconds`
        (`pause_in`): when it fires first, the activity is cancelled, which tells it to pause
        the run at its next step boundary and return that; cancelled before it could (not
        started yet, or its worker died), a new advance pauses the run at once."""
        handle: workflow.ActivityHandle[Summary] = workflow.start_activity(
            ADVANCE,
            request,
            result_type=Summary,
            start_to_close_timeout=timedelta(days=1),
            heartbeat_timeout=timedelta(seconds=self._start.heartbeat_seconds),
            retry_policy=RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        if pause_in is None or request.pause:
            return await handle
        timer = asyncio.ensure_future(workflow.sleep(pause_in, summary=PAUSE_TIMER))
        await workflow.wait([handle, timer], return_when=asyncio.FIRST_COMPLETED)
        if handle.done():
            timer.cancel()
            return await handle
        handle.cancel()
        try:
            return await handle
        except ActivityError as exc:
            if not isinstance(exc.cause, CancelledError):
                raise
        return await self._timed(replace(request, pause=True), None)

    async def _cancelled(self, waiting: Summary, reason: str) -> Summary:
        summary: Summary = await workflow.execute_activity(
            CANCEL,
            args=[waiting.run_id, waiting.nonce or "", reason],
            result_type=Summary,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY,
        )
        return summary

    @workflow.update(name="decide")
    async def decide(self, request: DecideRequest) -> Summary:
        """Record the decisions in the run store (`engine.inbox.arecord`: audited, checked
        against what the decider saw), then resume the run when `request.resume` says so or
        nothing is left undecided; returns where the run stands then."""
        assert self._summary is not None
        self._recording += 1
        try:
            recorded = await self._record(request)
        finally:
            self._recording -= 1
        if recorded.refused is not None:
            raise ApplicationError(recorded.refused, type=REFUSED, non_retryable=True)
        if self._busy or self._summary.nonce != recorded.nonce:  # an advance under way took
            await workflow.wait_condition(lambda: not self._busy)  # the recorded decisions
            return self._summary
        self._mark(recorded)
        undecided = any(e.decision is None for e in self._summary.pending)
        if undecided and not request.resume:
            return self._summary
        generation = self._generation
        self._queue.append(replace(request, decisions=[]))  # recorded: the advance reads them
        await workflow.wait_condition(lambda: self._generation > generation)
        refused = self._refused.get(generation)
        if refused is not None:
            raise ApplicationError(refused, type=REFUSED, non_retryable=True)
        return self._summary

    async def _record(self, request: DecideRequest) -> Summary:
        """The `record` activity: the run as it waits once the decisions were recorded, or
        refused (nothing recorded) with the store's reason."""
        assert self._summary is not None
        summary: Summary = await workflow.execute_activity(
            RECORD,
            Advance(
                run_id=self._summary.run_id,
                spec_digest=self._start.spec_digest,
                nonce=request.nonce or self._summary.nonce,
                decisions=request.decisions,
                user=request.user,
            ),
            result_type=Summary,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY,
        )
        return summary

    def _mark(self, recorded: Summary) -> None:
        """Mark the entries `recorded` shows decided (other reviewers' records may land in
        any order: a mark is never taken back)."""
        assert self._summary is not None
        kinds = {e.path: e.decision for e in recorded.pending if e.decision is not None}
        for entry in self._summary.pending:
            entry.decision = entry.decision or kinds.get(entry.path)

    @decide.validator
    def _validate(self, request: DecideRequest) -> None:
        summary = self._summary
        if summary is None or self._busy:
            raise ApplicationError(
                "the run is advancing now; decide on what it waits for once it suspends "
                "(`callcc pending RUN_ID --temporal ...` lists it)",
                "busy",
                type=REFUSED,
            )
        if not summary.waiting:
            raise ApplicationError(
                f"run {summary.run_id!r} is {summary.status}", "ended", type=REFUSED
            )
        if request.nonce is not None and request.nonce != summary.nonce:
            raise ApplicationError(
                f"stale: the decisions were made on continuation {request.nonce!r}, but run "
                f"{summary.run_id!r} waits on {summary.nonce!r} now; list what it waits for "
                "again and decide on that",
                "stale",
                type=REFUSED,
            )
        seen: set[str] = set()
        for decision in request.decisions:
            entry = _resolve(summary, decision.id)
            if decision.fingerprint is not None and decision.fingerprint != entry.fingerprint:
                raise ApplicationError(
                    f"stale: the decision for {decision.id!r} was made on another call than "
                    "the run waits on (its fingerprint differs); list what it waits for again",
                    "stale",
                    type=REFUSED,
                )
            if decision.kind not in entry.decisions:
                raise ApplicationError(
                    f"decision {decision.kind!r} is not allowed for {entry.path!r} "
                    f"(allowed: {', '.join(entry.decisions) or 'none'})",
                    "not_allowed",
                    type=REFUSED,
                )
            if entry.path in seen or entry.decision is not None:
                raise ApplicationError(
                    f"{entry.path!r} is decided already", "decided", type=REFUSED
                )
            seen.add(entry.path)

    @workflow.update(name="settled")
    async def settled(self) -> Summary:
        """Where the run stands once no advance is in flight."""
        await workflow.wait_condition(
            lambda: self._summary is not None and not self._busy and not self._queue
        )
        assert self._summary is not None
        return self._summary

    @workflow.query(name="summary")
    def summary(self) -> Summary | None:
        """Where the run stands (None before its first advance ended)."""
        return self._summary

    @workflow.query(name="pending")
    def pending(self) -> list[Entry]:
        """What the run waits for."""
        return list(self._summary.pending) if self._summary is not None else []

    @workflow.signal(name="cancel")
    def cancel(self, reason: str) -> None:
        """End the run as stopped once it waits (at once when it waits now)."""
        self._cancel = reason or "cancelled"


def _resolve(summary: Summary, ident: str) -> Entry:
    """The entry `ident` names: its full path, a unique bare id or a unique path suffix."""
    matches = [e for e in summary.pending if e.path == ident or e.path.endswith("/" + ident)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(e.path for e in summary.pending)) or "none"
    if not matches:
        raise ApplicationError(
            f"unknown id {ident!r}: run {summary.run_id!r} waits on {known}",
            "unknown",
            type=REFUSED,
        )
    raise ApplicationError(
        f"{ident!r} names several entries ({known}); give the full path",
        "ambiguous",
        type=REFUSED,
    )


def _next_expiry(summary: Summary | None) -> float | None:
    """When the next undecided approval of `summary` expires (epoch seconds), or None."""
    if summary is None:
        return None
    due = [
        e.expires_at
        for e in summary.pending
        if e.expires_at is not None and e.decision is None and "reject" in e.decisions
    ]
    return min(due) if due else None
