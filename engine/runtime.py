"""The public entry: `Runtime(spec).run(prompt)` and `.resume(continuation)`.

Async at the core (`arun`, `aresume`); the sync methods drive the same coroutines on an event
loop the runtime keeps, so they add no logic of their own. With a store, the async methods
await the store's async face (`store.aio`: they never block their event loop on it) while the
sync ones call the blocking store in place (no event-loop round trip per checkpoint). Before
a resume executes anything, the whole document is checked against the spec: every agent and
tool it names exists, every decision is allowed and matches the fingerprint of the entry it
answers, every edit fits the tool's parameters. A document that fails any check is refused
whole; nothing runs.

Runs can be watched: `Runtime(spec, observers=[...])` hands every event of every run
(`engine.events`) to each observer, and `astream` / `astream_resume` / `astream_recover`
yield one run's events and then its outcome.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from engine import _eager, _emit, _ids, _json, _stream, durable, fork, grants, lease
from engine._frozen import quick_init
from engine._preflight import check_document, check_edits
from engine.audit import decision_entry, os_user, run_entry
from engine.compile import Program, compile_spec
from engine.continuation import Continuation, decision_to_data
from engine.decisions import Decide
from engine.errors import ContinuationError, UsageError
from engine.events import (
    Observer,
    Observers,
    PendingInfo,
    RunEvent,
    RunFailed,
    RunFinished,
    RunForked,
    RunResumed,
    RunStarted,
    RunSuspended,
)
from engine.frames import Frame, Message, assign_paths
from engine.journal import Journal
from engine.loop import drive
from engine.models.base import ModelClient
from engine.models.scripted import ScriptedModel
from engine.signing import keys_from_env, normalize_keys
from engine.spec.model import Spec
from engine.steps import End, Fail, Finish
from engine.store import RunStore, open_store
from engine.store._aio import Blocking, async_face
from engine.store.base import AsyncRunStore, Lease
from engine.tooling import RunContext
from engine.toolsets import Toolsets
from engine.tracing import observer as tracing_observer
from engine.usage import Usage, of_stack

log = logging.getLogger("callcc")
T = TypeVar("T")


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    """The entry agent answered."""

    kind: Literal["finished"] = "finished"
    output: str
    """The final reply."""
    messages: list[Message] = field(default_factory=list)
    """The entry agent's whole conversation."""
    run_id: str = ""
    """The run's id."""
    usage: Usage = field(default_factory=Usage)
    """The tokens the whole run spent, sub-agents included (`engine.usage`)."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Stopped:
    """A `stop` decision ended the entry agent; `output` is its reply so far."""

    kind: Literal["stopped"] = "stopped"
    output: str
    """The entry agent's last text when it was stopped (may be empty)."""
    messages: list[Message] = field(default_factory=list)
    """The entry agent's whole conversation."""
    run_id: str = ""
    """The run's id."""
    usage: Usage = field(default_factory=Usage)
    """The tokens the whole run spent, sub-agents included (`engine.usage`)."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Suspended:
    """The run waits; decide on `continuation` and resume it."""

    kind: Literal["suspended"] = "suspended"
    continuation: Continuation
    """The whole suspended call stack."""

    @property
    def usage(self) -> Usage:
        """The tokens the run spent so far (`continuation.usage`)."""
        return self.continuation.usage


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Failed:
    """The run cannot go on; `continuation` shows the stack as it was."""

    kind: Literal["failed"] = "failed"
    reason: str
    """What went wrong, and where."""
    continuation: Continuation
    """The stack at the failure, for inspection (and to resume, when `resumable`)."""
    resumable: bool = False
    """True when the failing frame recorded an `error` entry (a model call that failed for
    good: HTTP 400, bad credentials): once the cause is fixed, decide `resume` on it and
    resume `continuation` (with a store: `load_run`), or decide `stop`."""

    @property
    def usage(self) -> Usage:
        """The tokens the run spent until it failed (`continuation.usage`)."""
        return self.continuation.usage


Outcome = Finished | Stopped | Suspended | Failed


REMEMBERED_NONCES = 100_000
"""How many resumed nonces a store-less runtime remembers to refuse replays."""


class Runtime:
    """A compiled spec, ready to run and resume."""

    def __init__(
        self,
        spec: Spec,
        *,
        model_override: ModelClient | str | None = None,
        secret_key: str | bytes | Sequence[str | bytes] | None = None,
        allowed_modules: Sequence[str] | None = None,
        allowed_commands: Sequence[str] | None = None,
        store: RunStore | str | None = None,
        lease_seconds: float | None = None,
        observers: Iterable[Observer] = (),
        tracing: bool | Any | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Compile `spec`. `secret_key` (one key, or several: the first signs, all verify)
        defaults to `CALLCC_SECRET_KEY` / `CALLCC_SECRET_KEY_FILE`; without any key,
        continuations are unsigned. `allowed_modules` narrows where python tools may come from
        (on top of the spec's own `allow_modules`), `allowed_commands` the programs MCP stdio
        servers may start with (on top of `allow_commands`). `store` (a `RunStore` or a URL such as
        `sqlite:///.callcc/runs.db`) keeps every run durably, checkpointed at every step;
        while this runtime drives a stored run it holds the run's lease, `lease_seconds` long
        (default `CALLCC_LEASE_SECONDS`, else 30 s) and renewed while it works, so no other
        process recovers a run that is still alive. `observers` (callables, or objects with an
        `on_event` method) receive every event of every run (`engine.events`); one that
        raises is logged once and never breaks a run. `tracing` (`engine.tracing`): True
        traces runs as OpenTelemetry spans, False never, a `TracerProvider` traces to that
        provider; None (the default) traces when `CALLCC_TRACING=1` or when the application
        configured a tracer provider globally. `clock` (default `time.time`) is the runs'
        wall clock: a gated call's `expires_at` and `engine.inbox.expire` count from it."""
        self.spec = spec
        self.clock: Callable[[], float] = clock or time.time
        """The runs' wall clock, seconds since the epoch."""
        self._spec_path = str(Path(spec.path).resolve()) if spec.path else None
        """Where the spec file is, absolute, as documents record it (resolved once: a
        filesystem look-up per suspension costs more than the suspension)."""
        self.lease_seconds = (
            lease.lease_seconds(lease_seconds)
            if store is not None or lease_seconds is not None
            else lease.DEFAULT_LEASE_SECONDS  # no store, no lease: the environment is not read
        )
        """How long the lease on a run this runtime drives lasts unless renewed."""
        self.keys = normalize_keys(secret_key) if secret_key is not None else keys_from_env()
        self.program: Program = compile_spec(
            spec,
            model_override=model_override,
            allowed_modules=allowed_modules,
            allowed_commands=allowed_commands,
        )
        self._consumed: OrderedDict[str, None] = OrderedDict()
        """Nonces this runtime resumed without a store (the store keeps its own), oldest first,
        at most `REMEMBERED_NONCES` of them so a long-lived process does not grow forever (an
        OrderedDict: a plain dict's first key, once many were deleted before it, is found by
        scanning past every deleted slot, which made each resume cost O(nonces) once full)."""
        # Eager driving skips the event loop's round trip, but libraries that ask which async
        # library runs them (httpx, anyio: the openai client) need a real task: only when every
        # model is scripted and every tool is sync is the whole run free of such code.
        self._toolsets = self.program.has_toolsets
        """Whether a drive needs `engine.toolsets` (asked once: the program never changes)."""
        self._eager = not self._toolsets and all(
            isinstance(a.model, ScriptedModel) and not any(t.is_async for t in a.tools.values())
            for a in self.program.agents.values()
        )
        self.store: RunStore | None = open_store(store) if isinstance(store, str) else store
        self._loaded = durable.Loaded()
        """Runs `load_run` rebuilt lately, so resuming one does not read it again."""
        self._owns_store = isinstance(store, str)
        self._blocking: AsyncRunStore | None = Blocking(self.store) if self.store else None
        """The blocking store behind the async protocol, for the sync API."""
        self._aio: AsyncRunStore | None = async_face(self.store) if self.store else None
        """The store's async face, for the async API."""
        self._local = threading.local()
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._finalizer = weakref.finalize(self, _close_all, self._loops)
        self.observers = Observers(observers)
        """Who receives the events of every run of this runtime."""
        self._tracer = tracing_observer(tracing)
        if self._tracer is not None:
            self.observers.add(self._tracer)

    def add_observer(self, observer: Observer) -> Callable[[], None]:
        """Hand the events of every run from now on to `observer` too; returns a function that
        removes it again."""
        return self.observers.add(observer)

    # -- async core ----------------------------------------------------------------------

    async def arun(
        self,
        prompt: str,
        *,
        agent: str | None = None,
        run_id: str | None = None,
        user: str | None = None,
    ) -> Outcome:
        """Start a run of `agent` (the entrypoint by default) on `prompt`. With a store, the
        run's audit trail says `user` (default `os:LOGIN`) started it (`engine.audit`)."""
        return await self._start(prompt, agent, run_id, self.observers, blocking=False, user=user)

    async def aresume(
        self,
        continuation: Continuation,
        *,
        allow_spec_change: bool = False,
        user: str | None = None,
    ) -> Outcome:
        """Apply the decisions recorded in `continuation` and carry on. With a store, the
        audit trail says `user` (default `os:LOGIN`) made each decision the store did not
        record already (`engine.inbox`) and resumed the run."""
        return await self._resume(
            continuation, allow_spec_change, self.observers, blocking=False, user=user
        )

    async def arecover(
        self, run_id: str, *, allow_spec_change: bool = False, force: bool = False
    ) -> Outcome:
        """Continue a run whose process died, from its last checkpoint (needs a store).

        Calls that finished are never run again; a call left running runs again only if its
        tool is `idempotent`, otherwise the run suspends with reason `error` for a person.
        The run must have started with this spec (`allow_spec_change` as for resume). A run
        whose lease is live is refused with `LeaseHeldError` (its process seems alive) unless
        `force`; a run that had answered already finishes with that answer."""
        return await self._recover(run_id, allow_spec_change, force, self.observers, blocking=False)

    async def afork(
        self,
        run_id: str,
        *,
        at: int,
        new_run_id: str | None = None,
        prompt: str | None = None,
        allow_spec_change: bool = False,
        user: str | None = None,
    ) -> Outcome:
        """Start a new run (`new_run_id`, else a fresh id) whose history is stored run
        `run_id`'s up to its step `at` (`engine.history` numbers the steps), and carry it on
        under this runtime's spec: tool results by the step are reused and never run again,
        model calls after it are made afresh (`engine.fork` has the rules for calls under way
        or waiting at the step). `prompt` replaces the last user message. The run forked from
        is never changed. A spec other than the one `run_id` ran with is refused
        (`SpecChangedError`) unless `allow_spec_change`. Needs a store."""
        return await self._fork(
            run_id, at, new_run_id, prompt, allow_spec_change, self.observers, False, user
        )

    # -- streams ---------------------------------------------------------------------------

    def astream(
        self, prompt: str, *, agent: str | None = None, run_id: str | None = None
    ) -> AsyncIterator[RunEvent | Outcome]:
        """`arun`, yielding the run's events as they happen and then its outcome (`Finished`,
        `Stopped`, `Suspended` or `Failed`) as the last item. A consumer that leaves early
        cancels the run (see `engine._stream`)."""
        return _stream.stream(
            self.observers, lambda obs: self._start(prompt, agent, run_id, obs, blocking=False)
        )

    def astream_resume(
        self, continuation: Continuation, *, allow_spec_change: bool = False
    ) -> AsyncIterator[RunEvent | Outcome]:
        """`aresume`, yielding the run's events and then its outcome."""
        return _stream.stream(
            self.observers,
            lambda obs: self._resume(continuation, allow_spec_change, obs, blocking=False),
        )

    def astream_recover(
        self, run_id: str, *, allow_spec_change: bool = False, force: bool = False
    ) -> AsyncIterator[RunEvent | Outcome]:
        """`arecover`, yielding the run's events and then its outcome."""
        return _stream.stream(
            self.observers,
            lambda obs: self._recover(run_id, allow_spec_change, force, obs, blocking=False),
        )

    # -- driving ---------------------------------------------------------------------------

    async def _start(
        self,
        prompt: str,
        agent: str | None,
        run_id: str | None,
        observers: Observers,
        *,
        blocking: bool,
        user: str | None = None,
    ) -> Outcome:
        name = agent or self.spec.entrypoint
        if name not in self.spec.agents:
            known = ", ".join(sorted(self.spec.agents))
            raise UsageError(f"unknown agent {name!r}; agents of {self.spec.name}: {known}")
        root = Frame.new(name, [{"role": "user", "content": prompt}])
        run_id = run_id or _ids.run_id()
        store = self._face(blocking)
        journal = (
            await durable.start(store, self.spec, root, run_id, self._lease()) if store else None
        )
        if store is not None and journal is not None:
            journal.user = user or os_user()
            await store.add_audit(
                [run_entry(run_id, "started", user=journal.user, at=self.clock())]
            )
        opening = partial(
            RunStarted, run_id=run_id, path=name, invocation=name, agent=name, prompt=prompt
        )
        return await self._drive(root, run_id, journal, observers, opening, blocking)

    async def _resume(
        self,
        continuation: Continuation,
        allow_spec_change: bool,
        observers: Observers,
        *,
        blocking: bool,
        user: str | None = None,
    ) -> Outcome:
        self.check(continuation, allow_spec_change=allow_spec_change)
        first = continuation.frames()[0][1]  # read only: the drive runs a copy
        if not first.pending:
            raise ContinuationError(
                "the continuation waits on nothing: it records a finished run, or a failed "
                "run whose failure left nothing to resume (only a failed model call can be "
                "resumed)",
                pointer="/frames/0/pending",
            )
        if continuation.nonce in self._consumed:
            raise ContinuationError(
                "this continuation was already resumed by this runtime; resume the one its "
                "resume returned",
                pointer="/nonce",
            )
        agent = first.agent
        opening = partial(
            RunResumed,
            run_id=continuation.run_id,
            path=agent,
            invocation=agent,
            trace=getattr(continuation, "trace", None),
        )
        store = self._face(blocking)
        if store is None:
            self._consumed[continuation.nonce] = None
            if len(self._consumed) > REMEMBERED_NONCES:
                self._consumed.popitem(last=False)
            return await self._drive(
                continuation.root, continuation.run_id, None, observers, opening, blocking
            )
        root, journal = await durable.claim(  # refuses replays
            store, continuation, self._key, self._lease(), self._loaded
        )
        journal.user = user or os_user()
        await self._audit_resume(store, continuation, journal.user)
        if continuation.spec_digest != self.spec.digest:  # a changed spec it goes on with;
            await durable.keep_spec(store, self.spec)  # the one it started with is kept already
        return await self._drive(root, continuation.run_id, journal, observers, opening, blocking)

    async def _recover(
        self,
        run_id: str,
        allow_spec_change: bool,
        force: bool,
        observers: Observers,
        *,
        blocking: bool,
    ) -> Outcome:
        self._require_store()
        store = self._face(blocking)
        assert store is not None
        root, journal = await durable.recover(
            store,
            self.spec,
            run_id,
            self._key,
            lambda c: self.check(c, allow_spec_change=allow_spec_change),
            lease=self._lease(),
            force=force,
        )
        await durable.keep_spec(store, self.spec)
        journal.user = os_user()
        await store.add_audit([run_entry(run_id, "recovered", user=journal.user, at=self.clock())])
        trace = (await store.get_run(run_id)).trace if observers else None  # the last suspension's
        opening = partial(
            RunResumed,
            run_id=run_id,
            path=root.agent,
            invocation=root.agent,
            recovered=True,
            trace=trace,
        )
        return await self._drive(root, run_id, journal, observers, opening, blocking)

    async def _fork(
        self,
        source_id: str,
        at: int,
        new_run_id: str | None,
        prompt: str | None,
        allow_spec_change: bool,
        observers: Observers,
        blocking: bool,
        user: str | None,
    ) -> Outcome:
        self._require_store()
        store = self._face(blocking)
        assert store is not None
        source = await store.get_run(source_id)  # an unknown run is refused by its id
        planned = fork.plan(
            source,
            await store.events(source_id),
            at,
            spec=self.spec,
            run_id=new_run_id or _ids.run_id(),
            prompt=prompt,
            allow_spec_change=allow_spec_change,
        )
        root, journal = await fork.start(
            store,
            self.spec,
            planned,
            key=self._key,
            check=lambda c: self.check(c, allow_spec_change=allow_spec_change),
            lease=self._lease(),
            user=user or os_user(),
        )
        opening = partial(
            RunForked,
            run_id=journal.run_id,
            path=root.agent,
            invocation=root.agent,
            forked_from=source_id,
            step=at,
            agent=root.agent,
        )
        return await self._drive(root, journal.run_id, journal, observers, opening, blocking)

    def load(self, text: str | bytes) -> Continuation:
        """Parse a document, verifying its signature with this runtime's keys (if any)."""
        return Continuation.from_json(text, keys=self.keys)

    def load_run(self, run_id: str) -> Continuation:
        """The continuation a suspended run in the store waits on."""
        return durable.load(self._require_store(), run_id, self._key, self._loaded)

    async def aload_run(self, run_id: str) -> Continuation:
        """`load_run`, awaiting the store's async face."""
        self._require_store()
        assert self._aio is not None
        run, events = await self._aio.snapshot(run_id)
        return durable.waiting(run, events, key=self._key, loaded=self._loaded)

    @property
    def _key(self) -> bytes | None:
        return self.keys[0] if self.keys else None

    def _lease(self) -> Lease:
        """A fresh lease for one drive of a stored run."""
        return Lease(owner=lease.new_owner(), seconds=self.lease_seconds)

    def _face(self, blocking: bool) -> AsyncRunStore | None:
        """The store as the drive awaits it: called in place (sync API) or its async face."""
        return self._blocking if blocking else self._aio

    async def _audit_resume(
        self, store: AsyncRunStore, continuation: Continuation, user: str
    ) -> None:
        """Audit a claimed resume: a `decided` entry for each decision the store had not
        recorded before (those are audited where they were recorded), then `resumed`."""
        run_id = continuation.run_id
        recorded = {r.path for r in await store.recorded_decisions(run_id, continuation.nonce)}
        at = self.clock()
        entries = [
            decision_entry(
                run_id=run_id,
                at=at,
                user=user,
                path=view.path,
                call_id=view.id,
                tool=view.tool,
                fingerprint=view.fingerprint,
                arguments=view.arguments,
                decision=decision_to_data(decision),
            )
            for view, decision in continuation.decisions()
            if view.path not in recorded
        ]
        entries.append(run_entry(run_id, "resumed", user=user, at=at))
        await store.add_audit(entries)

    def _require_store(self) -> RunStore:
        if self.store is None:
            raise UsageError("this needs a run store: Runtime(spec, store=URL) or --store URL")
        return self.store

    async def _drive(
        self,
        root: Frame,
        run_id: str,
        journal: Journal | None,
        observers: Observers,
        opening: Callable[[], RunEvent],
        blocking: bool,
    ) -> Outcome:
        """Drive `root` to its outcome and settle the run in its store; observers see
        `opening()` (the run started or resumed) first and the event of the outcome last."""
        if observers:
            observers.emit(opening())
        try:
            return await self._settled(root, run_id, journal, observers, blocking)
        except BaseException as exc:  # cancelled, a store fault, a lost lease: observers (a
            if observers:  # tracer holding open spans) learn that this drive ended
                observers.emit(
                    RunFailed(
                        run_id=run_id,
                        path=root.agent,
                        invocation=root.agent,
                        reason=f"the drive was interrupted: {type(exc).__name__}: {exc}",
                        interrupted=True,
                    )
                )
            raise

    async def _settled(
        self,
        root: Frame,
        run_id: str,
        journal: Journal | None,
        observers: Observers,
        blocking: bool,
    ) -> Outcome:
        """The drive of `_drive`, up to its outcome settled in the store and told."""
        assign_paths(root)
        _json.orjson_ready()  # every call's arguments are read with it (`decode_arguments`)
        leased = journal is not None and journal.lease is not None
        before = root.grants
        granted = grants.take(root, run_id)  # decisions of scope `run` become grants
        ctx = RunContext(
            program=self.program,
            run_id=run_id,
            drive=drive,
            journal=journal,
            observers=observers,
            off_loop=leased and not blocking,
            clock=self.clock,
            toolsets=Toolsets(self.spec) if self._toolsets else None,
            grants=root.grants,
        )
        if observers:
            for done in granted:
                call_id, tool, args = done.entry.id, done.entry.tool or "", done.entry.arguments
                _emit.grant_applied(done.frame, call_id, tool, done.grant, args or {}, ctx)
        if journal is not None and (granted or root.grants != before):
            await journal.checkpoint(root)  # the grants are kept before anything runs
        try:
            if journal is not None and journal.lease is not None and blocking:
                assert self.store is not None  # a thread renews through the blocking store
                with lease.heartbeat(self.store, run_id, journal.lease):
                    result = await drive(root, ctx)
            elif journal is not None and journal.lease is not None:
                async with lease.aheartbeat(journal.store, run_id, journal.lease):  # a task
                    result = await drive(root, ctx)
            else:
                result = await drive(root, ctx)
        finally:  # nothing keeps running while a run waits: servers stop with the drive
            if ctx.toolsets is not None:
                await ctx.toolsets.aclose()
        outcome = self._outcome(result, root, run_id)
        if journal is not None:
            await journal.settle(
                status=outcome.kind,
                continuation=None
                if isinstance(outcome, Finished | Stopped)
                else outcome.continuation,
                output=outcome.output
                if isinstance(outcome, Finished | Stopped)
                else getattr(outcome, "reason", None),
                spec_digest=self.spec.digest,
                resumable=isinstance(outcome, Failed) and outcome.resumable,
                usage=outcome.usage,
            )
            if not isinstance(outcome, Suspended):  # the end of the run, or of this drive
                reason = outcome.reason if isinstance(outcome, Failed) else None
                entry = run_entry(
                    run_id, outcome.kind, user=journal.user, at=self.clock(), reason=reason
                )
                await journal.store.add_audit([entry])
        if observers:
            observers.emit(_ended(outcome, run_id, root.agent))
        return outcome

    def _outcome(self, result: End, root: Frame, run_id: str) -> Outcome:
        if isinstance(result, Finish) and result.stopped:
            log.info("run %s stopped by a decision", run_id)
            return Stopped(
                output=result.output, messages=root.messages, run_id=run_id, usage=of_stack(root)
            )
        if isinstance(result, Finish):
            log.info("run %s finished", run_id)
            return Finished(
                output=result.output, messages=root.messages, run_id=run_id, usage=of_stack(root)
            )
        document = Continuation(
            run_id=run_id,
            spec_name=self.spec.name,
            spec_digest=self.spec.digest,
            spec_path=self._spec_path,
            key=self.keys[0] if self.keys else None,
            root=root,
            trace=self._tracer.context_of(run_id) if self._tracer is not None else None,
        )
        if isinstance(result, Fail):
            log.info("run %s failed: %s", run_id, result.reason)
            return Failed(reason=result.reason, continuation=document, resumable=result.resumable)
        if log.isEnabledFor(logging.INFO):
            waiting = ", ".join(p.path for p in document.pending())
            log.info("run %s suspended on %s", run_id, waiting)
        return Suspended(continuation=document)

    # -- sync API ------------------------------------------------------------------------

    def run(
        self,
        prompt: str,
        *,
        agent: str | None = None,
        run_id: str | None = None,
        user: str | None = None,
    ) -> Outcome:
        """`arun`, for code that is not async."""
        return self._sync(
            self._start(prompt, agent, run_id, self.observers, blocking=True, user=user)
        )

    def resume(
        self,
        continuation: Continuation,
        *,
        allow_spec_change: bool = False,
        user: str | None = None,
    ) -> Outcome:
        """`aresume`, for code that is not async."""
        return self._sync(
            self._resume(continuation, allow_spec_change, self.observers, blocking=True, user=user)
        )

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        if asyncio._get_running_loop() is not None:  # `get_running_loop`, without raising
            coro.close()
            raise UsageError(
                "run/resume were called inside a running event loop; await arun/aresume"
            )
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()  # one per thread, reused: a new loop per call
            self._local.loop = loop  # costs more than a whole scripted model turn
            self._loops.append(loop)
        if self._eager:
            return _eager.run(loop, coro)
        return _eager.on_loop(loop, coro)

    def recover(
        self, run_id: str, *, allow_spec_change: bool = False, force: bool = False
    ) -> Outcome:
        """`arecover`, for code that is not async."""
        return self._sync(
            self._recover(run_id, allow_spec_change, force, self.observers, blocking=True)
        )

    def fork(
        self,
        run_id: str,
        *,
        at: int,
        new_run_id: str | None = None,
        prompt: str | None = None,
        allow_spec_change: bool = False,
        user: str | None = None,
    ) -> Outcome:
        """`afork`, for code that is not async."""
        return self._sync(
            self._fork(
                run_id, at, new_run_id, prompt, allow_spec_change, self.observers, True, user
            )
        )

    async def aclose(self) -> None:
        """Close the model clients' connections and, when this runtime opened the store
        from a URL, its async face's (the async counterpart of `close`: await it before the
        event loop that ran `arun` ends)."""
        for model in {id(a.model): a.model for a in self.program.agents.values()}.values():
            closer = getattr(model, "aclose", None)
            if closer is not None:
                await closer()
        if self._owns_store and self._aio is not None:
            await self._aio.aclose()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        self._release()

    def close(self) -> None:
        """Close model connections, the event loops the sync API opened, and the store if
        this runtime opened it from a URL."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is not None and not loop.is_closed() and not loop.is_running():
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no other loop runs in this thread: the sync one may
                loop.run_until_complete(self.aclose())
        self._release()

    def _release(self) -> None:
        """What `close` does that needs no event loop: the sync API's loops and the store."""
        self._finalizer()
        if self._owns_store and self.store is not None:
            self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checking a document before anything runs ---------------------------------------

    def check(self, continuation: Continuation, *, allow_spec_change: bool = False) -> None:
        """Refuse a document this spec cannot resume, before anything executes."""
        check_document(self.program, self.keys, continuation, allow_spec_change=allow_spec_change)

    def check_decisions(
        self, continuation: Continuation, decides: Sequence[Decide]
    ) -> Continuation:
        """`continuation` with `decides` made, refusing first what a resume would refuse of
        them, by the same `DecisionError`: an unknown or ambiguous id, a decision the entry
        does not allow or that it has already, edited arguments that fail the tool's
        parameters (`DecisionError.pointer`: where inside the arguments). Runs nothing."""
        decided = continuation.decide_many(decides)
        check_edits(self.program, decided)
        return decided


def _ended(outcome: Outcome, run_id: str, agent: str) -> RunEvent:
    """The event that ends a drive of the run: finished, suspended or failed."""
    if isinstance(outcome, Finished | Stopped):
        stopped = isinstance(outcome, Stopped)
        return RunFinished(
            run_id=run_id, path=agent, invocation=agent, output=outcome.output, stopped=stopped
        )
    if isinstance(outcome, Failed):
        return RunFailed(
            run_id=run_id,
            path=agent,
            invocation=agent,
            reason=outcome.reason,
            resumable=outcome.resumable,
        )
    pending = tuple(
        PendingInfo(
            path=p.path,
            id=p.id,
            reason=p.reason,
            tool=p.tool,
            detail=p.detail,
            prompt=p.prompt,
            arguments=p.arguments,
            decisions=p.decisions,
        )
        for p in outcome.continuation.pending()
    )
    return RunSuspended(run_id=run_id, path=agent, invocation=agent, pending=pending)


def _close_all(loops: list[asyncio.AbstractEventLoop]) -> None:
    for loop in loops:
        if not loop.is_running() and not loop.is_closed():
            loop.close()  # may run at garbage collection, inside someone else's event loop
    loops.clear()
