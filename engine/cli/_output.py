"""What `run`, `resume` and the store commands print and write: outcomes, pending lists,
progress lines, state files."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from engine.cli._exit import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_SUSPENDED
from engine.masking import mask
from engine.signing import KEY_ENV

if TYPE_CHECKING:  # `pending` prints with `describe`: no runtime, no events, no frames
    from engine.continuation import Continuation, PendingDecision
    from engine.events import RunEvent
    from engine.grants import Grant
    from engine.runtime import Failed, Outcome, Runtime
    from engine.usage import Usage

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "EXIT_SUSPENDED"]


def report(
    outcome: Outcome,
    state_file: str | None,
    args: argparse.Namespace,
    stdout: TextIO,
    stderr: TextIO,
    *,
    store_url: str | None = None,
) -> int:
    """Print the outcome; on suspension write `state_file` (when given). A finished or
    stopped run's state file is removed: the run is over and must never be resumed again. A
    failed run's state is written there, to inspect (and, when it can be resumed once its
    cause is fixed, to resume)."""
    from engine.runtime import Failed, Finished, Stopped

    if isinstance(outcome, Finished | Stopped):
        run_id = outcome.run_id
    else:
        run_id = outcome.continuation.run_id
    if isinstance(outcome, Failed) and outcome.resumable:
        return _report_resumable_failure(outcome, state_file, args, stdout, stderr, store_url)
    if isinstance(outcome, Failed) and state_file:
        # nothing to resume, but where it stopped is worth a look: keep it (it waits on
        # nothing, so no resume can take it)
        write_state(outcome.continuation, state_file, stderr)
        print(
            f"callcc: the failed run's state is kept in {state_file}: "
            f"`callcc inspect {shlex.quote(state_file)}` shows where it stopped",
            file=stderr,
        )
        state_file = None
    if isinstance(outcome, Finished | Stopped | Failed):
        if state_file:
            Path(state_file).unlink(missing_ok=True)
        if isinstance(outcome, Stopped) and args.format != "json":
            so_far = "; its reply so far:" if outcome.output else " before it said anything"
            stdout.write(f"stopped: a stop decision ended the run{so_far}\n")
            if not outcome.output:
                return EXIT_OK
        if isinstance(outcome, Finished | Stopped):
            return _emit(
                args,
                stdout,
                outcome.kind,
                EXIT_OK,
                run_id,
                output=outcome.output,
                usage=outcome.usage,
            )
        print(f"callcc: run failed: {outcome.reason}", file=stderr)
        return _emit(
            args, stdout, "failed", EXIT_FAILED, run_id, reason=outcome.reason, usage=outcome.usage
        )
    if state_file:
        write_state(outcome.continuation, state_file, stderr)
    items = outcome.continuation.pending()
    if args.format == "json":
        return _emit(
            args,
            stdout,
            "suspended",
            EXIT_SUSPENDED,
            run_id,
            pending=items,
            state_file=state_file,
            usage=outcome.usage,
            grants=outcome.continuation.grants(),
        )
    where = f"state written to {state_file}" if state_file else f"run {run_id} kept in the store"
    stdout.write(f"suspended: {len(items)} pending, {where}\n")
    stdout.write(describe(items))
    stdout.write(describe_grants(outcome.continuation.grants()))
    first = next((p for p in items if p.decision is None), None)
    if first is not None:
        kind = first.decisions[0]
        value = {"extend": " --turns N", "answer": " --result JSON", "edit": " --args JSON"}
        command = resume_command_line(run_id, state_file, store_url, args, kind, first.path)
        stdout.write(f"next: {command}{value.get(kind, '')}\n")
    return EXIT_SUSPENDED


def resume_command_line(
    run_id: str,
    state_file: str | None,
    store_url: str | None,
    args: argparse.Namespace,
    flag: str,
    path: str,
) -> str:
    """The `callcc resume ...` that goes on with this run, quoted for a POSIX shell: the state
    file (or the run id and its store), the same `--model` the run was driven with (the
    document does not record it: without it, a resume would quietly use the spec's models),
    and the decision flag for `path`."""
    words = ["callcc", "resume"]
    words += [state_file] if state_file else [run_id, "--store", store_url or ""]
    temporal = getattr(args, "temporal", None)
    if temporal:
        words += ["--temporal", temporal]
    model = getattr(args, "model", None)
    if model:
        words += ["--model", model]
    words += [f"--{flag}", path]
    return " ".join(shlex.quote(word) for word in words)


def _report_resumable_failure(
    outcome: Failed,
    state_file: str | None,
    args: argparse.Namespace,
    stdout: TextIO,
    stderr: TextIO,
    store_url: str | None,
) -> int:
    """A failed run that recorded where it can resume: keep its state and say how."""
    continuation = outcome.continuation
    run_id = continuation.run_id
    if state_file:
        write_state(continuation, state_file, stderr)
    items = continuation.pending()
    first = next((p for p in items if p.decision is None and p.reason == "error"), items[0])
    if state_file:
        where = f"the failed run's state is written to {state_file}"
    else:
        where = f"the failed run {run_id} is kept in the store"
    command = resume_command_line(run_id, state_file, store_url, args, "resume", first.path)
    print(f"callcc: run failed: {outcome.reason}", file=stderr)
    print(
        f"callcc: {where}: once the cause is fixed, resume it with `{command}` "
        "(or end it with --stop)",
        file=stderr,
    )
    return _emit(
        args,
        stdout,
        "failed",
        EXIT_FAILED,
        run_id,
        reason=outcome.reason,
        pending=items,
        state_file=state_file,
        usage=outcome.usage,
    )


def _emit(
    args: argparse.Namespace,
    stdout: TextIO,
    status: str,
    code: int,
    run_id: str,
    *,
    output: str | None = None,
    reason: str | None = None,
    pending: list[PendingDecision] | None = None,
    state_file: str | None = None,
    usage: Usage | None = None,
    grants: Sequence[Grant] = (),
) -> int:
    if args.format == "json":
        from engine._codec import grants_to_data
        from engine.usage import Usage

        data = {
            "status": status,
            "output": output,
            "pending": [p.to_dict() for p in pending or []],
            "state_file": state_file,
            "run_id": run_id,
            "usage": (usage or Usage()).to_dict(),
        }
        if grants:
            data["grants"] = grants_to_data(grants)
        if reason is not None:
            data["reason"] = reason
        json.dump(data, stdout, ensure_ascii=False)
        stdout.write("\n")
    elif output is not None:
        stdout.write(output + "\n")
    return code


def describe(items: list[PendingDecision]) -> str:
    lines = []
    for p in items:
        what = p.tool or "(agent)"
        shown = mask(p.arguments)  # as the pictures show them; --format json keeps them
        args = json.dumps(shown, ensure_ascii=False) if p.arguments is not None else ""
        lines.append(f"  {p.path}  [{p.reason}]  {what} {args}".rstrip())
        if p.prompt:
            lines.append(f"      {p.prompt}")
        if p.detail:
            lines.append(f"      {p.detail}")
        if p.why:
            lines.append(f"      why: {p.why}")
        state = f"decided: {p.decision}" if p.decision else "decide: " + ", ".join(p.decisions)
        lines.append(f"      {state}")
    return "\n".join(lines) + "\n"


def describe_grants(grants: Sequence[Grant]) -> str:
    """The run's grants, one line each (`""` when it has none)."""
    return "".join(f"  grant: {grant.line()}\n" for grant in grants)


def write_atomic(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".callcc-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, target)


def warn_unused(runtime: Runtime, outcome: Outcome, stderr: TextIO) -> None:
    from engine.models.scripted import ScriptedModel
    from engine.runtime import Finished

    if not isinstance(outcome, Finished):
        return
    models = {id(a.model): a.model for a in runtime.program.agents.values()}
    for model in models.values():
        if isinstance(model, ScriptedModel) and model.unused():
            print(
                f"callcc: warning: scripted turns never played: {', '.join(model.unused())}",
                file=stderr,
            )


class progress:
    """Print the run's progress lines (context manager) unless --quiet or --format json: the
    `callcc.run` log (where the spec came from) and, from `observers`, the run's events."""

    def __init__(self, args: argparse.Namespace, stream: TextIO) -> None:
        import logging  # here, not at the top: `pending` and `--help` never log

        self.enabled = not args.quiet and args.format == "text"
        self.handler = logging.StreamHandler(stream)
        self.handler.setFormatter(logging.Formatter("· %(message)s"))
        self.logger = logging.getLogger("callcc.run")
        self.level = self.logger.level
        self.observers: list[ProgressLines] = [ProgressLines(stream)] if self.enabled else []
        """The observers a `Runtime` is given: the progress lines, or none."""

    def __enter__(self) -> progress:
        if self.enabled:
            self.logger.addHandler(self.handler)
            self.logger.setLevel("INFO")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self.level)


_ANSWERED = frozenset({"stop", "tool_calls", "function_call"})
"""Finish reasons of a reply that answers (the loop's own set)."""


class ProgressLines:
    """The observer behind `callcc run`'s `·` lines: one line for each step a person follows
    (the model asked and what it said, each tool run, gated, refused or decided, a sub-agent
    started, a budget or pause reached), indented two spaces a sub-agent level."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def on_event(self, event: RunEvent) -> None:
        """Write the line for `event`, if it has one."""
        line = progress_line(event)
        if line is not None:
            agents = event.path.split("/")
            depth = len(agents) - 1
            self.stream.write(f"· {'  ' * depth}{agents[-1]}: {line}\n")
            self.stream.flush()


def progress_line(event: RunEvent) -> str | None:
    """What `callcc run` prints for `event` after `AGENT: `, or None."""
    from engine.events import (
        DecisionApplied,
        EntryAdded,
        GrantApplied,
        ModelCalled,
        ModelReplied,
        PolicyAllowed,
        ToolErrorToModel,
        ToolFinished,
        ToolStarted,
    )

    if isinstance(event, ModelCalled):
        return f"asks the model (turn {event.turn})"
    if isinstance(event, ModelReplied):
        if event.error is not None:
            return None
        if event.tool_calls:
            return f"calls {', '.join(event.tools)}"
        if event.finish_reason in _ANSWERED:
            return f"answers: {_clip(event.content or '')}"
        return None
    if isinstance(event, ToolStarted):
        if event.tool_kind == "python":
            return f"runs {event.tool} ({event.call_id})"
        if event.sub_agent is not None and not event.carries_on:
            return f"starts sub-agent {event.sub_agent} ({event.call_id})"
        return None
    if isinstance(event, PolicyAllowed):
        return (
            f"{event.tool} needs no approval: `{_clip(event.when, 60)}` is false ({event.call_id})"
        )
    if isinstance(event, GrantApplied):
        done = "runs without asking" if event.grant == "approve" else "is rejected"
        where = f" where `{_clip(event.where, 60)}`" if event.where else ""
        return f"{event.tool} {done}: granted for the run{where} ({event.call_id})"
    if isinstance(event, EntryAdded):
        entry = event.entry
        if entry.reason == "approval":
            why = f": {_clip(entry.why, 80)}" if entry.why else ""
            return f"{entry.tool} waits for approval ({entry.id}){why}"
        if entry.reason == "pause" and entry.tool is not None:
            return f"pauses before {entry.tool} ({entry.id})"
        if entry.tool is None and entry.reason in ("turn_limit", "pause"):
            return f"suspends ({entry.reason}: {entry.detail})"
        return None
    if isinstance(event, ToolErrorToModel):
        if event.retry:
            return f"{event.tool} ({event.call_id}) tells the model: {_clip(event.error)}"
        return f"{event.tool} ({event.call_id}) failed; the model reads the error"
    if isinstance(event, ToolFinished):
        if event.refused:
            return f"call {event.call_id} refused: {event.result}"
        return None
    if isinstance(event, DecisionApplied) and event.tool is not None:
        return f"{event.tool} ({event.call_id}) decided: {event.decision}"
    return None


def _clip(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_state(continuation: Continuation, path: str, stderr: TextIO) -> None:
    """Write a state file; one line on stderr when it leaves the process unsigned."""
    write_atomic(path, continuation.to_json())
    if not continuation.signed:
        print(
            f"callcc: warning: {path} is not signed: anyone holding the file can approve its "
            f"calls, or edit them; set {KEY_ENV} (`callcc keygen` makes a key), "
            "see docs/SECURITY.md",
            file=stderr,
        )
