"""`callcc run`, `callcc pending`, `callcc resume` and `callcc keygen`: runs from the shell,
their state in a file or (with `--store` / `CALLCC_STORE`) in a run store."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli._decisions import add_decision_flags
from engine.cli._exit import EXIT_FAILED, EXIT_OK, EXIT_SUSPENDED
from engine.cli._options import temporal_of, temporal_options
from engine.cli._output import describe, describe_grants, progress, report, warn_unused
from engine.cli._stored import store_url_of
from engine.errors import ContinuationError, UsageError
from engine.signing import KEY_ENV, KEY_FILE_ENV, generate_key, keys_from_env
from engine.store import STORE_ENV, open_store

if TYPE_CHECKING:  # the handlers import what they run on: `pending` needs no runtime
    from engine.continuation import Continuation
    from engine.inbox import ResumedElsewhere
    from engine.runtime import Outcome, Runtime
    from engine.spec import Spec
    from engine.store import RunStore

DEFAULT_STATE = "callcc-state-RUN_ID.json"
"""Where `run` writes a suspension without `--state` or a store (RUN_ID: the run's id)."""


def register(sub: Any) -> None:
    """Add `run`, `pending` and `resume`."""
    run = sub.add_parser(
        "run",
        help="run an agent of a spec until it finishes or suspends",
        description="Run the entrypoint (or --agent) on a prompt. On suspension (or a model "
        "call that failed for good) the continuation is written to --state (default "
        f"{DEFAULT_STATE}) and the pending decisions are listed. "
        "Exit 0 finished, 1 failed, 2 bad input, 3 suspended.",
    )
    run.add_argument("spec", metavar="SPEC", help="the spec file")
    prompt = run.add_mutually_exclusive_group(required=True)
    prompt.add_argument("-p", "--prompt", help="the user's request")
    prompt.add_argument("--prompt-file", metavar="F", help="read the request from a file")
    run.add_argument("--agent", metavar="NAME", help="start this agent instead of the entrypoint")
    run.add_argument("--run-id", metavar="ID", help="the run's id (default: a random one)")
    run.add_argument(
        "--no-wait", action="store_true", help="with --temporal: print the run id and return"
    )
    _common(run)
    run.set_defaults(handler=run_command)

    pending = sub.add_parser(
        "pending",
        help="list the decisions a suspended run waits for",
        description="Print the pending decisions of a state file (or of a stored run, by "
        "its id with --store): id, path, tool, arguments, reason and the decisions allowed. "
        "Exit 3 when something waits, 0 when nothing does.",
    )
    pending.add_argument(
        "state", metavar="STATE|RUN_ID", help="a continuation file, or a run id of --store"
    )
    pending.add_argument("--format", choices=["text", "json"], default="text", help="output")
    pending.add_argument(
        "--store",
        metavar="URL",
        help=f"read a RUN_ID from this run store (default ${STORE_ENV}); a path that exists "
        "is read as a file",
    )
    temporal_options(pending)
    pending.set_defaults(handler=pending_command)

    resume = sub.add_parser(
        "resume",
        help="apply decisions to a suspended run and carry on",
        description="Apply the decisions given, resume, and write the new state if the run "
        "suspends again (the state file is removed once the run is over). Ids are bare call "
        "ids or paths such as account_agent/call_6. A run that failed on a model call resumes "
        "with --resume ID once the cause is fixed. Exit codes as for run.",
    )
    resume.add_argument(
        "state",
        metavar="STATE|RUN_ID",
        help="the continuation file to resume, or a run id of the store",
    )
    resume.add_argument("--spec", metavar="SPEC", help="the spec (default: the path recorded)")
    add_decision_flags(resume)
    resume.add_argument(
        "--allow-spec-change", action="store_true", help="resume even though the spec changed"
    )
    _common(resume)
    resume.set_defaults(handler=resume_command)

    keygen = sub.add_parser(
        "keygen",
        help="print a new random key for signing continuations",
        description=f"Print a new 256-bit key. Export it as {KEY_ENV} (several keys separated "
        "by commas rotate: the first signs, all verify), or put it in the file named by "
        f"{KEY_FILE_ENV}.",
    )
    keygen.set_defaults(handler=keygen_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="NAME|scripted:PATH", help="use this model for all")
    parser.add_argument(
        "--allow-module",
        action="append",
        metavar="PREFIX",
        help="only import python tools from modules under PREFIX (repeatable)",
    )
    parser.add_argument(
        "--allow-command",
        action="append",
        metavar="PROGRAM",
        help="only start MCP stdio servers with PROGRAM (repeatable)",
    )
    parser.add_argument(
        "--state",
        dest="state_out",
        metavar="FILE",
        help=f"where to write the state on suspension (run: {DEFAULT_STATE}; resume: STATE)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite a state file that holds another waiting run",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help=f"keep the run in this store (sqlite:///PATH, postgresql://...; default ${STORE_ENV})",
    )
    parser.add_argument("--format", choices=["text", "json"], default="text", help="output")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the outcome")
    temporal_options(parser)


def run_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc run`."""
    import uuid

    from engine.spec import load_spec

    prompt = args.prompt
    if args.prompt_file:
        prompt = _read(args.prompt_file)
    run_id = args.run_id or uuid.uuid4().hex
    if temporal_of(args):
        from engine.cli.worker import run_on_temporal

        return run_on_temporal(args, prompt, run_id, stdout, stderr)
    spec = load_spec(args.spec)
    store_url = store_url_of(args)
    state = args.state_out or (None if store_url else default_state(run_id))
    check_overwrite(state, args)
    with progress(args, stdout) as shown, _runtime(spec, args, shown, store_url) as runtime:
        outcome = runtime.run(prompt, agent=args.agent, run_id=run_id)
        warn_unused(runtime, outcome, stderr)
    return report(outcome, state, args, stdout, stderr, store_url=store_url)


def pending_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc pending`."""
    from engine.cli._stored import no_such_file, stored_stack
    from engine.continuation import Continuation

    if temporal_of(args) and not Path(args.state).exists():  # a file is read as one
        from engine.cli.worker import pending_on_temporal

        return pending_on_temporal(args, stdout, stderr)
    continuation = stored_stack(args.state, args, stderr)
    if continuation is None:
        if not Path(args.state).exists():
            raise no_such_file(args.state)
        continuation = Continuation.from_json(_read(args.state), keys=keys_from_env())
    items = continuation.pending()
    if args.format == "json":
        json.dump([p.to_dict() for p in items], stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        stdout.write(describe(items) if items else "nothing is pending\n")
        stdout.write(describe_grants(continuation.grants()))
    return EXIT_SUSPENDED if items else EXIT_OK


def resume_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc resume`."""
    from engine.continuation import Continuation
    from engine.spec import load_spec

    store_url = store_url_of(args)
    if temporal_of(args) and not Path(args.state).exists():  # a file resumes here
        from engine.cli.worker import resume_on_temporal

        return resume_on_temporal(args, stdout, stderr)
    if store_url and not Path(args.state).is_file():
        return _resume_stored(args, store_url, stdout, stderr)
    if not store_url and not Path(args.state).exists() and not args.state.endswith(".json"):
        raise UsageError(
            f"{args.state}: no such state file; to resume a stored run by its id, name its "
            f"store: --store URL or {STORE_ENV}"
        )
    text = _read(args.state)
    # with keys, the document is verified before anything it names (its spec) is loaded
    spec_path = args.spec or Continuation.from_json(text, keys=keys_from_env()).spec_path
    if not spec_path:
        raise UsageError("the state file records no spec path; pass --spec SPEC")
    if not args.spec and not Path(spec_path).is_file():
        where = "" if Path(spec_path).is_absolute() else ", relative to the folder it ran in"
        raise UsageError(
            f"the spec {spec_path!r} that {args.state} records (where the run started{where}) "
            "cannot be read from here; pass --spec SPEC"
        )
    spec = load_spec(spec_path)
    check_overwrite(args.state_out, args, consumed=args.state)
    with progress(args, stdout) as shown, _runtime(spec, args, shown, store_url) as runtime:
        continuation = apply_decisions(runtime.load(text), args)
        outcome = runtime.resume(continuation, allow_spec_change=args.allow_spec_change)
        warn_unused(runtime, outcome, stderr)
    if args.state_out and args.state_out != args.state:
        Path(args.state).unlink(missing_ok=True)  # consumed: only the new state may resume
    state = args.state_out or args.state
    return report(outcome, state, args, stdout, stderr, store_url=store_url)


def _resume_stored(args: argparse.Namespace, url: str, stdout: TextIO, stderr: TextIO) -> int:
    from engine.durable import spec_of_run
    from engine.inbox import ResumedElsewhere
    from engine.spec import load_spec

    store = open_store(url)
    try:
        run = store.get_run(args.state)
        with progress(args, stdout):  # says where the spec came from
            spec = load_spec(args.spec) if args.spec else spec_of_run(
                store, run.run_id, allow_spec_change=args.allow_spec_change
            )  # fmt: skip
        check_overwrite(args.state_out, args)
        with progress(args, stdout) as shown, _runtime(spec, args, shown, store) as runtime:
            outcome = _resume_recorded(runtime, run.run_id, args)
            if isinstance(outcome, ResumedElsewhere):
                return elsewhere(outcome, stdout, stderr)
            warn_unused(runtime, outcome, stderr)
    finally:
        store.close()
    return report(outcome, args.state_out, args, stdout, stderr, store_url=url)


def _resume_recorded(
    runtime: Runtime, run_id: str, args: argparse.Namespace
) -> Outcome | ResumedElsewhere:
    """Resume a stored run with the decisions recorded for it (`callcc decide`, the inbox)
    and those the flags give, audited as this OS user."""
    from engine.audit import os_user
    from engine.cli._decisions import flag_decisions, nothing_decided
    from engine.inbox import apply_recorded, resume_recorded

    assert runtime.store is not None
    waiting = runtime.load_run(run_id)
    current = apply_recorded(waiting, runtime.store.recorded_decisions(run_id, waiting.nonce))
    extra = flag_decisions(current, args)
    nothing_decided(runtime.check_decisions(current, extra) if extra else current, args)
    return resume_recorded(
        runtime,
        run_id,
        extra=extra,
        user=os_user(),
        allow_spec_change=args.allow_spec_change,
    )


def elsewhere(outcome: ResumedElsewhere, stdout: TextIO, stderr: TextIO) -> int:
    """Say that another resume of the same suspension won; exit as its status says."""
    print(
        f"callcc: another process resumed run {outcome.run_id} first; it is {outcome.status} "
        f"now (`callcc runs show {outcome.run_id}` shows where it stands)",
        file=stderr,
    )
    codes = {"suspended": EXIT_SUSPENDED, "failed": EXIT_FAILED}
    return codes.get(outcome.status, EXIT_OK)


def _runtime(
    spec: Spec, args: argparse.Namespace, shown: progress, store: RunStore | str | None
) -> Runtime:
    from engine.runtime import Runtime

    return Runtime(
        spec,
        model_override=args.model,
        allowed_modules=args.allow_module,
        allowed_commands=args.allow_command,
        store=store,
        observers=shown.observers,
    )


def default_state(run_id: str) -> str:
    """`callcc-state-RUN_ID.json`, with anything but letters, digits, `.`, `_`, `-` as `_`."""
    return DEFAULT_STATE.replace("RUN_ID", re.sub(r"[^A-Za-z0-9._-]", "_", run_id))


def check_overwrite(path: str | None, args: argparse.Namespace, *, consumed: str = "") -> None:
    """Refuse (exit 2) to write over a state file that holds a run waiting on decisions,
    unless `--force`: its run could never be resumed again. `consumed` is the file being
    resumed, whose new state replaces it on purpose."""
    from engine.continuation import Continuation

    if not path or args.force or not Path(path).exists():
        return
    if consumed and Path(path).resolve() == Path(consumed).resolve():
        return
    text = _read(path)
    if not text.strip():
        return
    try:
        held = Continuation.from_json(text)  # read only to see what waits; never resumed here
    except ContinuationError:
        raise UsageError(
            f"{path} exists and is not a callcc state file; choose another --state, or pass "
            "--force to overwrite it"
        ) from None
    waiting = held.pending()
    if waiting:
        raise UsageError(
            f"{path} holds run {held.run_id}, which waits on {', '.join(p.path for p in waiting)};"
            f" resume it first (callcc resume {path} ...), choose another --state, or pass "
            "--force to overwrite it"
        )


def keygen_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc keygen`."""
    stdout.write(generate_key() + "\n")
    return EXIT_OK


def apply_decisions(continuation: Continuation, args: argparse.Namespace) -> Continuation:
    """Make every decision the flags give (`cli/_decisions.flag_decisions`), in one batch;
    refuse a resume that decides nothing."""
    from engine.cli._decisions import flag_decisions, nothing_decided

    decides = flag_decisions(continuation, args)
    result = continuation.decide_many(decides) if decides else continuation
    nothing_decided(result, args)
    return result


def _read(path: str) -> str:
    from engine.continuation import MAX_DOCUMENT_BYTES

    try:
        size = Path(path).stat().st_size
        if size > MAX_DOCUMENT_BYTES:  # refused before a byte of it is read
            raise UsageError(f"{path}: {size} bytes, over the {MAX_DOCUMENT_BYTES} byte limit")
        with open(path, "rb") as fh:  # a device or a pipe has no size: read past the limit?
            data = fh.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise UsageError(f"{path}: over the {MAX_DOCUMENT_BYTES} byte limit")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
