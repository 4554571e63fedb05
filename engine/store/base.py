"""The run store protocol: what the interpreter needs to keep runs durably.

A run is a row (id, spec, status, version, timestamps, the nonce of the continuation it waits
on, its output or failure) plus an append-only list of events. Events are deltas of frames,
keyed by the frame's path (`""` for the root, `"/call_1/call_7"` for a sub-agent started by
call `call_1`, and so on): `messages` (messages from index `start` on, usually only new ones),
`state` (the frame without its messages: counters, ledger, results, pending entries) and
nothing else. Replaying the events rebuilds the continuation (`engine.journal`), so storage
grows with the messages, not with the number of steps.

A run may also keep one **snapshot**: every frame of its stack, messages and state, as replaying
its events up to some point gives them (`settle` writes it when a long run suspends, replacing
the one before). `snapshot` hands it out first, then only the events appended after it, so
rebuilding a run costs one document's parse plus a few events, however long its history; the
events themselves stay as they were appended (`events` returns them all).

Every write names the version it expects and bumps it; a write against another version raises
`ConflictError`, so of two processes driving one run only one can go on. `claim` is the door
to a resume: it succeeds once per suspension (its nonce), whoever asks first.

A running run also holds a **lease**: an owner id and an expiry, in the run's row. The process
that drives the run takes it (`start_run`, `claim`, `take_over`), renews it with every
checkpoint (`append` with `lease=`) and, while a long tool or model call runs, with `renew`
(a heartbeat every third of the lease, `engine.lease.heartbeat`); `settle` drops it. A run
whose lease is live belongs to a process that seems alive: `take_over` refuses it with
`LeaseHeldError` unless forced. Expiry is judged by the store's clock (the database server's
for PostgreSQL), so processes on machines whose clocks differ agree on it.
A store that cannot be used (locked, read-only, its disk full, its server gone for good) raises
`StoreError`, never a driver's exception. Text is kept exactly: a NUL or a lone surrogate in a
message, a result or an output is data (event payloads are JSON, which escapes both; text
columns go through `_sql.encode_text`).

Every store has two faces on one URL: the blocking `RunStore` methods (the CLI, scripts, the
sync `Runtime.run`) and `store.aio`, an `AsyncRunStore` whose methods are the same operations,
awaited (`Runtime.arun`): PostgreSQL on a small pool of asyncio connections, SQLite on one
worker thread per store. Both keep the contract below alike.

The inbox (migration 8). A suspended run's **pending rows** carry what a reviewer is shown
(agent, arguments, prompt, detail, allowed decisions, fingerprint, expiry, approvers; since
migration 10 the `policy` that made a call wait) and the name of its spec, so listing them
parses no document. `pending` lists them oldest first
(`created_at`, run, path), filtered by run, spec, tool or reason; `list_runs` lists runs newest
first (`updated_at`, id), by status or spec. Both page with an opaque, url-safe cursor made from
the last row of a page (`pending_cursor`, `run_cursor`; a malformed one is a UsageError): every
row that stays put meanwhile shows up exactly once however the pages fall, each page one index
range scan, as fast at 100,000 runs as at ten (`bench/bench_inbox_store.py`).

A **recorded decision** (`RecordedDecision`) is a person's (or the expiry's) decision for one
pending entry, kept until a resume applies it (`engine.inbox`): several reviewers decide items
of one run independently, and the run resumes once all are decided. `record_decisions` keeps a
batch in one transaction, all or nothing: the run must still wait on the nonce the reviewer
saw, each path must be pending in it with the fingerprint the reviewer saw, and none may have
a decision at that nonce already; else `DecisionConflict` says which (`why`: not_suspended,
not_pending, stale, decided) and nothing is kept. Of concurrent batches for one run, each item
is decided exactly once (PostgreSQL locks the run's row, SQLite's writes take the file's lock).
Decisions are keyed by nonce: settling the run again on the same nonce keeps them, and a new
suspension (a new nonce) starts undecided, the old ones left as history (`recorded_decisions`
with that nonce). A pending row is `decided` (on read) when a decision exists at the run's
current nonce; `expired(now=...)` lists undecided rows whose `expires_at` has come.

The **audit trail** (`AuditEntry`) is append-only: `add_audit` appends (the store numbers
entries, `seq`, increasing across the whole store), `record_decisions` appends its entries in
its own transaction, and nothing changes or removes an entry but the run's own deletion.

Retention: `delete` removes one run, `prune` the runs of some statuses not updated for a while
(never a suspended or running one unless asked), each with its events, pending rows, recorded
decisions and audit trail. Kept specs stay: one small row per digest, which a process that kept
it earlier counts on when it starts another run with it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from engine.errors import UsageError
from engine.store._statuses import RUN_STATUSES as RUN_STATUSES
from engine.store._statuses import RunStatus as RunStatus


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """One delta of one frame."""

    frame: str
    """The frame's path: `""` for the root, `"/call_1"` for the sub-agent call_1 started."""
    kind: Literal["messages", "state", "snapshot"]
    """`messages`: `data` is `{"start": i, "messages": [...]}`; `state`: the frame without
    messages, as in the continuation document (`pending[].child` is true/false); `snapshot`
    (frame `""`, never appended: `settle` keeps it and `snapshot` hands it out first):
    `{"frames": {path: {"messages": [...], "state": {...}}}}`, every frame of the stack."""
    data: dict[str, Any]
    """The payload, plain JSON."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    """One run as the store keeps it."""

    run_id: str
    """The run's id."""
    spec_name: str
    """`name` of the spec."""
    spec_digest: str
    """Digest of the spec the run started (or last resumed) with."""
    spec_path: str | None
    """Where the spec file was, as given."""
    agent: str
    """The entry agent."""
    status: RunStatus
    """running, suspended, finished, failed or stopped (ended by a `stop` decision)."""
    version: int
    """Bumped by every write; writes name the version they expect."""
    nonce: str | None
    """The nonce of the continuation a suspended run waits on."""
    output: str | None
    """The final reply (finished, stopped) or the failure reason (failed)."""
    created_at: float
    """Seconds since the epoch."""
    updated_at: float
    """Seconds since the epoch."""
    lease_owner: str | None = None
    """Who holds the run's lease (`host:pid:random`), None when nobody does."""
    lease_expires: float | None = None
    """When the lease ends unless renewed (seconds since the epoch, by the store's clock)."""
    input_tokens: int = 0
    """Prompt tokens the run spent, as of its last settled drive (`engine.usage`)."""
    output_tokens: int = 0
    """Completion tokens the run spent, as of its last settled drive."""
    trace: dict[str, str] | None = None
    """The W3C trace context (`traceparent`, `tracestate`) of the span that suspended the
    run, when it was traced; the continuation rebuilt from the store carries it."""
    forked_from: str | None = None
    """The run this one was forked from (`Runtime.fork`, `engine.fork`); None for a run that
    started afresh. Set when the run is started, never changed."""
    forked_at: int | None = None
    """The step of `forked_from` the fork was made at: this run's first `forked_at` events
    are that run's first ones, copied."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Lease:
    """What a process asks for when it takes or renews a run's lease."""

    owner: str
    """The holder's id, unique per drive (see `engine.lease.new_owner`)."""
    seconds: float
    """How long the lease lasts from now, unless renewed again."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingRow:
    """One decision a suspended run waits for, queryable without parsing documents."""

    run_id: str
    """The run."""
    path: str
    """`agent/.../call_id`, as `Continuation.pending()` names it."""
    call_id: str
    """The call (or synthetic) id."""
    tool: str | None
    """The tool called, None for frame-level waits."""
    reason: str
    """approval, external, turn_limit, pause or error."""
    created_at: float
    """When the run suspended on it (seconds since the epoch)."""
    agent: str = ""
    """The agent whose frame waits."""
    arguments: dict[str, Any] | None = None
    """The call's arguments (None for a frame-level wait)."""
    prompt: str | None = None
    """What the reviewer is asked."""
    detail: str | None = None
    """The limit reached, the error message, ..."""
    decisions: tuple[str, ...] = ()
    """The decision kinds allowed (`approve`, `reject`, `edit`, ...)."""
    fingerprint: str = ""
    """What a decision must match (`engine.frames.call_fingerprint`)."""
    expires_at: float | None = None
    """When an undecided entry expires (seconds since the epoch), None: never."""
    approvers: tuple[str, ...] = ()
    """Who may decide it (role or user names), empty: any approver."""
    policy: dict[str, Any] | None = None
    """Why a condition (the tool's `approval.when`) made the call wait, as the document holds
    it (`{"kind": "when", "when", "outcome", "error"?}`: `engine._codec.policy_from_data`
    reads it); None: no condition did."""
    spec_name: str = ""
    """`name` of the run's spec (the store fills it from the run; kept on the row so listing
    by spec needs no join)."""
    decided: bool = False
    """On read: a `RecordedDecision` exists for it at the run's current nonce."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedDecision:
    """A decision a person (or the expiry) made for one pending entry, kept until the run is
    resumed with it (`record_decisions`; `engine.inbox` applies them on resume)."""

    run_id: str
    """The run."""
    nonce: str
    """The nonce of the suspension it decides (a new suspension has a new nonce)."""
    path: str
    """The pending entry's path, as `PendingRow.path`."""
    fingerprint: str
    """The entry's fingerprint the decider saw; must equal the pending row's."""
    decision: dict[str, Any]
    """`{"kind": ..., "reason"?, "arguments"?, "result"?, "turns"?, "scope"?, "where"?}`:
    the fields of `engine.decisions.Decide` but its id, plain JSON."""
    user: str
    """Who decided (`os:NAME` from the CLI, the service's user, `callcc` for expiry)."""
    at: float
    """When (seconds since the epoch)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One line of a run's audit trail: who did what, when (append-only)."""

    run_id: str
    """The run."""
    at: float
    """When (seconds since the epoch)."""
    user: str
    """Who did it."""
    action: str
    """started, decided, resumed, expired, finished, failed, stopped, deleted, ..."""
    path: str | None = None
    """The pending entry it concerns, if one."""
    call_id: str | None = None
    """That entry's call id."""
    tool: str | None = None
    """That entry's tool."""
    fingerprint: str | None = None
    """That entry's fingerprint, as the decider saw it."""
    decision: str | None = None
    """The decision's kind (approve, reject, edit, ...)."""
    reason: str | None = None
    """The reason given with it."""
    before: Any = None
    """The arguments before an edit (plain JSON)."""
    after: Any = None
    """The arguments after an edit (plain JSON)."""
    detail: dict[str, Any] | None = None
    """Anything else worth keeping (plain JSON)."""
    seq: int = 0
    """Its place in the store's trail, set by the store (0 before it is added)."""


def pending_cursor(row: PendingRow) -> str:
    """The opaque, url-safe cursor that `pending(after=...)` continues after `row`."""
    return _cursor([row.created_at, row.run_id, row.path])


def run_cursor(record: RunRecord) -> str:
    """The opaque, url-safe cursor that `list_runs(after=...)` continues after `record`."""
    return _cursor([record.updated_at, record.run_id])


def _cursor(key: list[Any]) -> str:
    text = json.dumps(key, ensure_ascii=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_cursor(cursor: str, what: str, shape: tuple[type | tuple[type, ...], ...]) -> list[Any]:
    """The key inside a cursor `pending_cursor` or `run_cursor` made, checked against `shape`
    (the type of each part); UsageError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        key = None
    good = (
        isinstance(key, list)
        and len(key) == len(shape)
        and all(
            isinstance(part, kind) and not isinstance(part, bool)
            for part, kind in zip(key, shape, strict=True)
        )
    )
    if not good:
        raise UsageError(
            f"malformed {what} cursor {cursor[:80]!r}; pass the cursor a previous page returned"
            " (or none for the first page)"
        )
    return cast(list[Any], key)


PRUNE_GUARDED: tuple[RunStatus, ...] = ("running", "suspended")
"""Statuses `prune` refuses unless `include_suspended`: such a run may still go on. A failed
run that kept its nonce (it can be resumed or stopped) is guarded too: `prune` of `failed`
skips it unless `include_suspended`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecRow:
    """A spec's texts as the store keeps them, once per digest (see `engine.spec.SpecSource`)."""

    digest: str
    """The spec's digest: the key."""
    name: str
    """`name` of the spec."""
    path: str
    """The absolute path the spec file had when it was first kept."""
    text: str
    """The spec file's text."""
    instructions: dict[str, str]
    """Agent name -> the text of its `instructions_file`."""
    created_at: float
    """When it was first kept (seconds since the epoch)."""


class RunStore(Protocol):
    """Durable runs. Implementations: `engine.store.sqlite`, `engine.store.postgres`."""

    url: str
    """The URL the store was opened with (never contains a password: it is masked)."""

    def create_run(self, run: RunRecord) -> None:
        """Insert a new run (status running, version 0); ConflictError if the id exists."""
        ...

    def start_run(self, run: RunRecord, events: Sequence[Event], *, lease: Lease) -> int:
        """Insert a new run together with its first events and its lease, in one transaction
        (so no run exists without its first checkpoint); return its version (1 with events,
        0 without). ConflictError if the id exists."""
        ...

    def append(
        self, run_id: str, version: int, events: Sequence[Event], *, lease: Lease | None = None
    ) -> int:
        """Append events in one transaction if the run is at `version`; return the new
        version (version + 1). ConflictError when the version differs. With `lease`, renew
        it in the same write. It moves `updated_at` (PostgreSQL: once it is a second old, so
        that a checkpoint rewrites no index; see `engine.store.postgres`)."""
        ...

    def settle(
        self,
        run_id: str,
        version: int,
        *,
        status: RunStatus,
        nonce: str | None,
        output: str | None,
        pending: Sequence[PendingRow],
        spec_digest: str | None = None,
        usage: tuple[int, int] | None = None,
        trace: Mapping[str, str] | None = None,
        snapshot: Event | None = None,
    ) -> int:
        """Record the outcome of a drive (status, the nonce it waits on, output or failure
        reason), replace the run's pending rows and drop its lease, if at `version`; return
        the new version. `usage` (input, output tokens: the run's totals) replaces the
        counts kept when given; `trace` replaces the trace context kept (None: no trace).
        With `snapshot` (an event of kind `snapshot`), keep it in the same transaction as the
        run's snapshot, standing for every event appended so far."""
        ...

    def claim(self, run_id: str, nonce: str, *, lease: Lease | None = None) -> int:
        """Take a suspended run waiting on `nonce` for a resume: record the nonce as consumed,
        set status running (holding `lease`), bump and return the version. ConflictError when
        the run is not suspended on that nonce (already resumed, superseded, finished) —
        exactly one of any number of concurrent claims succeeds."""
        ...

    def take_over(
        self, run_id: str, version: int, *, lease: Lease | None = None, force: bool = False
    ) -> int:
        """For recovery: bump the version of a `running` run whose process died, so that
        process (if it lives after all) fails its next write, and give its lease to `lease`;
        return the new version. `LeaseHeldError` when the run's lease is live, unless
        `force`."""
        ...

    def renew(self, run_id: str, lease: Lease) -> bool:
        """The heartbeat: extend the lease of a running run that `lease.owner` holds, without
        bumping the version; False when it holds it no more (taken over, settled)."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """The run; `KeyError`-free: raises UsageError naming the id when unknown."""
        ...

    def events(self, run_id: str) -> list[Event]:
        """All events of a run, in append order."""
        ...

    def snapshot(self, run_id: str) -> tuple[RunRecord, list[Event]]:
        """The run and what rebuilds it: its latest snapshot (if it has one) followed by the
        events appended after it, else all its events; read in one transaction so they agree
        (a resume that reads them apart can see a row from before another process's claim and
        events from after it); raises UsageError naming the id when unknown."""
        ...

    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        limit: int = 100,
        after: str | None = None,
        spec: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (by last update), optionally of one status or one spec's name;
        `after` (a `run_cursor`) continues after that run."""
        ...

    def pending(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        run_id: str | None = None,
        spec: str | None = None,
        tool: str | None = None,
        reason: str | None = None,
    ) -> list[PendingRow]:
        """Pending decisions of suspended runs, oldest first, optionally of one run, spec
        name, tool or reason; `after` (a `pending_cursor`) continues after that row. Each
        row says whether it is `decided` already."""
        ...

    def record_decisions(
        self,
        run_id: str,
        nonce: str,
        decisions: Sequence[RecordedDecision],
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> int:
        """Keep decisions for pending entries of a run suspended on `nonce`, with `audit`, in
        one transaction; return how many of its pending entries are still undecided. All or
        nothing: `DecisionConflict` (`.why`: not_suspended, not_pending, stale, decided) when
        the run waits on no such nonce, a path is not pending, its fingerprint differs or it
        has a decision at that nonce already."""
        ...

    def recorded_decisions(self, run_id: str, nonce: str | None = None) -> list[RecordedDecision]:
        """The decisions kept for a run at `nonce` (None: the nonce it waits on now), in the
        order they were recorded."""
        ...

    def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit trail (their `seq` is ignored: the store numbers them)."""
        ...

    def audit(self, run_id: str, *, limit: int = 1000, after_seq: int = 0) -> list[AuditEntry]:
        """A run's audit trail, oldest first, from after `after_seq`."""
        ...

    def expired(self, *, now: float, limit: int = 100) -> list[PendingRow]:
        """Undecided pending entries of suspended runs whose `expires_at` is `now` or before,
        soonest expired first."""
        ...

    def put_spec(self, spec: SpecRow) -> None:
        """Keep a spec's texts under its digest; a digest kept already is left as it is."""
        ...

    def get_spec(self, digest: str) -> SpecRow | None:
        """The spec kept under `digest`, or None."""
        ...

    def delete(self, run_id: str) -> bool:
        """Delete a run with its events, pending rows, consumed nonces, recorded decisions and
        audit trail, whatever its status, in one transaction; False when the store holds no
        such run."""
        ...

    def prune(
        self,
        *,
        status: RunStatus | Sequence[RunStatus],
        older_than: float,
        include_suspended: bool = False,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete the runs of `status` (one or several) not updated for `older_than` seconds,
        with their rows, in one transaction; return their ids, least recently updated first.
        A `running` or `suspended` status is refused (UsageError) unless
        `include_suspended`, and a failed run that can still be resumed (it kept its nonce)
        is kept unless `include_suspended`. Each run goes whole or not at all: a claim that
        comes while prune runs waits for it. `dry_run` deletes nothing and returns what would
        go. Kept specs stay (see the module doc)."""
        ...

    @property
    def aio(self) -> AsyncRunStore:
        """The same store, awaited: every method above as a coroutine."""
        ...

    def close(self) -> None:
        """Release connections (the async face's too, when its event loop allows)."""
        ...


class AsyncRunStore(Protocol):
    """`RunStore`, awaited: the same operations and the same contract, for `Runtime.arun`,
    `aresume` and `arecover`, which never block their event loop on the store."""

    url: str
    """As `RunStore.url`."""

    async def create_run(self, run: RunRecord) -> None:
        """As `RunStore.create_run`."""
        ...

    async def start_run(self, run: RunRecord, events: Sequence[Event], *, lease: Lease) -> int:
        """As `RunStore.start_run`."""
        ...

    async def append(
        self, run_id: str, version: int, events: Sequence[Event], *, lease: Lease | None = None
    ) -> int:
        """As `RunStore.append`."""
        ...

    async def settle(
        self,
        run_id: str,
        version: int,
        *,
        status: RunStatus,
        nonce: str | None,
        output: str | None,
        pending: Sequence[PendingRow],
        spec_digest: str | None = None,
        usage: tuple[int, int] | None = None,
        trace: Mapping[str, str] | None = None,
        snapshot: Event | None = None,
    ) -> int:
        """As `RunStore.settle`."""
        ...

    async def claim(self, run_id: str, nonce: str, *, lease: Lease | None = None) -> int:
        """As `RunStore.claim`."""
        ...

    async def take_over(
        self, run_id: str, version: int, *, lease: Lease | None = None, force: bool = False
    ) -> int:
        """As `RunStore.take_over`."""
        ...

    async def renew(self, run_id: str, lease: Lease) -> bool:
        """As `RunStore.renew`."""
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """As `RunStore.get_run`."""
        ...

    async def events(self, run_id: str) -> list[Event]:
        """As `RunStore.events`."""
        ...

    async def snapshot(self, run_id: str) -> tuple[RunRecord, list[Event]]:
        """As `RunStore.snapshot`."""
        ...

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        limit: int = 100,
        after: str | None = None,
        spec: str | None = None,
    ) -> list[RunRecord]:
        """As `RunStore.list_runs`."""
        ...

    async def pending(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        run_id: str | None = None,
        spec: str | None = None,
        tool: str | None = None,
        reason: str | None = None,
    ) -> list[PendingRow]:
        """As `RunStore.pending`."""
        ...

    async def record_decisions(
        self,
        run_id: str,
        nonce: str,
        decisions: Sequence[RecordedDecision],
        *,
        audit: Sequence[AuditEntry] = (),
    ) -> int:
        """As `RunStore.record_decisions`."""
        ...

    async def recorded_decisions(
        self, run_id: str, nonce: str | None = None
    ) -> list[RecordedDecision]:
        """As `RunStore.recorded_decisions`."""
        ...

    async def add_audit(self, entries: Sequence[AuditEntry]) -> None:
        """As `RunStore.add_audit`."""
        ...

    async def audit(
        self, run_id: str, *, limit: int = 1000, after_seq: int = 0
    ) -> list[AuditEntry]:
        """As `RunStore.audit`."""
        ...

    async def expired(self, *, now: float, limit: int = 100) -> list[PendingRow]:
        """As `RunStore.expired`."""
        ...

    async def put_spec(self, spec: SpecRow) -> None:
        """As `RunStore.put_spec`."""
        ...

    async def get_spec(self, digest: str) -> SpecRow | None:
        """As `RunStore.get_spec`."""
        ...

    async def delete(self, run_id: str) -> bool:
        """As `RunStore.delete`."""
        ...

    async def prune(
        self,
        *,
        status: RunStatus | Sequence[RunStatus],
        older_than: float,
        include_suspended: bool = False,
        dry_run: bool = False,
    ) -> list[str]:
        """As `RunStore.prune`."""
        ...

    async def aclose(self) -> None:
        """Release the async face's connections (call it before its event loop ends); it
        opens them again when used after."""
        ...
