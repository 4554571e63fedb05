"""What a `Runtime` with a run store does beyond running: start, claim, recover, transfer.

Kept apart from `runtime` so the store-less path stays small; only this module and `journal`
know the store's protocol (`engine.store.base`), and neither imports a database driver. What a
drive does (start, claim, recover) awaits the store's async protocol: the store's async face
under `arun`, the blocking store called in place under `run`; what the CLI asks (`load`,
`spec_of_run`) uses the blocking store.
"""

from __future__ import annotations

import logging
import marshal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.continuation import Continuation
from engine.errors import (
    ConflictError,
    ContinuationError,
    LeaseHeldError,
    RunError,
    SpecError,
    UsageError,
)
from engine.frames import Edit, Frame, walk
from engine.journal import Journal, rebuild, unsnapped
from engine.spec.load import load_spec, load_stored_spec
from engine.spec.model import Spec, SpecSource
from engine.store.base import AsyncRunStore, Event, Lease, RunRecord, RunStore, SpecRow

log = logging.getLogger("callcc.run")


async def start(
    store: AsyncRunStore, spec: Spec, root: Frame, run_id: str, lease: Lease
) -> Journal:
    """Create the run, its first checkpoint and its lease in one write, so no run exists
    without its prompt (a crash before the write leaves nothing: the run starts again)."""
    now = time.time()
    await keep_spec(store, spec)
    journal = Journal(store=store, run_id=run_id, version=0, lease=lease)
    delta = journal.delta(root)
    assert delta is not None  # a frame never checkpointed has its whole state to write
    events, state = delta
    journal.unsnapped = len(events)
    journal.version = await store.start_run(
        RunRecord(
            run_id=run_id,
            spec_name=spec.name,
            spec_digest=spec.digest,
            spec_path=str(Path(spec.path).resolve()) if spec.path else None,
            agent=root.agent,
            status="running",
            version=0,
            nonce=None,
            output=None,
            created_at=now,
            updated_at=now,
        ),
        events,
        lease=lease,
    )
    journal.saved(root, state)
    return journal


async def keep_spec(store: AsyncRunStore, spec: Spec) -> None:
    """Keep the texts `spec` was loaded from under its digest (once; a spec built in Python
    has none), so `spec_of_run` finds it from any directory and any machine."""
    source = spec.source
    if source is not None:
        await store.put_spec(
            SpecRow(
                digest=spec.digest,
                name=spec.name,
                path=source.path,
                text=source.text,
                instructions=dict(source.instructions),
                created_at=time.time(),
            )
        )


def spec_of_run(store: RunStore, run_id: str, *, allow_spec_change: bool = False) -> Spec:
    """The spec to resume or recover a run with, when none is given: the one the store kept
    under the run's digest (its scripts and tool modules looked up in the absolute folder it
    came from), or else the spec file at the path recorded with the run. With
    `allow_spec_change`, the file at the recorded path wins, so an edited spec is picked up.
    Logs where the spec came from; a path that cannot be read says where it was recorded."""
    run = store.get_run(run_id)
    kept = store.get_spec(run.spec_digest)
    recorded = run.spec_path
    if kept is not None and not (allow_spec_change and recorded and Path(recorded).is_file()):
        source = SpecSource(text=kept.text, instructions=kept.instructions, path=kept.path)
        log.info("spec %s: the copy kept in the store (from %s)", kept.name, kept.path)
        return load_stored_spec(source)
    if not recorded:
        raise UsageError(f"run {run_id!r} records no spec and the store keeps none; pass --spec")
    log.info("spec %s: the path recorded with run %s", recorded, run_id)
    try:
        return load_spec(recorded)
    except SpecError as exc:
        where = (
            "" if Path(recorded).is_absolute() else ", relative to the folder `callcc run` ran in"
        )
        raise UsageError(
            f"{exc}; the path {recorded!r} was recorded with run {run_id!r} when it started"
            f"{where}, and the store keeps no copy of its spec; pass --spec SPEC"
        ) from None


@dataclass(frozen=True, slots=True)
class _Rebuilt:
    version: int
    """The run's version the stack was rebuilt at."""
    root: Frame
    """The stack, owned by whoever holds this (nothing else refers to any of its parts)."""
    unsnapped: int
    """Events after the run's snapshot then (see `Journal.unsnapped`)."""


def _private(value: Any) -> Any:
    """A copy of plain JSON data sharing nothing with `value` (marshal: several times faster
    than `copy.deepcopy`); ValueError when nested deeper than marshal goes."""
    return marshal.loads(marshal.dumps(value))


@dataclass
class Loaded:
    """The stacks `load` rebuilt lately, by run id, so the `claim` of the resume that usually
    follows need not read and parse the whole run again. A claim takes one only while the run
    is still at the version it was rebuilt at (every write bumps it), so it is exactly what
    reading the store again would give. Each is a private copy, down to the messages, of the
    continuation `load` returned: whatever is done to that one (or to a document made from it)
    changes nothing here. Holds the latest `size` runs."""

    size: int = 8
    """How many runs it holds."""
    _runs: dict[str, _Rebuilt] = field(default_factory=dict)

    def keep(self, run_id: str, version: int, continuation: Continuation, unsnapped: int) -> None:
        """Keep a private copy of `continuation`, rebuilt at `version`."""
        root = continuation.root  # its own frames and entries, sharing their values
        try:
            for _, frame in walk(root):
                frame.messages = _private(frame.messages)
                for entry in frame.pending:  # arguments too: a caller changing the arguments
                    if entry.arguments is not None:  # of what `load_run` returned must not
                        entry.arguments = _private(entry.arguments)  # change what runs
                    if isinstance(entry.decision, Edit):
                        entry.decision = replace(
                            entry.decision, arguments=_private(entry.decision.arguments)
                        )
        except ValueError:  # nested deeper than marshal goes: a claim reads the store again
            return
        self._runs.pop(run_id, None)
        self._runs[run_id] = _Rebuilt(version, root, unsnapped)
        while len(self._runs) > self.size:
            self._runs.pop(next(iter(self._runs)), None)

    def take(self, run_id: str) -> _Rebuilt | None:
        """The stack kept for `run_id` (no longer kept), or None."""
        return self._runs.pop(run_id, None)


def load(
    store: RunStore, run_id: str, key: bytes | None, loaded: Loaded | None = None
) -> Continuation:
    """The continuation a suspended run waits on, rebuilt from its checkpoints (the row and
    its events read in one transaction, so they always belong together), kept in `loaded`
    for the claim of its resume."""
    run, events = store.snapshot(run_id)
    return waiting(run, events, key=key, loaded=loaded)


def waiting(
    run: RunRecord, events: list[Event], *, key: bytes | None, loaded: Loaded | None = None
) -> Continuation:
    """The continuation a run read from the store waits on (`load`, `Runtime.aload_run`),
    kept in `loaded` for the claim of its resume; `not_waiting` when it waits on nothing."""
    if run.status != "suspended" and not _resumable_failure(run):
        raise not_waiting(run)
    continuation = rebuild(run, events, key=key)
    if loaded is not None:
        loaded.keep(run.run_id, run.version, continuation, unsnapped(events))
    return continuation


def not_waiting(run: RunRecord) -> ConflictError:
    """The refusal to resume a run that is not suspended: another process resumed it (or it
    ended). A run a live process works on says to wait, never to recover it."""
    ident = run.run_id
    if run.status == "running" and _lease_live(run):
        until = time.strftime("%H:%M:%S", time.localtime(run.lease_expires or 0))
        why = (
            f"another process resumed or started run {ident!r}: it is running, not suspended, "
            f"and a live process is working on it (its lease, renewed while it works, runs "
            f"until {until}); wait until it suspends or finishes"
        )
    elif run.status == "running":
        why = (
            f"run {ident!r} is running, not suspended, but no live process holds its lease: "
            f"if its process died, recover continues it (`callcc recover {ident}`)"
        )
    else:
        why = (
            f"run {ident!r} is {run.status}, not suspended: nothing waits for a decision any "
            "more (its suspension was resumed before, by this or another process, or the run "
            "was cancelled)"
        )
    return ConflictError(f"{why}; `callcc runs show {ident}` shows where it stands", run_id=ident)


async def claim(
    store: AsyncRunStore,
    decided: Continuation,
    key: bytes | None,
    lease: Lease,
    loaded: Loaded | None = None,
) -> tuple[Frame, Journal]:
    """Take the run for a resume: the store's own state plus the decisions of `decided`.

    The store is the source of truth for everything but the decisions, so a document edited
    on its way back can change nothing else (its state comes from `loaded` when the run was
    loaded there at the version it is still at). Exactly one of concurrent claims wins."""
    run, rebuilt = await _stored(store, decided.run_id, key, loaded)
    waits = run.status == "suspended" or _resumable_failure(run)
    if not waits or run.nonce != decided.nonce:
        raise ConflictError(
            f"another process resumed run {decided.run_id!r}: it no longer waits on this "
            f"continuation (the run is {run.status} now); `callcc runs show {decided.run_id}`"
            " shows where it stands",
            run_id=decided.run_id,
        )
    root = rebuilt.root
    transfer_decisions(decided, root)
    version = await store.claim(decided.run_id, decided.nonce, lease=lease)
    journal = Journal(
        store=store,
        run_id=decided.run_id,
        version=version,
        lease=lease,
        unsnapped=rebuilt.unsnapped,
    )
    journal.prime(root)
    await journal.checkpoint_all(root)  # the decisions are kept before anything runs
    return root, journal


async def _stored(
    store: AsyncRunStore, run_id: str, key: bytes | None, loaded: Loaded | None
) -> tuple[RunRecord, _Rebuilt]:
    """The run's row and its continuation as the store holds them now: the one `loaded`
    kept when the run is still at its version, else rebuilt from a fresh read."""
    kept = loaded.take(run_id) if loaded is not None else None
    if kept is not None:
        run = await store.get_run(run_id)
        if run.version == kept.version:
            return run, kept
    run, events = await store.snapshot(run_id)
    return run, _Rebuilt(run.version, rebuild(run, events, key=key).root, unsnapped(events))


def _resumable_failure(run: RunRecord) -> bool:
    """A failed run that kept the nonce of its continuation: it waits on a decision (resume
    or stop) and is claimed like a suspended run."""
    return run.status == "failed" and run.nonce is not None


async def recover(
    store: AsyncRunStore,
    spec: Spec,
    run_id: str,
    key: bytes | None,
    check: Callable[[Continuation], None],
    *,
    lease: Lease,
    force: bool = False,
) -> tuple[Frame, Journal]:
    """Take over a run whose process died and continue from its last checkpoint, once
    `check` accepted the rebuilt stack (the spec it ran with, every entry).

    A run whose lease is live is refused (`LeaseHeldError`) unless `force`: its process
    seems alive. The store judges the lease again when it takes the run over."""
    run, events = await store.snapshot(run_id)
    if run.status != "running":
        raise UsageError(
            f"run {run_id!r} is {run.status}; recover continues runs whose process died "
            "while running"
        )
    if not force and _lease_live(run):  # refused before any work; take_over judges it again
        assert run.lease_owner is not None and run.lease_expires is not None
        raise LeaseHeldError(
            run_id,
            owner=run.lease_owner,
            expires_at=run.lease_expires,
            remaining=run.lease_expires - time.time(),
        )
    if not any(event.frame == "" for event in events):
        await _fail_unstarted(store, run, lease, force)
    continuation = rebuild(run, events, key=key, spec=spec)
    check(continuation)
    version = await store.take_over(run_id, run.version, lease=lease, force=force)
    root = continuation.root
    journal = Journal(
        store=store, run_id=run_id, version=version, lease=lease, unsnapped=unsnapped(events)
    )
    journal.prime(root)
    return root, journal


def _lease_live(run: RunRecord) -> bool:
    """True when the run's lease has not expired by this process's clock."""
    return run.lease_expires is not None and run.lease_expires > time.time()


async def _fail_unstarted(store: AsyncRunStore, run: RunRecord, lease: Lease, force: bool) -> None:
    """Mark failed a run with no checkpoint of its root frame, and say so (`RunError`).

    `start` writes a run and its first checkpoint at once, so only a callcc from before that
    (which wrote them apart) can have left such a run, killed in between: its prompt was
    never stored, so nothing can continue it."""
    reason = (
        f"run {run.run_id!r} has no checkpoint of its root frame: its process died before the "
        "prompt was stored (only a callcc older than this one leaves such runs), so it cannot "
        "be continued; it is marked failed: run it again with a new --run-id"
    )
    version = await store.take_over(run.run_id, run.version, lease=lease, force=force)
    await store.settle(run.run_id, version, status="failed", nonce=None, output=reason, pending=[])
    raise RunError(reason)


def transfer_decisions(decided: Continuation, root: Frame) -> None:
    """Copy every decision of `decided` onto the matching entry of `root` (same path and
    fingerprint), refusing a decision that has no such entry."""
    wanted = {view.path: entry for view, entry in decided._leaves() if entry.decision}
    for path, frame in walk(root):
        for entry in frame.pending:
            source = wanted.pop("/".join((*path, entry.id)), None)
            if source is None:
                continue
            decision = source.decision
            if source.fingerprint != entry.fingerprint or decision is None:
                raise ContinuationError(
                    f"the decision for {entry.id!r} answers another call than the run waits on",
                    pointer="/frames",
                )
            if decision.kind not in entry.decisions:
                raise ContinuationError(
                    f"decision {decision.kind!r} is not allowed for {entry.id!r} "
                    f"(allowed: {', '.join(entry.decisions) or 'none'})",
                    pointer="/frames",
                )
            entry.decision = decision
    if wanted:
        raise ContinuationError(
            f"decisions for calls the run does not wait on: {', '.join(sorted(wanted))}"
        )
