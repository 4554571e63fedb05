"""`Service`: what the API and the inbox do, each operation for an acting `User`.

One compiled `Runtime` per spec file in `--specs` (addressed by file name), all on one store
and with the `EventHub` as observer; a stored run started from a spec no longer in the folder
is driven by the spec the store kept under its digest (`engine.durable.spec_of_run`). Runs
advance on the service's own event loop (`Runtime.arun`, `engine.inbox.aresume_recorded`),
or, with `ServeConfig.temporal` (`callcc serve --temporal HOST:PORT`), on Temporal workers
(`engine.temporal.client.TemporalRuntime`): a run starts as a workflow, and decisions go to
its `decide` update, which records and audits them in the store as the service's would and
resumes the run on a worker; expiry is the workflow's durable timer, so the service's own
expiry task does not run.

Decisions are recorded first (`engine.inbox.arecord`: per item, atomically, each checked
against the fingerprint the reviewer saw), so several reviewers decide items of one run
independently; the run resumes once every pending item is decided, or when a decision asks
for `"resume": "now"`. Every refusal is a `ServeError` whose status the API answers with:
401/403 who may, 404 unknown, 409 no longer pending (stale fingerprint, decided already, run
resumed), 422 a decision the entry does not allow or an edit that fails the tool's parameters
(with the JSON pointer into the request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from engine import inbox
from engine._codec import policy_from_data
from engine.continuation import Continuation
from engine.durable import spec_of_run
from engine.errors import (
    CallccError,
    ConflictError,
    ContinuationError,
    DecisionConflict,
    DecisionError,
    RunError,
    StoreError,
    UsageError,
)
from engine.journal import rebuild
from engine.runtime import Runtime
from engine.serve._checks import checked, conflict_message, decision_view
from engine.serve.auth import User
from engine.serve.config import ServeConfig
from engine.serve.expiry import Expiry
from engine.serve.hub import EventHub
from engine.serve.views import DecisionIn, PendingView, RunView, ServeError
from engine.serve.webhooks import Webhooks
from engine.spec.load import load_spec
from engine.store import RUN_STATUSES, RunStore, open_store
from engine.store.base import AuditEntry, PendingRow, RunRecord, pending_cursor, run_cursor

log = logging.getLogger("callcc.serve")

__all__ = ["ServeError", "Service", "spec_files"]

MAX_LIMIT = 1000
"""The largest page a listing answers."""
SHUTDOWN_GRACE = 5.0
"""Seconds a run started in the background gets to suspend or end when the service stops."""
_SPEC_FILE = re.compile(r"^spec_version\s*:", re.MULTILINE)


def spec_files(folder: Path) -> list[Path]:
    """The spec files in `folder` (YAML files with a `spec_version`), by name."""
    if not folder.is_dir():
        raise UsageError(f"--specs {folder}: not a folder; give the folder of your spec files")
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix in (".yaml", ".yml") and path.is_file():
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if _SPEC_FILE.search(path.read_text(encoding="utf-8")):
                    found.append(path)
    return found


class Service:
    """The service's state and operations; `await start()` before use, `aclose()` after."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.hub = EventHub()
        """Every event of every run the service drives."""
        self._store: RunStore | None = None
        self._runtimes: dict[str, Runtime] = {}
        """Spec file name -> its runtime."""
        self._by_digest: dict[str, Runtime] = {}
        """Spec digest -> a runtime of that spec (the folder's, or one a stored run needed)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._temporal: Any = None
        """The `TemporalRuntime` runs advance on (`config.temporal`), else None."""
        self.webhooks = Webhooks.from_config(config)
        """The `--webhook` receivers, fed from the hub (refuses a bad URL or a missing secret)."""
        self.expiry = Expiry(self._expire)
        """The periodic task rejecting decisions not made in time (`engine.serve.expiry`)."""

    # -- life cycle ------------------------------------------------------------------------

    def prepare(self) -> None:
        """Open the store and compile every spec of the folder, before any event loop runs
        (`create_app` calls it, so a bad folder or spec stops `callcc serve` with exit 2);
        refuses (UsageError, SpecError) a folder without specs or a spec that does not load."""
        if self._store is not None:
            return
        files = spec_files(Path(self.config.specs_dir))
        if not files:
            raise UsageError(
                f"--specs {self.config.specs_dir}: no spec files (YAML with `spec_version: 1`)"
            )
        specs = [(path.name, load_spec(path)) for path in files]
        self._store = open_store(self.config.store_url)
        for name, spec in specs:
            runtime = self._compile(spec)
            self._runtimes[name] = runtime
            self._by_digest.setdefault(runtime.spec.digest, runtime)

    async def start(self) -> None:
        """Start serving on the running event loop (`prepare`s first if not done)."""
        if self._store is None:
            await asyncio.to_thread(self.prepare)
        self.hub.start()
        await self.webhooks.start(self.hub)
        if self.config.temporal:
            self._temporal = _temporal_runtime(self.config, self.store)
            await self._temporal.client()  # an unreachable server stops the start, located
        else:  # on Temporal each run's workflow expires its approvals on a durable timer
            await self.expiry.start()

    def _compile(self, spec: Any) -> Runtime:
        return Runtime(
            spec,
            store=self.store,
            allowed_modules=list(self.config.allow_modules) or None,
            observers=[self.hub.publish],
        )

    async def aclose(self) -> None:
        """Let background runs reach a checkpoint, then close runtimes, the hub and the store."""
        await self.expiry.aclose()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE)
            for task in late:  # the run stays at its last checkpoint, for `callcc recover`
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self.hub.close()
        await self.webhooks.aclose()
        for runtime in {id(r): r for r in self._by_digest.values()}.values():
            await runtime.aclose()
        if self._store is not None:
            await self._store.aio.aclose()
            self._store.close()

    async def _expire(self, now: float) -> list[str]:
        """One expiry pass (the `Expiry` task's): every undecided entry past its deadline is
        rejected, and the runs left with nothing undecided resume, each with its own spec."""
        rows = await self.store.aio.expired(now=now, limit=MAX_LIMIT)
        runtimes: dict[str, Runtime] = {}
        for row in rows:
            if row.run_id not in runtimes:
                with contextlib.suppress(ServeError):  # deleted meanwhile, or no spec: skipped
                    runtimes[row.run_id] = await self._runtime_of(await self._record(row.run_id))
        if not runtimes:
            return []

        def runtime_for(run_id: str) -> Runtime:
            if run_id not in runtimes:
                raise LookupError(f"run {run_id!r} expired during this pass; the next takes it")
            return runtimes[run_id]

        expired: list[str] = await inbox.aexpire(
            runtime_for, now=now, store=self.store, limit=MAX_LIMIT
        )
        return expired

    @property
    def store(self) -> RunStore:
        """The run store (after `start`)."""
        if self._store is None:
            raise RuntimeError("Service.start() was not awaited")
        return self._store

    # -- reading ---------------------------------------------------------------------------

    def specs(self, user: User) -> list[str]:
        """The spec files runs may be started from."""
        _need(user, "viewer")
        return sorted(self._runtimes)

    async def get_run(self, user: User, run_id: str) -> RunView:
        """The run object."""
        _need(user, "viewer")
        return await self._view(await self._record(run_id))

    async def list_runs(
        self,
        user: User,
        *,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RunView], str | None]:
        """Runs, newest first, and the cursor of the next page (None: the last page)."""
        _need(user, "viewer")
        if status is not None and status not in RUN_STATUSES:
            raise ServeError(422, f"unknown status {status!r}; one of {', '.join(RUN_STATUSES)}")
        limit = _limit(limit)
        records = await _refused_cursor(
            self.store.aio.list_runs(status=cast(Any, status), limit=limit, after=cursor)
        )
        views = [await self._view(record) for record in records]
        return views, run_cursor(records[-1]) if len(records) == limit else None

    async def pending(
        self,
        user: User,
        *,
        spec: str | None = None,
        tool: str | None = None,
        reason: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[PendingView], str | None]:
        """Every undecided pending decision across runs, oldest first, and the next page's
        cursor. `spec` is a spec's name (`hr_onboarding`) or its file name in the folder."""
        _need(user, "viewer")
        limit = _limit(limit)
        if spec in self._runtimes:
            spec = self._runtimes[spec].spec.name
        if any("\x00" in f for f in (spec, tool, reason) if f):  # no name holds one; a
            return [], None  # database refuses it in a parameter (PostgreSQL)
        rows = await _refused_cursor(
            self.store.aio.pending(limit=limit, after=cursor, spec=spec, tool=tool, reason=reason)
        )
        views = [_pending_view(row) for row in rows if not row.decided]
        return views, pending_cursor(rows[-1]) if len(rows) == limit else None

    async def audit(self, user: User, run_id: str) -> list[AuditEntry]:
        """The run's audit, oldest first."""
        _need(user, "viewer")
        await self._record(run_id)
        return await self.store.aio.audit(run_id)

    async def transcript(self, user: User, run_id: str) -> list[dict[str, Any]]:
        """Every frame of the run's stack, root first: `{"path", "agent", "messages"}` (a
        finished run: its root frame's whole conversation)."""
        _need(user, "viewer")
        continuation = await self._stack(run_id)
        return [
            {"path": "/".join(names), "agent": frame.agent, "messages": frame.messages}
            for names, frame in continuation.frames()
        ]

    async def stack_svg(self, user: User, run_id: str) -> bytes:
        """The picture of the run's stack (what it waits on, when suspended), as SVG."""
        _need(user, "viewer")
        record = await self._record(run_id)
        continuation = await self._stack(run_id)
        runtime = await self._runtime_of(record)
        from engine.render import render, stack_graph

        graph = stack_graph(continuation, runtime.spec)
        return await asyncio.to_thread(render, graph, "svg")

    async def spec_svg(self, user: User, spec_file: str) -> bytes:
        """The agent graph of a spec of the folder, as SVG."""
        _need(user, "viewer")
        runtime = self._runtimes.get(spec_file)
        if runtime is None:
            raise ServeError(404, f"no spec file {spec_file!r}; specs: {self._names()}")
        from engine.render import render, spec_graph

        return await asyncio.to_thread(render, spec_graph(runtime.spec), "svg")

    # -- starting and deciding -------------------------------------------------------------

    async def start_run(
        self,
        user: User,
        spec: str,
        prompt: str,
        *,
        run_id: str | None = None,
        wait: bool = True,
    ) -> RunView:
        """Start a run of the spec file `spec` on `prompt`; with `wait`, answer once it has
        suspended or ended, else once it is stored (running)."""
        _need(user, "submitter")
        runtime = self._runtimes.get(spec)
        if runtime is None:
            raise ServeError(422, f"no spec file {spec!r}; specs: {self._names()}", "/spec")
        if run_id is not None and not run_id.strip():
            raise ServeError(422, "run_id is empty; leave it out for a generated one", "/run_id")
        run_id = run_id or _new_id()
        if self._temporal is not None:
            return await self._start_on_temporal(user, runtime, prompt, run_id, wait)
        start = asyncio.ensure_future(runtime.arun(prompt, run_id=run_id, user=user.name))
        if wait:
            await self._outcome_of(start)
        else:
            self._background(start)
            await self._until_stored(start, run_id)
        return await self.get_run(user, run_id)

    async def decide(
        self, user: User, run_id: str, decisions: list[DecisionIn], *, wait: bool = True
    ) -> RunView:
        """Record `decisions` for items of the run (all or none), then resume the run if none
        of its items is left undecided, or if one decision says `"resume": "now"`."""
        _need(user, "approver")
        if not decisions:
            raise ServeError(422, "no decisions given", "/decisions")
        record = await self._record(run_id)
        if record.status not in ("suspended", "failed") or record.nonce is None:
            raise ServeError(409, f"run {run_id!r} is {record.status}: it waits on nothing now")
        runtime = await self._runtime_of(record)
        try:
            continuation = await runtime.aload_run(run_id)
        except ConflictError as exc:
            raise ServeError(409, str(exc)) from None
        decides, fingerprints = checked(user, runtime, continuation, decisions)
        if self._temporal is not None:
            now = record.status == "failed" or any(d.resume == "now" for d in decisions)
            await self._decide_on_temporal(user, record, decides, fingerprints, now, wait)
            return await self.get_run(user, run_id)
        if record.status == "failed":  # a failed model call: `resume` or `stop` it, at once
            await self._resume(
                inbox.aresume_recorded(runtime, run_id, extra=decides, user=user.name), wait
            )
            return await self.get_run(user, run_id)
        try:
            recorded = await inbox.arecord(
                runtime, run_id, decides, user=user.name, fingerprints=fingerprints
            )
        except DecisionConflict as exc:
            index = next((i for i, d in enumerate(decides) if d.id == exc.path), None)
            where = f"/decisions/{index}" if index is not None else "/decisions"
            raise ServeError(409, conflict_message(exc), where) from None
        except DecisionError as exc:
            raise ServeError(422, str(exc), "/decisions") from None
        except ConflictError as exc:
            raise ServeError(409, str(exc)) from None
        if recorded.remaining == 0 or any(d.resume == "now" for d in decisions):
            await self._resume(inbox.aresume_recorded(runtime, run_id, user=user.name), wait)
        return await self.get_run(user, run_id)

    async def _start_on_temporal(
        self, user: User, runtime: Runtime, prompt: str, run_id: str, wait: bool
    ) -> RunView:
        """Start the run's workflow; with `wait`, answer once the run suspended or ended."""
        try:
            await self._temporal.astart(runtime.spec, prompt, run_id=run_id, user=user.name)
        except UsageError as exc:  # a workflow of that id exists (a run id taken)
            raise ServeError(409, str(exc), "/run_id") from None
        if wait:
            await self._outcome_of(asyncio.ensure_future(self._temporal.aoutcome(run_id)))
        try:
            return await self.get_run(user, run_id)
        except ServeError:  # no worker has written it yet: it is started, not stored
            now = time.time()
            usage = {"input_tokens": 0, "output_tokens": 0}
            return RunView(
                run_id=run_id,
                status="running",
                output=None,
                pending=[],
                usage=usage,
                created_at=now,
                updated_at=now,
                spec=runtime.spec.name,
            )

    async def _decide_on_temporal(
        self,
        user: User,
        record: RunRecord,
        decides: list[Any],
        fingerprints: dict[str, str],
        now: bool,
        wait: bool,
    ) -> None:
        """Send the checked decisions to the run's `decide` update (it records and audits
        them, and resumes the run on a worker once nothing is undecided or `now`); its
        refusals answer as the store's would: 404 unknown, 422 not allowed, else 409."""
        from engine.temporal.client import DecisionRefused, decision_of

        def refusal(exc: DecisionRefused) -> ServeError:
            status = {"unknown": 404, "not_allowed": 422, "ambiguous": 422}.get(exc.why, 409)
            return ServeError(status, str(exc), "/decisions")

        sent = [replace(decision_of(d), fingerprint=fingerprints.get(d.id)) for d in decides]
        try:
            outcome = await self._temporal.asubmit(
                record.run_id, sent, nonce=record.nonce, user=user.name, resume=now
            )
        except DecisionRefused as exc:
            raise refusal(exc) from None
        except UsageError as exc:  # no workflow takes decisions for it (not a Temporal run)
            raise ServeError(409, str(exc)) from None

        async def settled() -> None:
            try:
                await outcome
            except DecisionRefused as exc:  # the store refused them (decided meanwhile)
                raise refusal(exc) from None

        await self._resume(settled(), wait)

    async def _resume(self, drive: Any, wait: bool) -> None:
        """Resume a run: to its next suspension or end with `wait`, else in the background."""
        resume = asyncio.ensure_future(drive)
        if wait:
            await self._outcome_of(resume, resumed=True)
        else:
            self._background(resume)

    # -- helpers ---------------------------------------------------------------------------

    def _names(self) -> str:
        return ", ".join(sorted(self._runtimes)) or "none"

    async def _record(self, run_id: str) -> RunRecord:
        """The run's row; 404 when the store has no such run."""
        try:
            return await self.store.aio.get_run(run_id)
        except StoreError:
            raise
        except UsageError:
            raise ServeError(404, f"no run {run_id!r} in the store") from None

    async def _view(self, record: RunRecord) -> RunView:
        pending: list[PendingView] = []
        if record.nonce is not None and record.status == "suspended":
            rows = await self.store.aio.pending(run_id=record.run_id, limit=MAX_LIMIT)
            pending = [_pending_view(row) for row in rows if not row.decided]
        elif record.nonce is not None and record.status == "failed":  # resumable: the store
            pending = await self._failed_entries(record)  # keeps no rows for it, the stack does
        return RunView(
            run_id=record.run_id,
            status=record.status,
            output=record.output,
            pending=pending,
            usage={"input_tokens": record.input_tokens, "output_tokens": record.output_tokens},
            created_at=record.created_at,
            updated_at=record.updated_at,
            spec=record.spec_name,
        )

    async def _failed_entries(self, record: RunRecord) -> list[PendingView]:
        """What a failed run that can be resumed waits on (its `error` entry)."""
        try:
            continuation = await (await self._runtime_of(record)).aload_run(record.run_id)
        except (ServeError, ConflictError):  # resumed meanwhile, or no spec to read it with
            return []
        return [
            decision_view(record.run_id, p, since=record.updated_at)
            for p in continuation.undecided()
        ]

    async def _runtime_of(self, record: RunRecord) -> Runtime:
        """The runtime of the spec the run was started (or last resumed) with."""
        runtime = self._by_digest.get(record.spec_digest)
        if runtime is None:
            try:
                spec = await asyncio.to_thread(spec_of_run, self.store, record.run_id)
            except CallccError as exc:
                message = f"cannot find the spec of run {record.run_id!r}: {exc}"
                raise ServeError(409, message) from None
            runtime = self._by_digest.setdefault(spec.digest, self._compile(spec))
        return runtime

    async def _stack(self, run_id: str) -> Continuation:
        """The run's stack as its checkpoints left it (any status)."""
        record = await self._record(run_id)
        run, events = await self.store.aio.snapshot(record.run_id)
        try:
            return rebuild(run, events)
        except ContinuationError as exc:
            raise ServeError(404, f"run {run_id!r} has no stack to show: {exc}") from None

    def _background(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(cast(asyncio.Task[Any], task))
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(cast(asyncio.Task[Any], task))
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.warning("a run driven in the background ended with %s: %s", type(exc).__name__, exc)

    async def _outcome_of(self, drive: asyncio.Future[Any], *, resumed: bool = False) -> None:
        """Await a drive; its refusals become ServeErrors, a run failing is an outcome."""
        try:
            await asyncio.shield(drive)
        except asyncio.CancelledError:  # the client went away: the run goes on regardless
            self._background(drive)
            raise
        except ConflictError as exc:  # another resume claimed the run first: fine
            if not resumed:
                raise ServeError(409, str(exc)) from None
        except RunError:  # the run failed: its status says so
            pass
        except UsageError as exc:
            raise ServeError(422, str(exc)) from None

    async def _until_stored(self, drive: asyncio.Future[Any], run_id: str) -> None:
        """Wait until the run `drive` starts is in the store: its first event (`RunStarted`
        comes once the run and its first checkpoint are written), or the drive's end."""
        with contextlib.closing(self.hub.subscribe(run_id)) as events:
            first = asyncio.ensure_future(anext(events, None))
            await asyncio.wait({drive, first}, return_when=asyncio.FIRST_COMPLETED)
            first.cancel()
        if drive.done():
            await self._outcome_of(drive)


def _temporal_runtime(config: ServeConfig, store: RunStore) -> Any:
    """The `TemporalRuntime` of `config.temporal`, on the service's store."""
    try:
        from engine.temporal.client import TemporalRuntime
    except ImportError as exc:
        raise UsageError(
            f"--temporal needs the Temporal SDK: pip install 'callcc[temporal]' ({exc})"
        ) from None
    return TemporalRuntime(
        address=cast(str, config.temporal),
        store=store,
        namespace=config.temporal_namespace,
        task_queue=config.temporal_task_queue,
    )


def _need(user: User, role: str) -> None:
    if not user.can(role):
        held = ", ".join(sorted(user.roles)) or "none"
        raise ServeError(403, f"user {user.name!r} lacks the {role} role (holds: {held})")


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ServeError(422, f"limit must be from 1 to {MAX_LIMIT}, not {limit}", None)
    return limit


async def _refused_cursor(listing: Any) -> Any:
    """A listing's rows; a malformed cursor is a 422."""
    try:
        return await listing
    except StoreError:
        raise
    except UsageError as exc:
        raise ServeError(422, f"bad cursor: {exc}; pass the cursor a listing answered") from None


def _new_id() -> str:
    return uuid.uuid4().hex


def _pending_view(row: PendingRow) -> PendingView:
    return PendingView(
        run_id=row.run_id,
        id=row.call_id,
        path=row.path,
        agent=row.agent,
        tool=row.tool,
        arguments=row.arguments,
        reason=row.reason,
        decisions=tuple(row.decisions),
        prompt=row.prompt,
        fingerprint=row.fingerprint,
        since=row.created_at,
        expires_at=row.expires_at,
        approvers=tuple(row.approvers),
        policy=None if row.policy is None else policy_from_data(row.policy, "/policy"),
        spec=row.spec_name,
        detail=row.detail,
        decided=row.decided,
    )
