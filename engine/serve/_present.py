"""What the inbox pages show of a pending decision, a run, a message and an audit row.

Plain functions from the service's views to plain dicts for the templates (which escape every
string they print): no web framework here, so they are easy to test and to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.durable import spec_of_run
from engine.errors import CallccError
from engine.masking import MASK, mask

if TYPE_CHECKING:
    from engine.serve.auth import User
    from engine.serve.service import Service
    from engine.serve.views import PendingView
    from engine.spec.model import Spec
    from engine.store.base import AuditEntry

Schemas = Mapping[tuple[str, str], Mapping[str, Any] | None]
"""(run id, tool) -> the tool's parameters (a JSON Schema), where the spec has them."""

REASONS: Mapping[str, str] = {
    "approval": "Approval",
    "external": "External answer",
    "turn_limit": "Limit reached",
    "pause": "Pause",
    "error": "Error",
    "subagent": "Sub-agent",
}
"""The badge of each wait reason."""
FORM_DECISIONS = frozenset({"approve", "reject", "edit", "answer", "extend"})
"""Decisions with a form of their own; the others (stop, resume) are plain buttons."""


def pretty(value: Any) -> str:
    """JSON as the page shows it (and as its script re-indents it): two spaces, real unicode."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def restore_secrets(edited: Any, original: Any) -> Any:
    """Edited arguments with every `***` put back to the value it hides in `original`: the
    page shows (and sends) secrets masked, and a reviewer who leaves one as `***` keeps it."""
    if isinstance(edited, dict) and isinstance(original, Mapping):
        hidden = mask(original)  # what the page showed
        return {
            k: original[k]
            if v == MASK and k in original and hidden.get(k) == MASK
            else restore_secrets(v, original.get(k))
            for k, v in edited.items()
        }
    if isinstance(edited, list) and isinstance(original, list):
        return [
            restore_secrets(v, original[i]) if i < len(original) else v
            for i, v in enumerate(edited)
        ]
    if edited == MASK and original is not None and mask(original) == MASK:
        return original
    return edited


def card_key(run_id: str, path: str, fingerprint: str) -> str:
    """The stable key of a card: the same call of the same run waiting on the same thing."""
    return hashlib.sha256(f"{run_id}\0{path}\0{fingerprint}".encode()).hexdigest()[:20]


def iso(at: float) -> str:
    """An epoch time as ISO 8601 UTC, for `<time datetime>`."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def clock(at: float | None) -> str:
    """An epoch time as a person reads it (UTC)."""
    if not at:
        return "–"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def span(seconds: float) -> str:
    """A duration in the largest two units: `3 d 4 h`, `2 h 5 min`, `7 min`."""
    seconds = max(0, int(seconds))
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "under a minute"


def why(
    reason: str,
    tool: str | None,
    detail: str | None,
    approvers: Sequence[str],
    policy: str | None = None,
) -> str:
    """Why a person must decide, in one sentence; `policy` is the condition's verdict
    (`PendingView.why`) when an `approval.when` made the call wait."""
    if reason == "approval":
        who = f" Only {', '.join(approvers)} may decide." if approvers else ""
        if policy:
            return f"A condition asks a person to approve this call of {tool}: {policy}.{who}"
        return f"The spec asks a person to approve every call of {tool}.{who}"
    if reason == "external":
        return "The result comes from outside callcc: answer with it, or reject the call."
    if reason == "turn_limit":
        return f"A limit was reached ({detail or 'turns'}): grant more, or stop the agent."
    if reason == "pause":
        return "The spec pauses the run here for a person to look: resume it, or stop it."
    if reason == "error":
        return f"It failed: {detail or 'an error'}. Try again, answer in its place, or skip it."
    return detail or reason


def _cannot(user: User, approvers: Sequence[str]) -> str:
    if not (user.can("approver")):
        return "You can read this; deciding needs the approver role."
    return f"Only {', '.join(approvers)} may decide this one."


def item_view(view: PendingView, user: User, schemas: Schemas, *, now: float) -> dict[str, Any]:
    """One card of the inbox."""
    data = view.to_dict()
    run_id, path, fingerprint = data["run_id"], data["path"], data["fingerprint"]
    tool, arguments = data.get("tool"), data.get("arguments")
    approvers = list(data.get("approvers") or ())
    since, expires = data.get("since"), data.get("expires_at")
    shown = pretty(mask(arguments)) if arguments is not None else ""
    schema = schemas.get((run_id, tool or ""))
    decisions = list(data.get("decisions") or ())
    return {
        "run_id": run_id,
        "spec_name": view.spec,
        "id": data["id"],
        "path": path,
        "agent": data.get("agent") or "",
        "tool": tool,
        "reason": data["reason"],
        "reason_label": REASONS.get(data["reason"], data["reason"]),
        "why": why(data["reason"], tool, view.detail, approvers, data.get("why")),
        "prompt": data.get("prompt"),
        "arguments": mask(arguments),
        "pretty": shown,
        "rows": min(20, max(4, shown.count("\n") + 2)),
        "arguments_json": json.dumps(mask(arguments), ensure_ascii=False),
        "masked": shown.count(f'"{MASK}"') > 0,
        "schema_json": json.dumps(schema, ensure_ascii=False),
        "decisions": decisions,
        "plain": [d for d in decisions if d not in FORM_DECISIONS],
        "fingerprint": fingerprint,
        "since": since,
        "since_iso": iso(since) if since else "",
        "since_text": f"{span(now - since)} ({clock(since)})" if since else "",
        "expires_at": expires,
        "expires_iso": iso(expires) if expires else "",
        "expires_left": (f"in {span(expires - now)}" if expires > now else "expired")
        if expires
        else "",
        "approvers": approvers,
        "can": view.can_decide(user),
        "cannot": _cannot(user, approvers),
        "key": card_key(run_id, path, fingerprint),
        "dom": card_key(run_id, path, "")[:12],
        "ref": json.dumps([run_id, path, fingerprint]),
    }


def diff_lines(before: Any, after: Any) -> list[dict[str, str]]:
    """The line diff of two JSON values as the page shows them: kept, removed, added."""
    old, new = pretty(before).split("\n"), pretty(after).split("\n")
    lines: list[dict[str, str]] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            lines += [{"cls": "same", "text": "  " + line} for line in old[i1:i2]]
            continue
        lines += [{"cls": "del", "text": "- " + line} for line in old[i1:i2]]
        lines += [{"cls": "add", "text": "+ " + line} for line in new[j1:j2]]
    return lines


def _tokens(usage: Any) -> int:
    if not isinstance(usage, Mapping):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    return sum(
        v for k, v in usage.items() if k in ("input_tokens", "output_tokens") and isinstance(v, int)
    )


def run_view(data: Mapping[str, Any]) -> dict[str, Any]:
    """A run's header: status, times, tokens, output."""
    output = data.get("output")
    return {
        **data,
        "pending": list(data.get("pending") or ()),
        "created_text": clock(data.get("created_at")),
        "updated_text": clock(data.get("updated_at")),
        "version": str(data.get("updated_at") or "").replace(".", ""),
        "output_text": output if isinstance(output, str) else pretty(output),
        "tokens": _tokens(data.get("usage")),
    }


def _call_text(call: Any) -> str:
    if not isinstance(call, Mapping):
        return pretty(call)
    function = call.get("function")
    if isinstance(function, Mapping):  # the OpenAI shape: arguments as a JSON string
        name, arguments = function.get("name"), function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):  # not JSON: shown as the model sent it
                arguments = json.loads(arguments)
    else:
        name, arguments = call.get("name"), call.get("arguments")
    ident = f" ({call['id']})" if call.get("id") else ""
    return f"{name}{ident}\n{pretty(mask(arguments))}"


def transcript_view(frames: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each frame of the stack (root first) with its messages."""
    return [
        {
            "path": str(frame.get("path") or ""),
            "agent": str(frame.get("agent") or ""),
            "messages": [
                message_view(m) for m in frame.get("messages") or () if isinstance(m, Mapping)
            ],
        }
        for frame in frames
    ]


def message_view(message: Mapping[str, Any]) -> dict[str, Any]:
    """One transcript message: who said it, its text, the tool calls it made."""
    content = message.get("content")
    text = (
        pretty(mask(content)) if content is not None and not isinstance(content, str) else content
    )
    calls = message.get("tool_calls") or ()
    return {
        "role": str(message.get("role") or "?"),
        "agent": str(message.get("agent") or message.get("path") or ""),
        "name": str(message.get("name") or message.get("tool_call_id") or ""),
        "text": mask(text or ""),
        "calls": [_call_text(c) for c in calls] if isinstance(calls, list) else [],
    }


def audit_rows(entries: Iterable[AuditEntry]) -> list[dict[str, Any]]:
    """The audit table: when, who, what, which call, why and what changed."""
    rows = []
    for entry in entries:
        changed = entry.before is not None or entry.after is not None
        rows.append(
            {
                "iso": iso(entry.at),
                "when": clock(entry.at),
                "user": entry.user,
                "action": entry.action,
                "decision": entry.decision,
                "tool": entry.tool,
                "path": entry.path,
                "reason": entry.reason,
                "scope": "for the rest of the run"
                + (f" where {entry.detail['where']}" if entry.detail.get("where") else "")
                if entry.detail and entry.detail.get("scope") == "run"
                else None,
                "change": diff_lines(mask(entry.before), mask(entry.after)) if changed else [],
            }
        )
    return rows


_SPECS: dict[str, Spec] = {}
"""Spec digest -> the spec, as the store keeps it (a digest names one spec for ever)."""


async def schemas_for(
    service: Service, user: User, views: Sequence[PendingView]
) -> dict[tuple[str, str], Mapping[str, Any] | None]:
    """The parameters of each tool that waits for an edit (where its spec declares them),
    for the page's own check; the service checks every edit again, fully."""
    wanted = sorted({(v.run_id, v.tool) for v in views if v.tool and "edit" in v.decisions})
    found: dict[tuple[str, str], Mapping[str, Any] | None] = {}
    for run_id, tool in wanted:
        record = await service.store.aio.get_run(run_id)
        spec = _SPECS.get(record.spec_digest)
        if spec is None:
            try:
                spec = await asyncio.to_thread(spec_of_run, service.store, run_id)
            except CallccError:
                found[(run_id, tool)] = None  # the server's check still applies
                continue
            if len(_SPECS) > 64:
                _SPECS.clear()
            _SPECS[record.spec_digest] = spec
        declared = spec.tools.get(tool)
        # a server's tool (kind: mcp) is not declared here: the server's check applies
        found[(run_id, tool)] = getattr(declared, "parameters", None)
    return found
