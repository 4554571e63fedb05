"""Every exception callcc raises, under one root.

Two families are kept apart on purpose: `UsageError` and its children say *you used callcc
wrong* (a bad spec, a bad continuation, a decision for an id that is not pending); `RunError`
and its children say *the run itself went wrong* (a model or a tool failed). The CLI maps the
first family to exit code 2 and the second to exit code 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from engine._diagnostic import Diagnostic as Diagnostic
else:  # on first use: `callcc --help` and the store commands never build one (nor dataclasses)
    from engine._lazy import exports as _exports

    __getattr__, __dir__ = _exports(__name__, {"Diagnostic": "engine._diagnostic"})


class CallccError(Exception):
    """Root of every error callcc raises."""


class UsageError(CallccError):
    """The library or the CLI was used wrongly; the input must be fixed (CLI exit 2)."""


class SpecError(UsageError):
    """A spec file is invalid; `diagnostics` holds every finding, sorted by file and line."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        self.errors = tuple(d for d in self.diagnostics if d.severity == "error")
        first = self.errors[0] if self.errors else self.diagnostics[0]
        more = len(self.errors) - 1
        tail = f" (and {more} more error{'s' if more != 1 else ''})" if more > 0 else ""
        super().__init__(f"{first.location()}: {first.code}: {first.message}{tail}")


class ContinuationError(UsageError):
    """A continuation document cannot be used: malformed, from another spec, or modified."""

    def __init__(self, message: str, *, pointer: str = "", suggestion: str | None = None) -> None:
        self.pointer = pointer
        self.suggestion = suggestion
        where = f" at {pointer}" if pointer else ""
        hint = f"; {suggestion}" if suggestion else ""
        super().__init__(f"{message}{where}{hint}")


class SpecChangedError(ContinuationError):
    """The spec's digest differs from the one recorded when the run suspended."""


class ForkError(UsageError):
    """A fork cannot be made as asked: a step the run does not have, or a new prompt at a
    step no model would read it (CLI exit 2). An unknown run is the store's `UsageError`."""

    def __init__(self, message: str, *, run_id: str, step: int, steps: int | None = None) -> None:
        self.run_id = run_id
        """The run to fork."""
        self.step = step
        """The step asked for."""
        self.steps = steps
        """How many steps the run has, when the step is not one of them."""
        super().__init__(message)


class DecisionError(UsageError):
    """A decision names no pending call, or is not allowed for the call it names."""

    def __init__(
        self,
        message: str,
        *,
        pending_ids: Iterable[str] = (),
        pointer: str | None = None,
        unknown: str | None = None,
    ) -> None:
        self.reason = message
        """What is wrong, without the list of pending paths."""
        self.unknown = unknown
        """The id that names no pending entry, when that is what is wrong (HTTP 404)."""
        self.pointer = pointer
        """For edited arguments that fail the tool's parameters: the JSON pointer of the
        offending value inside the arguments (`""`: the object as a whole); else None."""
        self.pending_ids = tuple(sorted(pending_ids))
        listed = ", ".join(self.pending_ids) if self.pending_ids else "none"
        super().__init__(f"{message}; pending: {listed}")


class RunError(CallccError):
    """The run failed while executing (CLI exit 1)."""


class ModelError(RunError):
    """A model call failed after the client's own retries."""

    def __init__(self, message: str, *, transient: bool, model: str = "") -> None:
        self.transient = transient
        self.model = model
        super().__init__(message)


class ScriptError(RunError):
    """A scripted model was asked for a turn its script does not have."""


class ToolServerError(RunError):
    """A tool server (`kind: mcp`) could not be reached, failed, or broke off a call."""

    def __init__(self, server: str, message: str) -> None:
        self.server = server
        super().__init__(f"MCP server {server!r}: {message}")


class ConflictError(UsageError):
    """Another process changed the run first (a second resume, a concurrent recovery)."""

    def __init__(self, message: str, *, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(message)


class LeaseHeldError(ConflictError):
    """The run's lease is live: the process that drives it seems alive, so it is not taken
    over (`callcc recover --force` takes it anyway)."""

    def __init__(self, run_id: str, *, owner: str, expires_at: float, remaining: float) -> None:
        self.owner = owner
        """Who holds the lease (`host:pid:random`)."""
        self.expires_at = expires_at
        """When the lease ends unless renewed (seconds since the epoch, the store's clock)."""
        self.remaining = remaining
        """Seconds left on the lease when the store was asked."""
        when = time.strftime("%H:%M:%S", time.localtime(time.time() + remaining))
        super().__init__(
            f"run {run_id!r} is held by a live process ({owner}; its lease, renewed while it "
            f"works, expires at {when}, in {remaining:.1f} s): its process seems alive, so it "
            "is not taken over. Wait for the run to suspend or finish; if that process is "
            "gone, recover after the lease expires, or now with --force (a call it is running "
            "may then take effect twice)",
            run_id=run_id,
        )


DecisionConflictWhy = Literal["not_suspended", "not_pending", "stale", "decided"]
"""Why a decision could not be recorded (`DecisionConflict.why`)."""


class DecisionConflict(ConflictError):
    """A decision cannot be recorded (`RunStore.record_decisions`): the run no longer waits on
    that continuation (`not_suspended`), the path is not pending in it (`not_pending`), the
    entry changed since the decider saw it (`stale`: its fingerprint differs), or it has a
    decision already (`decided`). Nothing of the batch was recorded."""

    def __init__(
        self, message: str, *, run_id: str, path: str | None, why: DecisionConflictWhy
    ) -> None:
        self.path = path
        """The pending entry's path (None when the whole run refused: not_suspended)."""
        self.why: DecisionConflictWhy = why
        """not_suspended, not_pending, stale or decided."""
        super().__init__(message, run_id=run_id)


class StoreError(UsageError):
    """The run store cannot be used: locked past its busy timeout, read-only, its folder
    missing, its disk full, its server gone for good (CLI exit 2). Nothing is lost: the run
    keeps its last checkpoint, and `callcc recover RUN_ID` continues it once the store is
    usable again."""

    def __init__(self, message: str, *, url: str, reason: str, hint: str) -> None:
        self.url = url
        """The store's URL, password masked."""
        self.reason = reason
        """What the driver said, in one line."""
        self.hint = hint
        """What to do about it."""
        super().__init__(f"{message} ({url}): {reason}; {hint}")
