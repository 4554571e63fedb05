"""`callcc inspect`: the suspended call stack as an indented tree for a terminal.

Markers at the start of a line: `>>` a call waiting for a decision, `!` a failed call (or a
model error) waiting for a decision, `=>` decided but not resumed yet; ledger entries show
their status in words (done, rejected, failed, running, queued) and, after `→`, their result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.render._text import (
    calls_by_id,
    compact_arguments,
    compact_result,
    content_text,
    results_by_id,
    secret_names,
    shorten,
)

if TYPE_CHECKING:  # a stack is drawn from the objects it is given: none is imported to run
    from engine.continuation import Continuation
    from engine.frames import Frame, Pending
    from engine.spec.model import Spec

_INDENT = "   "


def inspect_text(
    continuation: Continuation, spec: Spec | None = None, *, status: str | None = None
) -> str:
    """The stack, root first, children indented under the call that started them; `status`
    (a stored run's, such as `stopped`) is named in the first line."""
    secrets = secret_names(spec)
    ended = status if status in ("finished", "stopped") else None  # nothing waits any more
    waiting = [] if ended else continuation.undecided()
    decided = len(continuation.pending()) - len(continuation.undecided())
    usage = continuation.usage
    out = [
        f"run {continuation.run_id} · spec {continuation.spec_name} · "
        f"{len(waiting)} waiting, {decided} decided"
        + (f" · {status}" if status else "")
        + (f" · {usage.describe()}" if usage else "")
    ]
    via: dict[int, Pending] = {}
    for path, frame in continuation.frames():
        pad = _INDENT * (len(path) - 1)
        started = via.get(id(frame))
        how = f"  ← {started.tool} ({started.id})" if started else ""
        out.append(f"{pad}{frame.agent}{how}  [{_turns(frame, spec)}]")
        inner = pad + _INDENT
        user = next((m for m in reversed(frame.messages) if m.get("role") == "user"), None)
        if user is not None:
            out.append(f"{inner}user: {shorten(content_text(user.get('content')), 70)}")
        said = frame.last_text()
        if said:
            out.append(f"{inner}assistant: {shorten(said, 70)}")
        calls = calls_by_id(frame)
        results = results_by_id(frame)
        entries = {p.id for p in frame.pending}
        for call_id, status in frame.ledger.items():
            if call_id not in entries:
                tool = calls.get(call_id, ("?", {}))[0]
                word = "queued" if status == "pending" else status
                got = (
                    f" → {compact_result(results[call_id], secrets)}" if call_id in results else ""
                )
                out.append(f"{inner}{word:<8} {tool} ({call_id}){got}")
        for entry in frame.pending:
            if entry.child is not None:
                via[id(entry.child)] = entry
                continue
            head, *rest = _entry(entry, inner, secrets, ended)
            out.extend([head, f"{inner}      path: {'/'.join((*path, entry.id))}", *rest])
    out.extend(f"grant: {shorten(grant.line(), 200)}" for grant in continuation.grants())
    return "\n".join(out) + "\n"


def _turns(frame: Frame, spec: Spec | None) -> str:
    agent = spec.agents.get(frame.agent) if spec else None
    spent = (
        f" · {frame.input_tokens:,} in / {frame.output_tokens:,} out tokens"
        if frame.input_tokens or frame.output_tokens
        else ""
    )
    if agent is None:
        return f"turns {frame.turns}{spent}"
    return f"turns {frame.turns} of {agent.limits.max_turns + frame.extra_turns}{spent}"


def _entry(entry: Pending, pad: str, secrets: frozenset[str], ended: str | None) -> list[str]:
    if ended and entry.decision is None:
        mark = "--"
    elif entry.decision is not None:
        mark = "=>"
    elif entry.reason == "error":
        mark = "!"
    else:
        mark = ">>"
    what = entry.tool or entry.reason.replace("_", " ")
    lines = [f"{pad}{mark:<2} {what} ({entry.id}) · {entry.reason}"]
    more = pad + "      "
    if entry.arguments:
        lines.append(f"{more}args: {compact_arguments(entry.arguments, secrets)}")
    if entry.prompt:
        lines.append(f"{more}ask: {shorten(entry.prompt)}")
    if entry.detail:
        lines.append(f"{more}detail: {shorten(entry.detail)}")
    if entry.policy is not None:
        lines.append(f"{more}why: {shorten(entry.policy.line())}")
    if ended and entry.decision is None:
        lines.append(f"{more}never decided: the run is {ended} (nothing waits any more)")
    elif entry.decision is not None:
        lines.append(f"{more}decided: {entry.decision.kind} (resume to carry it out)")
    else:
        lines.append(f"{more}decide: {' | '.join(entry.decisions)}")
    return lines
