"""`TemporalRuntime`: start, resume and list runs that workers drive, with the outcome types
of a local `Runtime` (`Finished`, `Stopped`, `Suspended`, `Failed`).

The client keeps the spec in the run store (by digest) and starts one workflow per run
(workflow id = run id); it waits on the workflow's `settled` update, and builds the outcome
from the summary and the run store (the continuation of a suspended run is read from the
store, never from Temporal). Decisions go to the `decide` update, refused by its validator
(`DecisionRefused`, a `UsageError`) before anything is recorded.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from engine import durable
from engine._codec import policy_from_data
from engine.continuation import PendingDecision
from engine.decisions import Decide
from engine.errors import RunError, UsageError
from engine.journal import rebuild
from engine.runtime import Failed, Finished, Outcome, Stopped, Suspended
from engine.signing import keys_from_env
from engine.spec.model import Spec
from engine.store import RunStore, open_store
from engine.temporal.data import DecideRequest, Decision, Entry, Start, Summary
from engine.temporal.worker import DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE, connect
from engine.temporal.workflow import WORKFLOW
from engine.usage import Usage

T = TypeVar("T")


class DecisionRefused(UsageError):
    """The `decide` update's validator (or the advance's check) refused the decisions."""

    def __init__(self, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why
        """The validator's reason: unknown, ambiguous, stale, decided, not_allowed, busy or
        ended; empty for a refusal of the store's (the run moved on, decided meanwhile)."""


def refused(run_id: str, exc: WorkflowUpdateFailedError) -> DecisionRefused:
    """The `DecisionRefused` of a failed `decide` update."""
    cause = exc.cause
    message = cause.message if isinstance(cause, ApplicationError) else str(cause)
    details = cause.details if isinstance(cause, ApplicationError) else ()
    why = details[0] if details and isinstance(details[0], str) else ""
    return DecisionRefused(f"run {run_id!r}: decisions refused: {message}", why)


class TemporalRuntime:
    """Runs driven by workers through a Temporal server, from this process."""

    def __init__(
        self,
        *,
        address: str,
        store: RunStore | str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        task_queue: str = DEFAULT_TASK_QUEUE,
        client: Client | None = None,
        heartbeat_seconds: float = 30.0,
        advances_per_history: int = 1000,
    ) -> None:
        """`address` is the Temporal frontend (HOST:PORT); `store` the run store the workers
        share (a URL or an open store; only `pending` works without one).
        `heartbeat_seconds`: how long a worker may go silent before its advance is retried
        elsewhere."""
        self.address = address
        self.namespace = namespace
        self.task_queue = task_queue
        self._store: RunStore | None = open_store(store) if isinstance(store, str) else store
        self._owns_store = isinstance(store, str)
        self._client = client
        self.heartbeat_seconds = heartbeat_seconds
        self.advances_per_history = advances_per_history
        self.keys = keys_from_env()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kept: set[str] = set()
        """Digests of the specs this client kept in the store already."""

    @property
    def store(self) -> RunStore:
        """The run store the workers share."""
        if self._store is None:
            raise UsageError("this needs the run store the workers share: --store URL")
        return self._store

    async def client(self) -> Client:
        """The Temporal client (connected on first use)."""
        if self._client is None:
            self._client = await connect(self.address, self.namespace)
        return self._client

    # -- async ---------------------------------------------------------------------------

    async def astart(
        self,
        spec: Spec,
        prompt: str,
        *,
        agent: str | None = None,
        run_id: str | None = None,
        user: str = "",
    ) -> str:
        """Start a run of `spec` (kept in the run store) and return its id at once; `user`
        is who the audit says started it (empty: the worker's default)."""
        if spec.source is None:
            raise UsageError(
                "a run on Temporal needs a spec loaded from a file (load_spec): the workers "
                "read it from the run store"
            )
        name = agent or spec.entrypoint
        if name not in spec.agents:
            known = ", ".join(sorted(spec.agents))
            raise UsageError(f"unknown agent {name!r}; agents of {spec.name}: {known}")
        run_id = run_id or uuid.uuid4().hex
        if spec.digest not in self._kept:
            await durable.keep_spec(self.store.aio, spec)
            self._kept.add(spec.digest)
        client = await self.client()
        try:
            await client.start_workflow(
                WORKFLOW,
                Start(
                    run_id=run_id,
                    spec_digest=spec.digest,
                    prompt=prompt,
                    agent=agent,
                    user=user,
                    heartbeat_seconds=self.heartbeat_seconds,
                    advances_per_history=self.advances_per_history,
                    pause_after=spec.agents[name].suspend.after_seconds,
                ),
                id=run_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            raise UsageError(
                f"run {run_id!r} exists on Temporal already (a run id is one run for good); "
                "pick another run id"
            ) from None
        except RPCError as exc:
            raise UsageError(f"cannot start run {run_id!r} on Temporal: {exc}") from None
        return run_id

    async def arun(
        self, spec: Spec, prompt: str, *, agent: str | None = None, run_id: str | None = None
    ) -> Outcome:
        """Start a run and wait until it suspends or ends."""
        run_id = await self.astart(spec, prompt, agent=agent, run_id=run_id)
        return await self.aoutcome(run_id)

    async def aoutcome(self, run_id: str) -> Outcome:
        """Wait until no advance of the run is in flight; its outcome."""
        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            summary = await handle.execute_update("settled", result_type=Summary)
        except (RPCError, WorkflowUpdateFailedError):  # the workflow closed: its result
            summary = await self._result(run_id)
        return await self._outcome(summary)

    async def aresult(self, run_id: str) -> Outcome:
        """Wait until the run ends (its workflow completes, however many decisions, timers
        and continue-as-new that takes); its outcome."""
        return await self._outcome(await self._result(run_id))

    async def aresume(
        self,
        run_id: str,
        decisions: Sequence[Decide | Decision],
        *,
        nonce: str | None = None,
        user: str = "",
        resume: bool = True,
    ) -> Outcome:
        """Send decisions (refused at once if the validator refuses them: `DecisionRefused`),
        recorded in the run store as `user`'s, and wait for the next outcome. `nonce`: the
        continuation they were made on; `resume=False`: the run resumes only once every
        entry is decided (other reviewers decide the rest), else it waits on as it was."""
        outcome = await self.asubmit(run_id, decisions, nonce=nonce, user=user, resume=resume)
        return await outcome

    async def asubmit(
        self,
        run_id: str,
        decisions: Sequence[Decide | Decision],
        *,
        nonce: str | None = None,
        user: str = "",
        resume: bool = True,
    ) -> Coroutine[Any, Any, Outcome]:
        """`aresume` in two steps: return once the validator accepted the decisions
        (`DecisionRefused` when it refuses them), with the wait for the outcome to await (or
        close unawaited: the update goes on without this caller; the service's `wait: false`)."""
        request = DecideRequest(
            decisions=[d if isinstance(d, Decision) else decision_of(d) for d in decisions],
            nonce=nonce,
            user=user,
            resume=resume,
        )
        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            update = await handle.start_update(
                "decide",
                request,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                result_type=Summary,
            )
        except WorkflowUpdateFailedError as exc:
            raise refused(run_id, exc) from None
        except RPCError as exc:
            raise UsageError(
                f"run {run_id!r} waits on no workflow that takes decisions: {exc}"
            ) from None

        async def outcome() -> Outcome:
            try:
                summary = await update.result()
            except WorkflowUpdateFailedError as exc:
                raise refused(run_id, exc) from None
            return await self._outcome(summary)

        return outcome()

    async def apending(self, run_id: str) -> list[PendingDecision]:
        """What the run waits for (the workflow's `pending` query)."""
        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            entries = await handle.query("pending", result_type=list[Entry])
        except RPCError as exc:
            raise UsageError(f"no run {run_id!r} on Temporal at {self.address}: {exc}") from None
        return [pending_of(e) for e in entries]

    async def acancel(self, run_id: str, reason: str = "cancelled") -> None:
        """Signal the run to end as stopped (when it waits; a running one once it waits);
        UsageError when no open workflow has its id."""
        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            await handle.signal("cancel", reason)
        except RPCError as exc:
            raise UsageError(
                f"run {run_id!r} has no open workflow on Temporal at {self.address}: {exc}"
            ) from None

    async def aworkflow_status(self, run_id: str) -> str | None:
        """The status of the run's workflow as the server describes its latest execution
        (RUNNING, COMPLETED, FAILED, ...); None when no workflow has the run's id (a run
        started without Temporal)."""
        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            status = (await handle.describe()).status
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise UsageError(
                f"cannot describe run {run_id!r} on Temporal at {self.address}: {exc}"
            ) from None
        return status.name if status is not None else None

    async def aidle_queue(self, run_id: str) -> str | None:
        """The task queue of the run's open workflow when no worker polls it (as the server
        saw lately: a worker gone a few minutes ago still counts), else None."""
        client = await self.client()
        try:
            queue = (await client.get_workflow_handle(run_id).describe()).task_queue
            seen = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.namespace,
                    task_queue=TaskQueue(name=queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
        except RPCError:
            return None  # no such workflow, or the server cannot tell: nothing to warn about
        return None if seen.pollers else queue

    async def aclosed(self, run_id: str, timeout: float | None = None) -> str:
        """Wait until the run's workflow has closed (through every continue-as-new); its
        status (COMPLETED, or FAILED, TERMINATED, ... when it did not complete).
        `TimeoutError` when `timeout` seconds pass first."""
        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            async with asyncio.timeout(timeout):
                await handle.result()
        except WorkflowFailureError:
            pass  # failed, terminated, timed out: the status says which
        except RPCError as exc:
            raise UsageError(f"no run {run_id!r} on Temporal at {self.address}: {exc}") from None
        return await self.aworkflow_status(run_id) or "none"

    async def aworkflow_statuses(self, run_ids: Sequence[str]) -> dict[str, str | None]:
        """`aworkflow_status` of each run (one describe each, at most 16 at once)."""
        gate = asyncio.Semaphore(16)

        async def one(run_id: str) -> str | None:
            async with gate:
                return await self.aworkflow_status(run_id)

        statuses = await asyncio.gather(*(one(r) for r in run_ids))
        return dict(zip(run_ids, statuses, strict=True))

    async def _result(self, run_id: str) -> Summary:
        handle = (await self.client()).get_workflow_handle(run_id, result_type=Summary)
        try:
            summary: Summary = await handle.result()
        except WorkflowFailureError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise RunError(f"run {run_id!r}: {message}") from None
        return summary

    async def _outcome(self, summary: Summary) -> Outcome:
        """The outcome of `summary`, its continuation read from the run store."""
        run_id = summary.run_id
        if summary.status in ("finished", "stopped"):
            record = await self.store.aio.get_run(run_id)
            usage = Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
            kind = Finished if summary.status == "finished" else Stopped
            return kind(output=summary.output or "", run_id=run_id, usage=usage)
        run, events = await self.store.aio.snapshot(run_id)
        key = self.keys[0] if self.keys else None
        continuation = rebuild(run, events, key=key)
        if summary.status == "failed":
            return Failed(
                reason=summary.output or "", continuation=continuation, resumable=summary.resumable
            )
        return Suspended(continuation=continuation)

    # -- sync ----------------------------------------------------------------------------

    def run(
        self, spec: Spec, prompt: str, *, agent: str | None = None, run_id: str | None = None
    ) -> Outcome:
        """`arun`, for code that is not async."""
        return self._sync(self.arun(spec, prompt, agent=agent, run_id=run_id))

    def start(
        self, spec: Spec, prompt: str, *, agent: str | None = None, run_id: str | None = None
    ) -> str:
        """`astart`, for code that is not async."""
        return self._sync(self.astart(spec, prompt, agent=agent, run_id=run_id))

    def resume(
        self,
        run_id: str,
        decisions: Sequence[Decide | Decision],
        *,
        nonce: str | None = None,
        user: str = "",
        resume: bool = True,
    ) -> Outcome:
        """`aresume`, for code that is not async."""
        return self._sync(self.aresume(run_id, decisions, nonce=nonce, user=user, resume=resume))

    def outcome(self, run_id: str) -> Outcome:
        """`aoutcome`, for code that is not async."""
        return self._sync(self.aoutcome(run_id))

    def result(self, run_id: str) -> Outcome:
        """`aresult`, for code that is not async."""
        return self._sync(self.aresult(run_id))

    def pending(self, run_id: str) -> list[PendingDecision]:
        """`apending`, for code that is not async."""
        return self._sync(self.apending(run_id))

    def cancel(self, run_id: str, reason: str = "cancelled") -> None:
        """`acancel`, for code that is not async."""
        self._sync(self.acancel(run_id, reason))

    def workflow_status(self, run_id: str) -> str | None:
        """`aworkflow_status`, for code that is not async."""
        return self._sync(self.aworkflow_status(run_id))

    def closed(self, run_id: str, timeout: float | None = None) -> str:
        """`aclosed`, for code that is not async."""
        return self._sync(self.aclosed(run_id, timeout))

    def idle_queue(self, run_id: str) -> str | None:
        """`aidle_queue`, for code that is not async."""
        return self._sync(self.aidle_queue(run_id))

    def workflow_statuses(self, run_ids: Sequence[str]) -> dict[str, str | None]:
        """`aworkflow_statuses`, for code that is not async."""
        return self._sync(self.aworkflow_statuses(run_ids))

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:  # one loop for the client's whole life: its connection is
            self._loop = asyncio.new_event_loop()  # bound to the loop it was made on
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        """Close the store's async face, the loop and (when opened from a URL) the store."""
        if self._loop is not None:
            if self._store is not None:
                self._loop.run_until_complete(self._store.aio.aclose())
            self._loop.close()
            self._loop = None
        if self._owns_store and self._store is not None:
            self._store.close()

    def __enter__(self) -> TemporalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decision_of(decide: Decide) -> Decision:
    """An update's decision for `decide`."""
    return Decision(
        id=decide.id,
        kind=decide.kind,
        arguments=decide.arguments,
        reason=decide.reason if decide.kind == "reject" else None,
        result=decide.result,
        turns=decide.turns,
        scope=decide.scope,
        where=decide.where,
    )


def pending_of(entry: Entry) -> PendingDecision:
    """The `PendingDecision` a workflow's entry describes."""
    return PendingDecision(
        id=entry.id,
        path=entry.path,
        agent=entry.agent,
        tool=entry.tool,
        arguments=None if entry.arguments is None else json.loads(entry.arguments),
        reason=entry.reason,
        decisions=tuple(entry.decisions),
        prompt=entry.prompt,
        detail=entry.detail,
        decision=entry.decision,
        fingerprint=entry.fingerprint,
        expires_at=entry.expires_at,
        approvers=tuple(entry.approvers),
        policy=None if entry.policy is None else policy_from_data(entry.policy, "/policy"),
    )
