"""`callcc runs list|show|pending|expire|audit|history|fork|prune` and `callcc recover`: the run
store from the shell (`expire` and `audit` are handled in `cli/inbox`, `history` and `fork` in
`cli/fork`)."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli._exit import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_SUSPENDED
from engine.cli._options import TEMPORAL_ENV, temporal_lookup_options, temporal_of
from engine.cli._output import progress, report, warn_unused
from engine.cli._stored import open_store_of
from engine.errors import CallccError, LeaseHeldError, UsageError
from engine.store import STORE_ENV
from engine.store._statuses import RUN_STATUSES

if TYPE_CHECKING:  # `runs list` reads rows: the runtime, specs and journal load on demand
    from engine.store import RunRecord, RunStore


def register(sub: Any) -> None:
    """Add `runs` (with list, show, pending) and `recover`."""
    runs = sub.add_parser(
        "runs",
        help="list, show and prune the runs kept in a run store",
        description=f"Query the run store given by --store or ${STORE_ENV}.",
    )
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="runs, newest first")
    listing.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    listing.add_argument("--limit", type=_limit, default=50, help="at most this many (50)")
    _store_options(listing)
    temporal_lookup_options(listing, "add each run's workflow status from this server")
    listing.set_defaults(handler=list_command)
    show = actions.add_parser("show", help="one run: its record and its call stack")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--spec", metavar="SPEC", help="the spec, to show limits")
    _store_options(show)
    temporal_lookup_options(show, "add the run's workflow status from this server")
    show.set_defaults(handler=show_command)
    cancel = actions.add_parser(
        "cancel",
        help="end a run on Temporal as stopped, and wait until it has ended",
        description="Send the run's workflow its cancel signal: a waiting run ends as stopped "
        "at once (output `cancelled: REASON`), a running one when it next waits (or it "
        "finishes first); then wait until the workflow has completed and print how the run "
        "ended, as the store has it. Needs --temporal (a run without a workflow has no "
        "cancel: decide what it waits for with `callcc resume`). Exit 0 once the run has "
        "ended (also when it had ended before), 1 when its workflow closed otherwise "
        "(failed, terminated), 2 for an unknown run or a run with no workflow, 3 when "
        "--timeout passed first (the cancel stays sent). No worker polling the run's task "
        "queue is said on stderr before the wait.",
    )
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument(
        "--timeout",
        type=_seconds_type,
        metavar="SECONDS",
        help="stop waiting after this long, exit 3 (default: wait until the run has ended)",
    )
    cancel.add_argument("--reason", default="cancelled", metavar="TEXT", help="why (cancelled)")
    _store_options(cancel)
    temporal_lookup_options(cancel, "the server whose workflow drives the run")
    cancel.set_defaults(handler=cancel_command)
    pending = actions.add_parser("pending", help="every pending decision, oldest first")
    pending.add_argument("--limit", type=_limit, default=100, help="at most this many (100)")
    _store_options(pending)
    pending.set_defaults(handler=pending_command)
    expire = actions.add_parser(
        "expire",
        help="reject the pending calls whose approval.expires_after passed",
        description="Reject, as user callcc, every undecided call whose tool's "
        "approval.expires_after has passed (the model is told: 'expired: no decision within "
        "24h'), and resume each run whose calls are then all decided. The service does this "
        "by itself; run this from cron where there is none. Exit 0, 2 on bad input.",
    )
    expire.add_argument("--model", metavar="NAME|scripted:PATH", help="use this model for all")
    expire.add_argument(
        "--allow-module",
        action="append",
        metavar="PREFIX",
        help="only import python tools from modules under PREFIX (repeatable)",
    )
    _store_options(expire)
    expire.set_defaults(handler=_inbox("expire_command"))
    audit = actions.add_parser(
        "audit",
        help="who did what to a run, and when",
        description="Print a run's audit trail, oldest first: started, each decision with "
        "its user, call, tool, fingerprint, reason and the arguments before and after an "
        "edit, expiry, resumes and the end.",
    )
    audit.add_argument("run_id", metavar="RUN_ID")
    _store_options(audit)
    audit.set_defaults(handler=_inbox("audit_command"))
    from engine.cli import fork  # its parsers only: the handlers import what they run on

    fork.register(actions)
    prune = actions.add_parser(
        "prune",
        help="delete old runs of some statuses",
        description="Delete the runs of the given statuses that were not updated for a while, "
        "with their checkpoints and pending decisions. A suspended or running run, or a failed "
        "run that can still be resumed, is never deleted unless --include-suspended (such a "
        "run still waits for a decision: resume or stop). "
        "The specs kept in the store stay (one small row per spec, which other runs and "
        "processes count on). Exit 0 (also when nothing was old enough), 2 on bad input.",
    )
    prune.add_argument(
        "--status",
        action="append",
        required=True,
        choices=RUN_STATUSES,
        help="prune runs with this status (repeatable: --status finished --status failed)",
    )
    prune.add_argument(
        "--older-than",
        type=_age,
        required=True,
        metavar="AGE",
        help="only runs not updated for this long: a number with its unit, s, m, h or d "
        "(30d, 12h, 90m, 45s; a bare number other than 0 is refused, so 30 cannot mean seconds "
        "to one reader and days to another)",
    )
    prune.add_argument(
        "--include-suspended",
        action="store_true",
        help="allow --status suspended and --status running, and let --status failed delete "
        "failed runs that can still be resumed too (their decisions are lost)",
    )
    prune.add_argument("--dry-run", action="store_true", help="list what would go, delete none")
    _store_options(prune)
    prune.set_defaults(handler=prune_command)

    recover = sub.add_parser(
        "recover",
        help="continue runs whose process died, from their last checkpoint",
        description="Take over a run left `running` by a process that died and continue it "
        "from its last checkpoint. Finished calls never run again; a call left running runs "
        "again only if its tool is idempotent, otherwise the run suspends (reason error) for a "
        "person. A run whose process seems alive (its lease, renewed while it works, has not "
        "expired) is refused unless --force.",
    )
    target = recover.add_mutually_exclusive_group(required=True)
    target.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run to recover")
    target.add_argument("--all", action="store_true", help="every run left running")
    recover.add_argument(
        "--older-than",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --all: only runs not checkpointed for this long",
    )
    recover.add_argument(
        "--force",
        action="store_true",
        help="take the run even though its lease is live (only when you know its process is "
        "gone: if it is alive, a call it is running may take effect twice)",
    )
    recover.add_argument("--spec", metavar="SPEC", help="the spec (default: the path recorded)")
    recover.add_argument("--model", metavar="NAME|scripted:PATH", help="use this model for all")
    recover.add_argument("-q", "--quiet", action="store_true", help="print only the outcome")
    _store_options(recover)
    recover.set_defaults(handler=recover_command)


def _inbox(name: str) -> Any:
    """The handler `name` of `cli/inbox`, imported when its command runs."""

    def handler(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
        from engine.cli import inbox

        code: int = getattr(inbox, name)(args, stdout, stderr)
        return code

    return handler


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", help=f"the run store (default ${STORE_ENV})")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="output")


def list_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs list`."""
    store = open_store_of(args)
    try:
        runs = store.list_runs(status=args.status, limit=args.limit)
    finally:
        store.close()
    flows = _workflows(args, [r.run_id for r in runs])
    if args.format == "json":
        records = [_record(r) | _workflow(flows, r.run_id) for r in runs]
        json.dump(records, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return EXIT_OK
    if not runs:
        stdout.write("no runs\n")
    for run in runs:
        flow = f"  workflow {flows[run.run_id] or 'none'}" if flows is not None else ""
        stdout.write(
            f"{run.run_id}  {run.status:<9}  {run.spec_name}/{run.agent}  "
            f"updated {_when(run.updated_at)}{flow}\n"
        )
    return EXIT_OK


def show_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs show`."""
    from engine.journal import rebuild
    from engine.render import inspect_text
    from engine.spec import load_spec

    store = open_store_of(args)
    try:
        run, events = store.snapshot(args.run_id)  # one transaction: the two agree
        continuation = rebuild(run, events)
    finally:
        store.close()
    flows = _workflows(args, [run.run_id])
    ended = run.status in ("finished", "stopped")
    if args.format == "json":
        data = _record(run) | {
            "usage": continuation.usage.to_dict(),  # as of the last checkpoint, even if running
            # a stopped or finished run waits for nothing, whatever its last checkpoint held
            # (a cancel on Temporal ends a waiting run without running it on)
            "pending": [] if ended else [p.to_dict() for p in continuation.pending()],
        }
        data |= _workflow(flows, run.run_id)
        json.dump(data, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return EXIT_OK
    spec = load_spec(args.spec) if args.spec else None
    stdout.write(f"run {run.run_id}: {run.status}, updated {_when(run.updated_at)}\n")
    if run.status == "running" and run.lease_owner and run.lease_expires is not None:
        state = "live" if run.lease_expires > time.time() else "expired: recover continues it"
        stdout.write(f"lease: {run.lease_owner}, until {_when(run.lease_expires)} ({state})\n")
    if flows is not None:
        stdout.write(f"workflow: {flows[run.run_id] or 'none'}\n")
    if run.forked_from is not None:
        stdout.write(f"forked from {run.forked_from} at step {run.forked_at}\n")
    if run.output is not None:
        label = "output" if run.status in ("finished", "stopped") else "reason"
        stdout.write(f"{label}: {run.output}\n")
    stdout.write(inspect_text(continuation, spec, status=run.status))
    return EXIT_OK


def cancel_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs cancel RUN_ID --temporal HOST:PORT`."""
    if not temporal_of(args):
        raise UsageError(
            f"runs cancel needs --temporal HOST:PORT (or ${TEMPORAL_ENV}): it signals the "
            "run's workflow (a run without one has no cancel: decide what it waits for with "
            "`callcc resume RUN_ID`, --reject ID or --stop ID)"
        )
    from engine.cli.worker import cancel_on_temporal

    store = open_store_of(args)
    try:
        store.get_run(args.run_id)  # an unknown run is refused before anything is sent
        workflow = cancel_on_temporal(args, stderr)
        run = store.get_run(args.run_id)
    finally:
        store.close()
    if workflow is None:
        if args.format == "json":
            data = {"run_id": run.run_id, "status": run.status, "output": run.output}
            timed_out = {"workflow": "RUNNING", "timed_out": True}
            json.dump(data | timed_out, stdout, indent=2, ensure_ascii=False)
            stdout.write("\n")
        else:
            stdout.write(f"run {run.run_id}: {run.status}, cancel sent, workflow RUNNING\n")
        return EXIT_SUSPENDED
    if args.format == "json":
        data = {"run_id": run.run_id, "status": run.status, "output": run.output}
        json.dump(data | {"workflow": workflow}, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return EXIT_OK if workflow == "COMPLETED" else EXIT_FAILED
    stdout.write(f"run {run.run_id}: {run.status}, updated {_when(run.updated_at)}\n")
    stdout.write(f"workflow: {workflow}\n")
    if run.output is not None:
        label = "output" if run.status in ("finished", "stopped") else "reason"
        stdout.write(f"{label}: {run.output}\n")
    return EXIT_OK if workflow == "COMPLETED" else EXIT_FAILED


def _workflows(args: argparse.Namespace, run_ids: list[str]) -> dict[str, str | None] | None:
    """Each run's workflow status with --temporal (None for a run without one), else None:
    the store says what the runs are, the server only how their workflows stand."""
    if not temporal_of(args):
        return None
    from engine.cli.worker import workflow_statuses

    return workflow_statuses(args, run_ids)


def _workflow(flows: dict[str, str | None] | None, run_id: str) -> dict[str, Any]:
    """The `workflow` field of a run's JSON (absent without --temporal)."""
    return {} if flows is None else {"workflow": flows[run_id]}


def pending_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs pending`."""
    store = open_store_of(args)
    try:
        rows = store.pending(limit=args.limit)
    finally:
        store.close()
    if args.format == "json":
        data = [
            {
                "run_id": r.run_id,
                "path": r.path,
                "id": r.call_id,
                "tool": r.tool,
                "reason": r.reason,
                "created_at": r.created_at,
                "policy": r.policy,
                "why": _why(r.policy),
            }
            for r in rows
        ]
        json.dump(data, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return EXIT_OK
    if not rows:
        stdout.write("nothing is pending\n")
    for r in rows:
        stdout.write(f"{_when(r.created_at)}  {r.run_id}  {r.path}  [{r.reason}]  {r.tool or ''}\n")
        if r.policy is not None:
            stdout.write(f"      why: {_why(r.policy)}\n")
    return EXIT_OK


def _why(policy: dict[str, Any] | None) -> str | None:
    """A pending row's `policy` as the one `why:` line `callcc pending` shows, or None."""
    from engine._codec import policy_from_data

    return None if policy is None else policy_from_data(policy, "/policy").line()


def prune_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs prune`."""
    from engine.store.base import PRUNE_GUARDED

    statuses = list(dict.fromkeys(args.status))
    guarded = [s for s in statuses if s in PRUNE_GUARDED]
    if guarded and not args.include_suspended:
        raise UsageError(
            f"--status {guarded[0]}: a {guarded[0]} run may still go on, so prune keeps it;"
            " add --include-suspended to delete such runs too"
        )
    store = open_store_of(args)
    try:
        ids = store.prune(
            status=statuses,
            older_than=args.older_than,
            include_suspended=args.include_suspended,
            dry_run=args.dry_run,
        )
    finally:
        store.close()
    if args.format == "json":
        data = {"dry_run": args.dry_run, "count": len(ids), "runs": ids}
        json.dump(data, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return EXIT_OK
    which = " or ".join(statuses)
    if not ids:
        age = _age_text(args.older_than)
        kept = ""
        if "failed" in statuses and not args.include_suspended:
            kept = " (failed runs that can still be resumed stay without --include-suspended)"
        stdout.write(f"nothing to prune: no {which} run was last updated over {age} ago{kept}\n")
        return EXIT_OK
    verb = "would prune" if args.dry_run else "pruned"
    stdout.write(f"{verb} {len(ids)} {which} run{'s' if len(ids) != 1 else ''}:\n")
    for run_id in ids:
        stdout.write(f"  {run_id}\n")
    return EXIT_OK


def recover_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc recover RUN_ID` / `callcc recover --all`."""
    store = open_store_of(args)
    try:
        if args.all:
            now = time.time()
            cutoff = now - args.older_than
            runs = [r for r in store.list_runs(status="running", limit=10_000)]
            ids = [r.run_id for r in runs if r.updated_at <= cutoff]
            if not args.force:  # a live lease: its process is at work (take_over judges again)
                live = {r.run_id for r in runs if r.lease_expires and r.lease_expires > now}
                for run_id in [i for i in ids if i in live]:
                    print(f"callcc: run {run_id}: skipped, its lease is live", file=stderr)
                ids = [i for i in ids if i not in live]
        else:
            ids = [args.run_id]
        if not ids:
            stdout.write("no run to recover\n")
            return EXIT_OK
        codes = []
        for run_id in ids:  # one run's trouble (another worker took it) stops no other
            try:
                codes.append(_recover_one(store, run_id, args, stdout, stderr))
            except LeaseHeldError as exc:
                if not args.all:
                    raise  # exit 2 with the lease's story
                print(f"callcc: run {run_id}: skipped, its lease is live ({exc})", file=stderr)
            except CallccError as exc:
                print(f"callcc: run {run_id}: {exc}", file=stderr)
                codes.append(EXIT_BAD_INPUT if isinstance(exc, UsageError) else EXIT_FAILED)
    finally:
        store.close()
    # a failure outranks a suspension, which outranks success
    return max(codes, key=lambda code: {EXIT_OK: 0, EXIT_SUSPENDED: 1}.get(code, 2), default=0)


def _recover_one(
    store: RunStore, run_id: str, args: argparse.Namespace, stdout: TextIO, stderr: TextIO
) -> int:
    from engine.durable import spec_of_run
    from engine.runtime import Runtime
    from engine.spec import load_spec

    with progress(args, stdout):  # says where the spec came from
        spec = load_spec(args.spec) if args.spec else spec_of_run(store, run_id)
    if args.format == "text":
        stdout.write(f"recovering run {run_id}\n")
    with (
        progress(args, stdout) as shown,
        Runtime(spec, model_override=args.model, store=store, observers=shown.observers) as rt,
    ):
        try:
            outcome = rt.recover(run_id)
        except LeaseHeldError as exc:
            if not args.force:
                raise
            print(
                f"callcc: warning: taking over run {run_id} although its lease is live "
                f"(--force): {exc.owner} renewed it {exc.remaining:.1f} s before it expires; "
                "if that process is alive, it fails at its next checkpoint and a call it is "
                "running may take effect twice",
                file=stderr,
            )
            outcome = rt.recover(run_id, force=True)
        warn_unused(rt, outcome, stderr)
    return report(outcome, None, args, stdout, stderr, store_url=store.url)


def _record(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status,
        "spec": run.spec_name,
        "agent": run.agent,
        "version": run.version,
        "output": run.output,
        "lease_owner": run.lease_owner,
        "lease_expires": run.lease_expires,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "usage": {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens},
        "forked_from": run.forked_from,
        "forked_at": run.forked_at,
    }


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _limit(text: str) -> int:
    """`--limit`: a whole number from 1 to 1,000,000 (argparse reports anything else, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 1000000")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


def _age(text: str) -> float:
    """`--older-than`: `30d`, `12h`, `90m`, `45s` (or `0`), 0 or more."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "")
    if not unit:
        try:
            bare = float(text)
        except ValueError:
            bare = None
        if bare is not None and bare != 0 and 0 < bare < 1e12:
            raise argparse.ArgumentTypeError(
                f"{text!r} has no unit: write {text}d for days, {text}h, {text}m or {text}s"
            )
        unit = "s"
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e12:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an age: write a number of days, hours, minutes or seconds"
            " (30d, 12h, 90m, 45s)"
        )
    return value * _UNITS[unit]


def _age_text(seconds: float) -> str:
    """`seconds` in the largest unit that divides it (`2592000` -> `30d`)."""
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _seconds_type(text: str) -> float:
    """A `--timeout` value: seconds, more than zero."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value
