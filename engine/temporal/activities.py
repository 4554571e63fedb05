"""The activities a worker runs: `advance` (the interpreter, until the run next waits or
ends) and `cancel`. The run store is the source of truth; what they return is a `Summary`.

`advance` is safe to retry, which is how a run survives a worker that died: it reads where
the run stands in the store and does only what is left. A run not in the store yet starts; a
run still `running` (its worker died mid-drive) is taken over through callcc's recovery once
its lease ran out (calls with results never run again; a non-idempotent call left running
suspends with reason `error`, an idempotent one runs again); a run waiting on the nonce the
decisions were made on resumes with them; anything else (the retried advance had finished
before its worker died) returns where the run stands, running nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine import inbox
from engine._codec import limit_to_data, policy_to_data
from engine.continuation import Continuation
from engine.decisions import Decide
from engine.errors import (
    ContinuationError,
    DecisionConflict,
    DecisionError,
    LeaseHeldError,
    UsageError,
)
from engine.loop import PauseClock, external_pause
from engine.runtime import Failed, Finished, Outcome, Runtime, Stopped
from engine.spec.load import load_stored_spec
from engine.spec.model import Spec, SpecSource
from engine.store.base import RunRecord, RunStore
from engine.temporal.data import Advance, Decision, Entry, Summary
from engine.temporal.workflow import ADVANCE, CANCEL, RECORD

log = logging.getLogger("callcc.temporal")
PAUSE_REQUESTED = "pause requested"
"""The details of an advance's heartbeats once its `after_seconds` timer fired."""


class Activities:
    """The activities of one worker, over one run store (their runtimes kept by spec digest)."""

    def __init__(
        self,
        store: RunStore,
        *,
        allowed_modules: Sequence[str] | None = None,
        model_override: str | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.store = store
        self._allowed = allowed_modules
        self._model = model_override
        self._lease = lease_seconds
        self._runtimes: dict[str, Runtime] = {}

    async def runtime(self, digest: str) -> Runtime:
        """The runtime of the spec kept under `digest` (compiled once per worker)."""
        runtime = self._runtimes.get(digest)
        if runtime is None:
            row = await self.store.aio.get_spec(digest)
            if row is None:
                raise ApplicationError(
                    f"the run store {self.store.url} keeps no spec with digest {digest}: start "
                    "runs through callcc (it keeps the spec with the run)",
                    type="UsageError",
                    non_retryable=True,
                )
            spec = load_stored_spec(
                SpecSource(text=row.text, instructions=row.instructions, path=row.path)
            )
            runtime = Runtime(
                spec,
                store=self.store,
                allowed_modules=self._allowed,
                model_override=self._model,
                lease_seconds=self._lease,
                observers=[_heartbeat],
            )
            self._runtimes[digest] = runtime
        return runtime

    @activity.defn(name=ADVANCE)
    async def advance(self, request: Advance) -> Summary:
        """Drive the run until it next waits or ends; heartbeats while it works.

        `suspend.after_seconds` is the workflow's durable timer here (beside the frames' own
        clocks, for sub-agents the timer does not know yet): when it fires, the workflow
        cancels this activity (delivered with a heartbeat), which only sets the drive's
        `PauseClock`, so the run pauses at its next step boundary with the `pause` entry an
        in-process clock would have made, and this returns it."""
        clock = PauseClock(due=request.pause)
        token = external_pause.set(clock)  # the drive's task copies the context: it sees it
        try:
            async with _heartbeating():
                return await _paused_on_cancel(self._guarded(request), clock)
        finally:
            external_pause.reset(token)

    async def _guarded(self, request: Advance) -> Summary:
        """`_advance`, its errors as Temporal's application errors."""
        try:
            return await self._advance(request)
        except LeaseHeldError as exc:  # the dead worker's lease has not run out yet
            raise ApplicationError(
                f"{exc}; retried once the lease ran out",
                type="LeaseHeld",
                next_retry_delay=_timedelta(exc.remaining + 0.2),
            ) from None
        except UsageError as exc:
            raise ApplicationError(str(exc), type="UsageError", non_retryable=True) from None

    async def _advance(self, request: Advance) -> Summary:
        runtime = await self.runtime(request.spec_digest)
        run = await self._run(request.run_id)
        if run is None:
            if request.prompt is None:
                raise UsageError(f"run {request.run_id!r} is not in {self.store.url}")
            started = await runtime.arun(
                request.prompt,
                agent=request.agent,
                run_id=request.run_id,
                user=request.user or None,
            )
            return summary_of(started, runtime.spec)
        if run.status == "running":
            log.info("taking over run %s (its worker died)", run.run_id)
            return summary_of(await runtime.arecover(run.run_id), runtime.spec)
        waiting = run.status == "suspended" or (run.status == "failed" and run.nonce)
        if not waiting or request.nonce != run.nonce:  # done before: a retried advance whose
            return await self.where(runtime, run)  # worker died after the store settled it
        return await self._resume(runtime, run, request)

    async def _resume(self, runtime: Runtime, run: RunRecord, request: Advance) -> Summary:
        """Resume with the update's decisions and those the store recorded (`engine.inbox`:
        `callcc decide`, the service), undecided entries whose expiry passed rejected first;
        refused (nothing run) when that decides nothing or a decision does not fit."""
        decides = [decide_of(d) for d in request.decisions]
        continuation = await runtime.aload_run(run.run_id)
        if not decides and not await self._anything_decided(runtime, run, continuation):
            refused = summary_of_waiting(run, continuation)
            refused.refused = "nothing is decided: give a decision for what the run waits on"
            return refused
        try:
            outcome = await inbox.aresume_recorded(
                runtime, run.run_id, extra=decides, user=request.user or "temporal"
            )
        except (DecisionError, ContinuationError) as exc:  # nothing ran; it waits as it was
            refused = summary_of_waiting(run, continuation)
            refused.refused = str(exc)
            return refused
        if isinstance(outcome, inbox.ResumedElsewhere):
            return await self.where(runtime, await self.store.aio.get_run(run.run_id))
        return summary_of(outcome, runtime.spec)

    async def _anything_decided(
        self, runtime: Runtime, run: RunRecord, continuation: Continuation
    ) -> bool:
        """True when the store recorded a decision for the suspension, or an entry expired."""
        if await self.store.aio.recorded_decisions(run.run_id, run.nonce):
            return True
        now = runtime.clock()
        return any(
            p.expires_at is not None and p.expires_at <= now and p.decision is None
            for p in continuation.pending()
        )

    async def _run(self, run_id: str) -> RunRecord | None:
        try:
            return await self.store.aio.get_run(run_id)
        except UsageError as exc:
            if type(exc) is UsageError:  # unknown id (not a StoreError, not a conflict)
                return None
            raise

    async def where(self, runtime: Runtime, run: RunRecord) -> Summary:
        """Where `run` stands in the store, running nothing."""
        if run.status in ("finished", "stopped"):
            return Summary(run_id=run.run_id, status=run.status, output=run.output)
        if run.status == "suspended" or (run.status == "failed" and run.nonce):
            continuation = await runtime.aload_run(run.run_id)
            records = await self.store.aio.recorded_decisions(run.run_id, run.nonce)
            return summary_of_waiting(
                run, inbox.apply_recorded(continuation, records), runtime.spec
            )
        return Summary(run_id=run.run_id, status=run.status, output=run.output)

    @activity.defn(name=RECORD)
    async def record(self, request: Advance) -> Summary:
        """Record the `decide` update's decisions in the run store (`engine.inbox.arecord`,
        audited as the update's user), resuming nothing: the run as it waits then, or refused
        with the reason when the store or the check refuses them (nothing recorded)."""
        runtime = await self.runtime(request.spec_digest)
        run = await self.store.aio.get_run(request.run_id)
        refused = Summary(run_id=run.run_id, status=run.status, nonce=run.nonce)
        if request.nonce != run.nonce:
            refused.refused = (
                f"stale: the decisions were made on continuation {request.nonce!r}, but run "
                f"{run.run_id!r} waits on {run.nonce!r} now; list what it waits for again"
            )
            return refused
        fingerprints = {d.id: d.fingerprint for d in request.decisions if d.fingerprint}
        try:
            await inbox.arecord(
                runtime,
                run.run_id,
                [decide_of(d) for d in request.decisions],
                user=request.user or "temporal",
                fingerprints=fingerprints,
            )
        except (DecisionConflict, DecisionError, ContinuationError) as exc:
            refused.refused = str(exc)
            return refused
        return await self.where(runtime, await self.store.aio.get_run(run.run_id))

    @activity.defn(name=CANCEL)
    async def cancel(self, run_id: str, nonce: str, reason: str) -> Summary:
        """End a waiting run as stopped (its nonce claimed, so no resume can race it)."""
        run = await self.store.aio.get_run(run_id)
        if run.status not in ("suspended", "failed") or run.nonce != nonce:
            return Summary(run_id=run_id, status=run.status, output=run.output)
        version = await self.store.aio.claim(run_id, nonce)
        output = f"cancelled: {reason}"
        await self.store.aio.settle(
            run_id, version, status="stopped", nonce=None, output=output, pending=[]
        )
        return Summary(run_id=run_id, status="stopped", output=output)

    async def aclose(self) -> None:
        """Close the runtimes' model clients."""
        for runtime in self._runtimes.values():
            await runtime.aclose()
        self._runtimes.clear()


async def _paused_on_cancel(work: Coroutine[Any, Any, Summary], clock: PauseClock) -> Summary:
    """Run `work` in its own task; a cancellation of the activity (the workflow's
    `after_seconds` timer fired) sets `clock.due` and lets the work go on to its pause. Any
    other cancellation (the worker shuts down, the attempt timed out) cancels the work itself:
    the advance is retried elsewhere."""
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()
            if not _asked_to_pause():  # timed out, shutting down, reset: the drive stops
                task.cancel()
                raise
            if not clock.due:
                log.info("pausing run (its after_seconds timer fired)")
                clock.due = True
            _beat()


def _asked_to_pause() -> bool:
    """True when the activity is cancelled because its workflow asked (its timer fired)."""
    details = activity.cancellation_details()
    return (
        details is not None
        and details.cancel_requested
        and not (details.timed_out or details.worker_shutdown or details.reset)
        and not activity.is_worker_shutdown()
    )


def _timedelta(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=max(0.1, seconds))


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat every third of the heartbeat timeout while the body runs (a tool or a model
    call may take long without any event)."""
    timeout = activity.info().heartbeat_timeout
    every = timeout.total_seconds() / 3 if timeout else 10.0

    async def beat() -> None:
        while True:
            _beat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _heartbeat(event: object) -> None:
    """Heartbeat the activity driving the run at every event (step) of it: observers are
    called in the drive's own task, so the current activity is the one whose run it is."""
    if activity.in_activity():
        _beat()


def _beat() -> None:
    """One heartbeat; once the `after_seconds` timer asked for a pause, it says so (only the
    newest heartbeat's details reach the server: `describe` shows them)."""
    clock = external_pause.get()
    activity.heartbeat(*((PAUSE_REQUESTED,) if clock is not None and clock.due else ()))


def decide_of(decision: Decision) -> Decide:
    """`engine.decisions.Decide` of an update's decision."""
    if decision.kind not in ("approve", "edit", "reject", "answer", "extend", "stop", "resume"):
        raise DecisionError(f"unknown decision kind {decision.kind!r}")
    fields: dict[str, Any] = {"id": decision.id, "kind": decision.kind}
    if decision.kind == "edit":
        fields["arguments"] = decision.arguments or {}
    if decision.kind == "reject" and decision.reason:
        fields["reason"] = decision.reason
    if decision.kind == "answer":
        fields["result"] = decision.result
    if decision.kind == "extend":
        fields["turns"] = decision.turns
    if decision.scope == "run":  # on any kind: the decision's own check refuses what may not
        fields["scope"] = "run"
    if decision.where is not None:
        fields["where"] = decision.where
    return Decide(**fields)


def entries_of(continuation: Continuation) -> list[Entry]:
    """What `continuation` waits for, as the workflow keeps it."""
    return [
        Entry(
            id=p.id,
            path=p.path,
            agent=p.agent,
            tool=p.tool,
            reason=p.reason,
            decisions=list(p.decisions),
            fingerprint=p.fingerprint,
            arguments=None if p.arguments is None else json.dumps(p.arguments),
            prompt=p.prompt,
            detail=p.detail,
            decision=p.decision,
            expires_at=p.expires_at,
            approvers=list(p.approvers),
            limit=None if p.limit is None else limit_to_data(p.limit),
            policy=None if p.policy is None else policy_to_data(p.policy),
        )
        for p in continuation.pending()
    ]


def pause_in(spec: Spec, continuation: Continuation) -> float | None:
    """Seconds of active running left before `suspend.after_seconds` pauses a frame of the
    run once it goes on (a frame paused now starts afresh when resumed), or None."""
    left: list[float] = []
    for _, frame in continuation.frames():
        agent = spec.agents.get(frame.agent)
        after = agent.suspend.after_seconds if agent is not None else None
        if after is None:
            continue
        paused = any(p.tool is None and p.reason == "pause" for p in frame.pending)
        left.append(after if paused else max(0.0, after - frame.pause_elapsed))
    return min(left) if left else None


def summary_of(outcome: Outcome, spec: Spec | None = None) -> Summary:
    """The summary of an outcome (with `pause_in` when `spec` is given)."""
    if isinstance(outcome, Finished | Stopped):
        return Summary(run_id=outcome.run_id, status=outcome.kind, output=outcome.output)
    continuation = outcome.continuation
    if isinstance(outcome, Failed):
        return Summary(
            run_id=continuation.run_id,
            status="failed",
            nonce=continuation.nonce if outcome.resumable else None,
            pending=entries_of(continuation) if outcome.resumable else [],
            output=outcome.reason,
            resumable=outcome.resumable,
            pause_in=None
            if spec is None or not outcome.resumable
            else pause_in(spec, continuation),
        )
    return Summary(
        run_id=continuation.run_id,
        status="suspended",
        nonce=continuation.nonce,
        pending=entries_of(continuation),
        pause_in=None if spec is None else pause_in(spec, continuation),
    )


def summary_of_waiting(
    run: RunRecord, continuation: Continuation, spec: Spec | None = None
) -> Summary:
    """The summary of a run that waits on `continuation` in the store (with `pause_in` when
    `spec` is given)."""
    return Summary(
        run_id=run.run_id,
        status=run.status,
        nonce=run.nonce,
        pending=entries_of(continuation),
        output=run.output,
        resumable=run.status == "failed",
        pause_in=None if spec is None else pause_in(spec, continuation),
    )
