"""`callcc decide RUN_ID`: record decisions for a stored run without resuming it, and the
handlers of `callcc runs expire` and `callcc runs audit` (registered by `cli/runs`). Decisions
made here are audited as `os:LOGIN`; `engine.inbox` does the work."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli._decisions import add_decision_flags
from engine.cli._exit import EXIT_OK
from engine.cli._stored import open_existing, store_url_of
from engine.errors import UsageError
from engine.store import STORE_ENV

if TYPE_CHECKING:
    from engine.runtime import Runtime
    from engine.spec import Spec
    from engine.store import RunStore
    from engine.store.base import AuditEntry


def register(sub: Any) -> None:
    """Add `decide`."""
    decide = sub.add_parser(
        "decide",
        help="record decisions for a stored run without resuming it",
        description="Record decisions for pending entries of a run in the store, checked as a "
        "resume would check them and audited as your OS user, without resuming: several "
        "people may decide the entries of one run, each in turn. `callcc resume RUN_ID` then "
        "resumes with every recorded decision. Exit 0 recorded, 2 refused (bad input, or the "
        "entry was decided or changed meanwhile: nothing is recorded).",
    )
    decide.add_argument("run_id", metavar="RUN_ID", help="the suspended run, in --store")
    add_decision_flags(decide)
    decide.add_argument("--spec", metavar="SPEC", help="the spec (default: the one the store kept)")
    decide.add_argument(
        "--allow-module",
        action="append",
        metavar="PREFIX",
        help="only import python tools from modules under PREFIX (repeatable)",
    )
    decide.add_argument("--store", metavar="URL", help=f"the run store (default ${STORE_ENV})")
    decide.add_argument("--format", choices=["text", "json"], default="text", help="output")
    decide.set_defaults(handler=decide_command)


def _store(args: argparse.Namespace) -> RunStore:
    url = store_url_of(args)
    if not url:
        raise UsageError(f"no run store: pass --store URL or set {STORE_ENV}")
    return open_existing(url)


def _runtime(spec: Spec, store: RunStore, args: argparse.Namespace) -> Runtime:
    from engine.runtime import Runtime

    return Runtime(
        spec,
        store=store,
        model_override=getattr(args, "model", None),
        allowed_modules=getattr(args, "allow_module", None),
    )


def _spec_of(store: RunStore, run_id: str, args: argparse.Namespace) -> Spec:
    from engine.durable import spec_of_run
    from engine.spec import load_spec

    return load_spec(args.spec) if getattr(args, "spec", None) else spec_of_run(store, run_id)


def decide_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc decide`."""
    from engine.audit import os_user
    from engine.cli._decisions import flag_decisions
    from engine.cli._output import describe
    from engine.inbox import apply_recorded, record

    user = os_user()
    store = _store(args)
    try:
        spec = _spec_of(store, args.run_id, args)
        with _runtime(spec, store, args) as runtime:
            waiting = runtime.load_run(args.run_id)
            current = apply_recorded(waiting, store.recorded_decisions(args.run_id, waiting.nonce))
            decides = flag_decisions(current, args)
            if not decides:
                raise UsageError(
                    "no decision was given (or `all` found nothing undecided); waiting:\n"
                    + describe(current.undecided()).rstrip("\n")
                )
            recorded = record(runtime, args.run_id, decides, user=user)
    finally:
        store.close()
    url = store_url_of(args)
    if args.format == "json":
        data = {
            "run_id": args.run_id,
            "user": user,
            "recorded": [
                {"path": path, "decision": d.kind}
                for path, d in zip(recorded.paths, decides, strict=True)
            ],
            "remaining": recorded.remaining,
        }
        stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        return EXIT_OK
    for path, d in zip(recorded.paths, decides, strict=True):
        stdout.write(f"recorded: {d.kind} {path} (by {user})\n")
    resume = f"callcc resume {args.run_id} --store {url}"
    if recorded.remaining:
        stdout.write(
            f"{recorded.remaining} still undecided; `callcc decide {args.run_id} ...` records "
            f"more, `{resume}` resumes with what is recorded (the rest waits again)\n"
        )
    else:
        stdout.write(f"every entry is decided: `{resume}` resumes the run\n")
    return EXIT_OK


def expire_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs expire`."""
    from engine.inbox import expire

    store = _store(args)
    runtimes: dict[str, Runtime] = {}

    def runtime_for(run_id: str) -> Runtime:
        spec = _spec_of(store, run_id, args)
        if spec.digest not in runtimes:
            runtimes[spec.digest] = _runtime(spec, store, args)
        return runtimes[spec.digest]

    try:
        expired = expire(runtime_for, store=store)
        statuses = {run_id: store.get_run(run_id).status for run_id in expired}
    finally:
        for runtime in runtimes.values():
            runtime.close()
        store.close()
    if args.format == "json":
        data = [{"run_id": run_id, "status": status} for run_id, status in statuses.items()]
        stdout.write(json.dumps({"expired": data}) + "\n")
        return EXIT_OK
    if not expired:
        stdout.write("nothing expired\n")
    for run_id, status in statuses.items():
        after = {"suspended": "still waits on entries not expired"}.get(status, status)
        stdout.write(f"expired: run {run_id}: {after}\n")
    return EXIT_OK


def audit_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs audit`."""
    store = _store(args)
    try:
        store.get_run(args.run_id)  # an unknown run is refused, not shown as empty
        entries = store.audit(args.run_id)
    finally:
        store.close()
    if args.format == "json":
        stdout.write(json.dumps([_entry_data(e) for e in entries], ensure_ascii=False) + "\n")
    else:
        for entry in entries:
            stdout.write(_entry_line(entry) + "\n")
        if not entries:
            stdout.write("no audit entries (the run was kept by a callcc without an audit)\n")
    return EXIT_OK


def _entry_data(entry: AuditEntry) -> dict[str, Any]:
    fields = ("at", "user", "action", "path", "call_id", "tool", "fingerprint", "decision")
    data = {name: getattr(entry, name) for name in fields}
    data.update(reason=entry.reason, before=entry.before, after=entry.after)
    data.update(detail=entry.detail, seq=entry.seq)
    return data


def _entry_line(entry: AuditEntry) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.at))
    words = [when, entry.user, entry.action]
    if entry.decision:
        words.append(entry.decision)
    if entry.path:
        words.append(entry.path)
    line = "  ".join(words)
    if entry.reason:
        line += f"  ({entry.reason})"
    if entry.before is not None or entry.after is not None:
        from engine.masking import mask  # as `pending` shows arguments; json keeps them

        before = json.dumps(mask(entry.before), ensure_ascii=False)
        after = json.dumps(mask(entry.after), ensure_ascii=False)
        line += f"  {before} -> {after}"
    if entry.detail:
        line += "  " + json.dumps(entry.detail, ensure_ascii=False)
    return line
