"""What `render`, `inspect` and `pending` read when given a RUN_ID and a store instead of a
file: a path that exists is always the file (said on stderr when `--store` also holds a run
of that id); anything else is a run id of the store (`--store`, else `CALLCC_STORE`), shown
with the decisions recorded for it (`callcc decide`, the inbox) made. Also where the CLI
finds its store URL and opens a store that must exist."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from engine.errors import UsageError
from engine.store import STORE_ENV

if TYPE_CHECKING:
    from engine.continuation import Continuation
    from engine.store import RunRecord, RunStore


def stored_stack(source: str, args: argparse.Namespace, stderr: TextIO) -> Continuation | None:
    """The stack of the stored run `source` names, or None when `source` is to be read as a
    file (it exists, or no store is given: reading it then says it is missing)."""
    found = stored_run(source, args, stderr)
    return found[0] if found is not None else None


def stored_run(
    source: str, args: argparse.Namespace, stderr: TextIO
) -> tuple[Continuation, RunRecord] | None:
    """`stored_stack`, with the run's row (what a picture says of it beyond its stack)."""
    explicit = getattr(args, "store", None)
    url = store_url_of(args)
    if Path(source).exists():
        if explicit and _holds(url, source):
            print(
                f"callcc: note: {source} is a file and also a run id in the store; reading "
                f"the file (to read the stored run, name it from a folder without that file)",
                file=stderr,
            )
        return None
    if not url:
        return None
    return _stack(url, source)


def store_url_of(args: argparse.Namespace) -> str | None:
    """`--store`, else `CALLCC_STORE`, else None."""
    url: str | None = getattr(args, "store", None) or os.environ.get(STORE_ENV) or None
    if url and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":  # messages and hints name the file opened
            url = f"sqlite:///{Path(relative).resolve()}"
    return url


def no_such_file(source: str) -> UsageError:
    """The refusal of a source that is neither a file nor, without a store, a run id."""
    return UsageError(
        f"cannot read {source}: no such file; to read a stored run by its id, name its store: "
        f"--store URL or {STORE_ENV}"
    )


def open_store_of(args: argparse.Namespace) -> RunStore:
    """The store `--store` (else `CALLCC_STORE`) names, which must exist (`open_existing`)."""
    url = store_url_of(args)
    if not url:
        raise UsageError(f"no run store: pass --store URL or set {STORE_ENV}")
    return open_existing(url)


def open_existing(url: str) -> RunStore:
    """The store at `url`, refusing a SQLite file that does not exist: a command that reads
    runs must not make an empty store out of a mistyped path."""
    from engine.store import open_store

    if url.startswith("sqlite:///"):
        from engine.store.sqlite import database_path

        path = database_path(url)
        if path != ":memory:" and not Path(path).is_file():
            raise UsageError(
                f"no run store at {path}: the file does not exist (sqlite:///PATH is relative "
                "to the current folder, sqlite:////PATH absolute); `callcc run --store URL` "
                "creates a store"
            )
    return open_store(url)


def _holds(url: str | None, run_id: str) -> bool:
    if not url:
        return False
    try:
        store = open_existing(url)
    except UsageError:
        return False
    try:
        store.get_run(run_id)
    except UsageError:  # no such run, or an id no run can have
        return False
    finally:
        store.close()
    return True


def _stack(url: str, run_id: str) -> tuple[Continuation, RunRecord]:
    from engine.inbox import apply_recorded
    from engine.journal import rebuild
    from engine.signing import keys_from_env

    keys = keys_from_env()
    store = open_existing(url)
    try:
        run, events = store.snapshot(run_id)  # one transaction: the row and stack agree
        stack = rebuild(run, events, key=keys[0] if keys else None)
        if not stack.pending():
            return stack, run
        return apply_recorded(stack, store.recorded_decisions(run_id, stack.nonce)), run
    finally:
        store.close()
