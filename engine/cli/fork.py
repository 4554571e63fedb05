"""`callcc runs history RUN_ID` and `callcc runs fork RUN_ID --at STEP`: a stored run's steps,
and a new run that goes on from one of them (`engine.history`, `engine.fork`). Only argparse
is imported here; the handlers import what they run on."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from engine.cli._exit import EXIT_OK
from engine.store import STORE_ENV


def register(actions: Any) -> None:
    """Add `history` and `fork` to the actions of `callcc runs`."""
    history = actions.add_parser(
        "history",
        help="a stored run's steps: what happened at each, numbered for fork --at",
        description="List a stored run's steps, oldest first: the step number (what `runs "
        "fork --at` takes), the frame's model turns after it, the agent invocation, and what "
        "happened (a user message, the model's reply and the calls it asked for, calls "
        "started, results, what the run waits on, decisions recorded). Exit 0, 2 for an "
        "unknown run.",
    )
    history.add_argument("run_id", metavar="RUN_ID")
    _store(history)
    history.add_argument("--format", choices=["text", "json"], default="text", help="output")
    history.set_defaults(handler=history_command)

    fork = actions.add_parser(
        "fork",
        help="a new run whose history is a stored run's up to a step, going on from there",
        description="Start a new run whose history is RUN_ID's first STEP steps (see `runs "
        "history`) and carry it on. Tool results by the step are reused, never run again; a "
        "call started by the step takes the result the run recorded for it later (or, if it "
        "has none, is treated as recover treats it); calls waiting at the step wait in the "
        "fork, to be decided apart from RUN_ID; model calls after the step are made afresh. "
        "RUN_ID itself is not changed. Exit codes as for run: 0 finished, 1 failed, 2 bad "
        "input (an unknown run, a step it does not have, a changed spec without "
        "--allow-spec-change), 3 suspended.",
    )
    fork.add_argument("run_id", metavar="RUN_ID", help="the stored run to fork")
    fork.add_argument(
        "--at", type=_step, required=True, metavar="STEP", help="the last step the fork keeps"
    )
    fork.add_argument("--run-id", dest="new_run_id", metavar="NEW", help="the fork's id")
    fork.add_argument(
        "-p",
        "--prompt",
        metavar="TEXT",
        help="put TEXT in place of the last user message (of the entry agent) as of the step",
    )
    fork.add_argument(
        "--spec", metavar="SPEC", help="run the fork under this spec (default: RUN_ID's)"
    )
    fork.add_argument(
        "--allow-spec-change",
        action="store_true",
        help="let --spec differ from the spec RUN_ID ran with (it is validated either way)",
    )
    fork.add_argument("--model", metavar="NAME|scripted:PATH", help="use this model for all")
    fork.add_argument(
        "--allow-module",
        action="append",
        metavar="PREFIX",
        help="only import python tools from modules under PREFIX (repeatable)",
    )
    _store(fork)
    fork.add_argument("--format", choices=["text", "json"], default="text", help="output")
    fork.add_argument("-q", "--quiet", action="store_true", help="print only the outcome")
    fork.set_defaults(handler=fork_command)


def _store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", help=f"the run store (default ${STORE_ENV})")


def _step(text: str) -> int:
    """`--at`: a whole number (whether the run has that step is the fork's to say)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a step number") from None


def history_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs history`."""
    from engine.cli._stored import open_store_of
    from engine.history import steps

    store = open_store_of(args)
    try:
        run = store.get_run(args.run_id)
        listed = list(steps(store.events(args.run_id)))
    finally:
        store.close()
    if args.format == "json":
        data = {
            "run_id": run.run_id,
            "status": run.status,
            "forked_from": run.forked_from,
            "forked_at": run.forked_at,
            "steps": [s.to_dict() for s in listed],
        }
        json.dump(data, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return EXIT_OK
    stdout.write(f"run {run.run_id}: {run.status}, {len(listed)} steps\n")
    if run.forked_from is not None:
        stdout.write(
            f"forked from {run.forked_from} at step {run.forked_at}: steps 1 to "
            f"{run.forked_at} are {run.forked_from}'s\n"
        )
    width = max([len(s.agent) for s in listed] + [5])
    stdout.write(f"{'step':>4}  {'turn':>4}  {'agent':<{width}}  what happened\n")
    for s in listed:
        stdout.write(f"{s.step:>4}  {s.turn:>4}  {s.agent:<{width}}  {s.summary()}\n")
    return EXIT_OK


def fork_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc runs fork`."""
    from engine.cli._output import progress, report
    from engine.cli._stored import open_store_of
    from engine.durable import spec_of_run
    from engine.runtime import Runtime
    from engine.spec import load_spec

    store = open_store_of(args)
    try:
        store.get_run(args.run_id)  # an unknown run is refused before a spec is looked for
        with progress(args, stdout):  # says where the spec came from
            spec = load_spec(args.spec) if args.spec else spec_of_run(store, args.run_id)
        with (
            progress(args, stdout) as shown,
            Runtime(
                spec,
                model_override=args.model,
                allowed_modules=args.allow_module,
                store=store,
                observers=shown.observers,
            ) as runtime,
        ):
            outcome = runtime.fork(
                args.run_id,
                at=args.at,
                new_run_id=args.new_run_id,
                prompt=args.prompt,
                allow_spec_change=args.allow_spec_change,
            )  # no warning about scripted turns never played: the history played them
        url = store.url
    finally:
        store.close()
    return report(outcome, None, args, stdout, stderr, store_url=url)
