"""`callcc worker` and the `--temporal` face of `run`, `resume`, `pending` and `runs
list|show|cancel`: runs driven by
workers through a Temporal server (`engine.temporal`, imported only when one of them runs).

The output and exit codes are those of a local run (0 finished, 1 failed, 2 bad input, 3
suspended); `run --no-wait` prints the run id and returns 0; a decision the workflow refuses is
exit 2 with the validator's reason.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli._exit import EXIT_OK, EXIT_SUSPENDED
from engine.cli._options import TEMPORAL_ENV, temporal_of, temporal_options
from engine.cli._stored import store_url_of
from engine.errors import UsageError
from engine.store import STORE_ENV

if TYPE_CHECKING:
    from engine.temporal.client import TemporalRuntime


def register(sub: Any) -> None:
    """Add `worker`."""
    worker = sub.add_parser(
        "worker",
        help="drive runs handed out by a Temporal server, until SIGTERM",
        description="Poll the task queue for run workflows and their advance activities, "
        "driving each run against the shared run store (PostgreSQL when workers are on "
        "several machines). The worker needs the tools' code, not the spec files: the spec "
        "travels with the run in the store. SIGTERM or Ctrl-C stops it gracefully: no new work, "
        "the advances in flight finish (or are handed back after --graceful seconds).",
    )
    temporal_options(worker, required_store=True)
    worker.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="advances at once (4)"
    )
    worker.add_argument(
        "--allow-module",
        action="append",
        metavar="PREFIX",
        help="only import python tools from modules under PREFIX (repeatable)",
    )
    worker.add_argument("--model", metavar="NAME|scripted:PATH", help="use this model for all")
    worker.add_argument(
        "--graceful", type=float, default=30.0, metavar="S", help="shutdown grace, seconds (30)"
    )
    worker.set_defaults(handler=worker_command)


def worker_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc worker`."""
    import asyncio
    import logging

    from engine.temporal.worker import run_worker

    address, store_url = temporal_of(args), store_url_of(args)
    if not address or not store_url:
        raise UsageError(
            f"callcc worker needs --temporal HOST:PORT (or ${TEMPORAL_ENV}) and --store URL "
            f"(or ${STORE_ENV})"
        )
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1 (got {args.concurrency})")
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("callcc worker: %(message)s"))
    logger = logging.getLogger("callcc.temporal")
    logger.addHandler(handler)
    logger.setLevel("INFO")

    def ready() -> None:
        stdout.write(f"worker ready: task queue {args.task_queue} on {address}\n")
        stdout.flush()

    try:
        asyncio.run(
            run_worker(
                address,
                store_url,
                namespace=args.namespace,
                task_queue=args.task_queue,
                concurrency=args.concurrency,
                allowed_modules=args.allow_module,
                model_override=args.model,
                graceful_seconds=args.graceful,
                ready=ready,
            )
        )
    finally:
        logger.removeHandler(handler)
    stdout.write("worker stopped\n")
    return EXIT_OK


def _runtime(args: argparse.Namespace, address: str) -> TemporalRuntime:
    from engine.temporal.client import TemporalRuntime

    store_url = store_url_of(args)
    if not store_url:
        raise UsageError(
            f"--temporal needs the run store the workers share: --store URL (or ${STORE_ENV})"
        )
    return TemporalRuntime(
        address=address, store=store_url, namespace=args.namespace, task_queue=args.task_queue
    )


def run_on_temporal(
    args: argparse.Namespace, prompt: str, run_id: str, stdout: TextIO, stderr: TextIO
) -> int:
    """`callcc run --temporal`."""
    from engine.cli._output import report
    from engine.spec import load_spec

    address = temporal_of(args)
    assert address is not None
    spec = load_spec(args.spec)
    with _runtime(args, address) as runtime:
        if args.no_wait:
            runtime.start(spec, prompt, agent=args.agent, run_id=run_id)
            stdout.write(f"{run_id}\n")
            return EXIT_OK
        runtime.start(spec, prompt, agent=args.agent, run_id=run_id)
        warn_without_worker(runtime, run_id, stderr)
        outcome = runtime.outcome(run_id)
    return report(outcome, args.state_out, args, stdout, stderr, store_url=store_url_of(args))


def resume_on_temporal(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc resume RUN_ID --temporal`: the decision flags, each bound to the fingerprint
    of the entry it answers, sent as one update (none: the workers apply the decisions the
    store recorded, `callcc decide`)."""
    from engine import durable
    from engine.cli._decisions import flag_decisions
    from engine.cli._output import report
    from engine.temporal.client import decision_of

    address = temporal_of(args)
    assert address is not None
    with _runtime(args, address) as runtime:
        key = runtime.keys[0] if runtime.keys else None
        continuation = durable.load(runtime.store, args.state, key)
        decisions = []
        for decide in flag_decisions(continuation, args):
            view = continuation.find(decide.id)[0]
            decision = decision_of(decide)
            decision.id, decision.fingerprint = view.path, view.fingerprint
            decisions.append(decision)
        warn_without_worker(runtime, continuation.run_id, stderr)
        outcome = runtime.resume(continuation.run_id, decisions, nonce=continuation.nonce)
    return report(outcome, args.state_out, args, stdout, stderr, store_url=store_url_of(args))


def pending_on_temporal(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc pending RUN_ID --temporal`: the workflow's `pending` query."""
    import json

    from engine.cli._output import describe

    address = temporal_of(args)
    assert address is not None
    from engine.temporal.client import TemporalRuntime

    with TemporalRuntime(
        address=address, namespace=args.namespace, task_queue=args.task_queue
    ) as runtime:
        items = runtime.pending(args.state)
    if args.format == "json":
        json.dump([p.to_dict() for p in items], stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        stdout.write(describe(items) if items else "nothing is pending\n")
    return EXIT_SUSPENDED if items else EXIT_OK


def workflow_statuses(args: argparse.Namespace, run_ids: list[str]) -> dict[str, str | None]:
    """`runs list|show --temporal`: each run's workflow status (None: no workflow)."""
    from engine.temporal.client import TemporalRuntime

    address = temporal_of(args)
    assert address is not None
    with TemporalRuntime(address=address, namespace=args.namespace) as runtime:
        return runtime.workflow_statuses(run_ids) if run_ids else {}


def warn_without_worker(runtime: TemporalRuntime, run_id: str, stderr: TextIO) -> None:
    """Say so before a wait that only a worker can end, when none polls the run's queue."""
    queue = runtime.idle_queue(run_id)
    if queue is not None:
        print(
            f"callcc: no worker polls task queue {queue!r} on {runtime.address} (namespace "
            f"{runtime.namespace}): run {run_id} waits until one starts (`callcc worker "
            f"--temporal {runtime.address} --task-queue {queue} --store URL`); Ctrl-C stops "
            "waiting and leaves the run as it is",
            file=stderr,
        )


def cancel_on_temporal(args: argparse.Namespace, stderr: TextIO) -> str | None:
    """`callcc runs cancel RUN_ID --temporal`: the cancel signal, then the wait until the
    workflow has closed; its final status, or None when `--timeout` passed first."""
    from engine.temporal.client import TemporalRuntime

    address = temporal_of(args)
    assert address is not None
    run_id = args.run_id
    with TemporalRuntime(address=address, namespace=args.namespace) as runtime:
        status = runtime.workflow_status(run_id)
        if status is None:
            raise UsageError(
                f"run {run_id!r} has no workflow on Temporal at {address} (namespace "
                f"{args.namespace}): it was started without --temporal, so no worker drives it"
            )
        if status == "RUNNING":
            try:
                runtime.cancel(run_id, args.reason)
            except UsageError:
                if runtime.workflow_status(run_id) == "RUNNING":
                    raise
                # it closed between the describe and the signal: wait for how it ended
            warn_without_worker(runtime, run_id, stderr)
        else:
            print(f"callcc: run {run_id}: its workflow had closed already ({status})", file=stderr)
        try:
            return runtime.closed(run_id, args.timeout)
        except TimeoutError:
            print(
                f"callcc: run {run_id}: its workflow has not closed within {args.timeout:g} s; "
                "the cancel stays sent, and the run ends as stopped when a worker takes it",
                file=stderr,
            )
            return None
