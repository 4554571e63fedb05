"""`callcc run`, `callcc pending` and `callcc resume`: a run from the shell, state in a file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, TextIO

from engine.continuation import Continuation, PendingDecision
from engine.errors import DecisionError, UsageError
from engine.models.scripted import ScriptedModel
from engine.runtime import Failed, Finished, Outcome, Runtime
from engine.signing import KEY_ENV, KEY_FILE_ENV, generate_key, keys_from_env
from engine.spec import Spec, load_spec

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_SUSPENDED = 0, 1, 2, 3
DEFAULT_STATE = "callcc-state.json"


def register(sub: Any) -> None:
    """Add `run`, `pending` and `resume`."""
    run = sub.add_parser(
        "run",
        help="run an agent of a spec until it finishes or suspends",
        description="Run the entrypoint (or --agent) on a prompt. On suspension the "
        "continuation is written to --state and the pending decisions are listed. "
        "Exit 0 finished, 1 failed, 2 bad input, 3 suspended.",
    )
    run.add_argument("spec", metavar="SPEC", help="the spec file")
    prompt = run.add_mutually_exclusive_group(required=True)
    prompt.add_argument("-p", "--prompt", help="the user's request")
    prompt.add_argument("--prompt-file", metavar="F", help="read the request from a file")
    run.add_argument("--agent", metavar="NAME", help="start this agent instead of the entrypoint")
    run.add_argument("--run-id", metavar="ID", help="the run's id (default: a random one)")
    _common(run)
    run.set_defaults(handler=run_command)

    pending = sub.add_parser(
        "pending",
        help="list the decisions a suspended run waits for",
        description="Print the pending decisions of a state file: id, path, tool, "
        "arguments, reason and the decisions allowed.",
    )
    pending.add_argument("state", metavar="STATE", help="a continuation file")
    pending.add_argument("--format", choices=["text", "json"], default="text", help="output")
    pending.set_defaults(handler=pending_command)

    resume = sub.add_parser(
        "resume",
        help="apply decisions to a suspended run and carry on",
        description="Apply the decisions given, resume, and write the new state if the run "
        "suspends again (the state file is removed once the run is over). Ids are bare call "
        "ids or paths such as account_agent/call_6. Exit codes as for run.",
    )
    resume.add_argument("state", metavar="STATE", help="the continuation file to resume")
    resume.add_argument("--spec", metavar="SPEC", help="the spec (default: the path recorded)")
    decide = resume.add_argument_group("decisions (each may be repeated)")
    decide.add_argument("--approve", action="append", default=[], metavar="ID|all")
    decide.add_argument("--reject", action="append", default=[], metavar="ID")
    decide.add_argument("--reason", action="append", default=[], help="reason of each --reject")
    decide.add_argument("--edit", action="append", default=[], metavar="ID")
    decide.add_argument("--args", action="append", default=[], help="JSON args of each --edit")
    decide.add_argument("--answer", action="append", default=[], metavar="ID")
    decide.add_argument("--result", action="append", default=[], help="JSON of each --answer")
    decide.add_argument("--extend", action="append", default=[], metavar="ID")
    decide.add_argument("--turns", action="append", default=[], type=int, help="per --extend")
    decide.add_argument("--stop", action="append", default=[], metavar="ID")
    decide.add_argument(
        "--continue",
        dest="carry_on",
        action="append",
        default=[],
        metavar="ID",
        help="resume after a pause or a model error",
    )
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
        "--state",
        dest="state_out",
        metavar="FILE",
        help=f"where to write the state on suspension (run: {DEFAULT_STATE}; resume: STATE)",
    )
    parser.add_argument("--format", choices=["text", "json"], default="text", help="output")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the outcome")


def run_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc run`."""
    prompt = args.prompt
    if args.prompt_file:
        prompt = _read(args.prompt_file)
    spec = load_spec(args.spec)
    state = args.state_out or DEFAULT_STATE
    with _progress(args, stdout), _runtime(spec, args, stderr) as runtime:
        outcome = runtime.run(prompt, agent=args.agent, run_id=args.run_id)
        _warn_unused(runtime, outcome, stderr)
    return _report(outcome, state, args, stdout, stderr)


def pending_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc pending`."""
    keys = keys_from_env()
    _warn_unsigned(keys, stderr)
    continuation = Continuation.from_json(_read(args.state), keys=keys)
    items = continuation.pending()
    if args.format == "json":
        json.dump([p.to_dict() for p in items], stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        stdout.write(_describe(items) if items else "nothing is pending\n")
    return EXIT_SUSPENDED if items else EXIT_OK


def resume_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc resume`."""
    text = _read(args.state)
    spec_path = args.spec or Continuation.from_json(text).spec_path
    if not spec_path:
        raise UsageError("the state file records no spec path; pass --spec SPEC")
    spec = load_spec(spec_path)
    with _progress(args, stdout), _runtime(spec, args, stderr) as runtime:
        continuation = apply_decisions(runtime.load(text), args)
        outcome = runtime.resume(continuation, allow_spec_change=args.allow_spec_change)
        _warn_unused(runtime, outcome, stderr)
    if args.state_out and args.state_out != args.state:
        Path(args.state).unlink(missing_ok=True)  # consumed: only the new state may resume
    return _report(outcome, args.state_out or args.state, args, stdout, stderr)


def _runtime(spec: Spec, args: argparse.Namespace, stderr: TextIO) -> Runtime:
    runtime = Runtime(spec, model_override=args.model, allowed_modules=args.allow_module)
    _warn_unsigned(runtime.keys, stderr)
    return runtime


def _warn_unsigned(keys: tuple[bytes, ...], stderr: TextIO) -> None:
    if not keys:
        print(
            f"callcc: warning: continuations are not signed; set {KEY_ENV} "
            "(`callcc keygen` makes a key)",
            file=stderr,
        )


def keygen_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`callcc keygen`."""
    stdout.write(generate_key() + "\n")
    return EXIT_OK


def apply_decisions(continuation: Continuation, args: argparse.Namespace) -> Continuation:
    """Apply every decision flag, checking that paired flags come in pairs."""
    result = continuation
    for ident in args.approve:
        result = result.approve_all() if ident == "all" else result.approve(ident)
    for ident, reason in _pairs(args.reject, args.reason, "--reject", "--reason", optional=True):
        result = result.reject(ident, reason or "rejected by the reviewer")
    for ident, text in _pairs(args.edit, args.args, "--edit", "--args"):
        value = _json(text, "--args")
        if not isinstance(value, dict):
            raise UsageError("--args must be a JSON object")
        result = result.edit(ident, value)
    for ident, text in _pairs(args.answer, args.result, "--answer", "--result"):
        result = result.answer(ident, _json(text, "--result"))
    for ident, turns in _pairs(args.extend, args.turns, "--extend", "--turns"):
        result = result.extend(ident, int(turns))
    for ident in args.stop:
        result = result.stop(ident)
    for ident in args.carry_on:
        result = result.resume(ident)
    return result


def _pairs(
    ids: list[str], values: list[Any], flag: str, value_flag: str, *, optional: bool = False
) -> list[tuple[str, Any]]:
    if len(values) > len(ids) or (not optional and len(values) != len(ids)):
        raise UsageError(f"give one {value_flag} for each {flag} ({len(ids)} vs {len(values)})")
    return [(ident, values[i] if i < len(values) else None) for i, ident in enumerate(ids)]


def _json(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not valid JSON: {exc}") from None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None


def _report(
    outcome: Outcome, state: str, args: argparse.Namespace, stdout: TextIO, stderr: TextIO
) -> int:
    state_file = state
    if isinstance(outcome, Finished | Failed):
        Path(state_file).unlink(missing_ok=True)  # the run is over: never resume it again
        if isinstance(outcome, Finished):
            return _emit(args, stdout, "finished", EXIT_OK, output=outcome.output)
        print(f"callcc: run failed: {outcome.reason}", file=stderr)
        return _emit(args, stdout, "failed", EXIT_FAILED, reason=outcome.reason)
    _write_atomic(state_file, outcome.continuation.to_json())
    items = outcome.continuation.pending()
    if args.format == "text":
        stdout.write(f"suspended: {len(items)} pending, state written to {state_file}\n")
        stdout.write(_describe(items))
        first = next((p for p in items if p.decision is None), None)
        if first is not None:
            verb = "--" + ("continue" if first.decisions[0] == "resume" else first.decisions[0])
            stdout.write(f"next: callcc resume {state_file} {verb} {first.id}\n")
        return EXIT_SUSPENDED
    return _emit(args, stdout, "suspended", EXIT_SUSPENDED, pending=items, state_file=state_file)


def _emit(
    args: argparse.Namespace,
    stdout: TextIO,
    status: str,
    code: int,
    *,
    output: str | None = None,
    reason: str | None = None,
    pending: list[PendingDecision] | None = None,
    state_file: str | None = None,
) -> int:
    if args.format == "json":
        data = {
            "status": status,
            "output": output,
            "pending": [p.to_dict() for p in pending or []],
            "state_file": state_file,
        }
        if reason is not None:
            data["reason"] = reason
        json.dump(data, stdout, ensure_ascii=False)
        stdout.write("\n")
    elif output is not None:
        stdout.write(output + "\n")
    return code


def _describe(items: list[PendingDecision]) -> str:
    lines = []
    for p in items:
        what = p.tool or "(agent)"
        args = json.dumps(p.arguments, ensure_ascii=False) if p.arguments is not None else ""
        lines.append(f"  {p.path}  [{p.reason}]  {what} {args}".rstrip())
        if p.prompt:
            lines.append(f"      {p.prompt}")
        if p.detail:
            lines.append(f"      {p.detail}")
        state = f"decided: {p.decision}" if p.decision else "decide: " + ", ".join(p.decisions)
        lines.append(f"      {state}")
    return "\n".join(lines) + "\n"


def _write_atomic(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".callcc-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, target)


def _warn_unused(runtime: Runtime, outcome: Outcome, stderr: TextIO) -> None:
    if not isinstance(outcome, Finished):
        return
    models = {id(a.model): a.model for a in runtime.program.agents.values()}
    for model in models.values():
        if isinstance(model, ScriptedModel) and model.unused():
            print(
                f"callcc: warning: scripted turns never played: {', '.join(model.unused())}",
                file=stderr,
            )


class _progress:
    """Print the run's progress log lines unless --quiet or --format json."""

    def __init__(self, args: argparse.Namespace, stream: TextIO) -> None:
        self.enabled = not args.quiet and args.format == "text"
        self.handler = logging.StreamHandler(stream)
        self.handler.setFormatter(logging.Formatter("· %(message)s"))
        self.logger = logging.getLogger("callcc.run")
        self.level = self.logger.level

    def __enter__(self) -> None:
        if self.enabled:
            self.logger.addHandler(self.handler)
            self.logger.setLevel(logging.INFO)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self.level)


__all__ = ["DecisionError", "register"]
