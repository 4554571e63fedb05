"""Continuation documents to and from plain JSON data, checking every field on the way in.

The frames are stored flat (`frames[0]` is the root; a `subagent` entry names its child by
index), so the JSON nests only a few levels whatever the depth of the call stack and neither
`json.loads` nor this module ever recurse per frame. Every malformed field is a
`ContinuationError` with the JSON pointer of the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any, cast

from engine._canonical import json_problem
from engine.errors import ContinuationError
from engine.frames import (
    CALL_STATUSES,
    DECISION_KINDS,
    LIMIT_NAMES,
    REASONS,
    Answer,
    Approve,
    Decision,
    Edit,
    Extend,
    Frame,
    Limit,
    Pending,
    PolicyWhy,
    Reject,
    Resume,
    Stop,
    walk,
)
from engine.grants import Grant

_COUNTERS_INT = (
    "turns",
    "attempts",
    "tool_calls",
    "extra_turns",
    "extra_tool_calls",
    "pause_turns",
    "serial",
    "input_tokens",
    "output_tokens",
)
_COUNTERS_NUM = ("extra_seconds", "elapsed", "pause_elapsed")
_SAME_AS = {"attempts": "turns", "pause_turns": "turns", "pause_elapsed": "elapsed"}
"""Counters left out when equal to another (the usual case): absent means equal."""
_COUNTER_KEYS = frozenset(_COUNTERS_INT + _COUNTERS_NUM)
_COUNTER_TYPES = dict.fromkeys(_COUNTERS_INT, int) | dict.fromkeys(_COUNTERS_NUM, float)
"""The exact type of each counter's value that the plain way of reading takes as it is."""
_COUNTER_NAMES = _COUNTERS_INT + _COUNTERS_NUM
"""Every counter, in the order a document writes them."""
_COUNTER_VALUES = attrgetter(*_COUNTER_NAMES)
_DEFAULT_AT = tuple(
    _COUNTER_NAMES.index(_SAME_AS[name]) if name in _SAME_AS else -1 for name in _COUNTER_NAMES
)
"""Per counter, the position of the counter it is left out when equal to (-1: zero)."""
_FRAME_KEYS = frozenset(
    {"agent", "messages", "counters", "ledger", "results", "pending", "toolsets", "approved"}
)
_PENDING_KEYS = frozenset(
    {"id", "reason", "tool", "arguments", "decisions", "fingerprint"}
    | {"prompt", "detail", "decision", "child", "expires_at", "approvers", "policy", "limit"}
)
_LIMIT_KEYS = frozenset({"name", "used", "allowed"})
_POLICY_KEYS = frozenset({"kind", "when", "outcome", "error"})
_GRANT_KEYS = frozenset({"kind", "tool", "where", "reason", "from", "fingerprint"})
_ROLES = frozenset({"user", "assistant", "tool", "system", "developer"})
_NONE: dict[str, Any] = {}
"""What an absent object member reads as (never changed: only read)."""
_NO_ITEMS: list[Any] = []
"""What an absent array member reads as (never changed: only read)."""


def frames_to_data(root: Frame) -> list[dict[str, Any]]:
    """The stack as a flat list of frame objects, root first."""
    order = walk(root)
    if len(order) == 1:  # a lone frame, the usual case: no child to index
        return [_frame_to_data(root, _no_child)]
    index = {id(frame): i for i, (_, frame) in enumerate(order)}
    return [_frame_to_data(frame, lambda child: index[id(child)]) for _, frame in order]


def _no_child(child: Frame) -> Any:
    raise AssertionError("a lone frame has no child")  # pragma: no cover - walk found none


def frame_state_data(frame: Frame, ledger: dict[str, Any] | None = None) -> dict[str, Any]:
    """A frame without its messages, `pending[].child` as true: a run store's `state` event.
    `ledger` is its ledger part when the caller knows it already (see `ledger_data`)."""
    data = _frame_to_data(frame, lambda child: True, ledger)
    del data["messages"]
    if frame.grants:  # the root's: a document writes them at its top level instead
        data["grants"] = grants_to_data(frame.grants)
    return data


def ledger_data(frame: Frame, candidates: Iterable[str] | None = None) -> dict[str, Any]:
    """The ledger as a document writes it: the calls of closed turns are `done` unless the
    ledger says otherwise, so only the exceptions and the current turn's calls are written
    (the loader fills the rest in from messages). With `candidates`, only those call ids and
    the current turn's are looked at (a journal knows which can have changed), so the cost
    does not grow with the frame's history."""
    current = {c["id"] for c in frame.in_flight()}
    ledger = frame.ledger
    if candidates is None:
        items: Iterable[tuple[str, Any]] = ledger.items()
    else:
        keys = dict.fromkeys(candidates)
        keys.update(dict.fromkeys(current))
        items = ((k, ledger[k]) for k in keys if k in ledger)
    return {call_id: status for call_id, status in items if status != "done" or call_id in current}


def _frame_to_data(
    frame: Frame, child_ref: Callable[[Frame], Any], ledger: dict[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"agent": frame.agent, "messages": frame.messages}
    # 1 ms is plenty for budgets in seconds
    values = [round(v, 3) if isinstance(v, float) else v for v in _COUNTER_VALUES(frame)]
    data["counters"] = {
        name: value
        for name, value, other in zip(_COUNTER_NAMES, values, _DEFAULT_AT, strict=True)
        if value != (values[other] if other >= 0 else 0)
    }
    data["ledger"] = ledger_data(frame) if ledger is None else ledger
    if frame.results:
        data["results"] = dict(frame.results)  # a snapshot: the frame goes on changing
    if frame.pending:
        data["pending"] = [_pending_to_data(p, child_ref) for p in frame.pending]
    if frame.toolsets:
        data["toolsets"] = frame.toolsets
    if frame.approved:
        data["approved"] = dict(frame.approved)  # a snapshot, like `results`
    return data


def _pending_to_data(entry: Pending, child_ref: Callable[[Frame], Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": entry.id,
        "reason": entry.reason,
        "tool": entry.tool,
        "arguments": entry.arguments,
        "decisions": list(entry.decisions),
        "fingerprint": entry.fingerprint,
    }
    if entry.prompt is not None:
        data["prompt"] = entry.prompt
    if entry.detail is not None:
        data["detail"] = entry.detail
    if entry.decision is not None:
        data["decision"] = decision_to_data(entry.decision)
    if entry.child is not None:
        data["child"] = child_ref(entry.child)
    if entry.expires_at is not None:
        data["expires_at"] = entry.expires_at
    if entry.approvers:
        data["approvers"] = list(entry.approvers)
    if entry.policy is not None:
        data["policy"] = policy_to_data(entry.policy)
    if entry.limit is not None:
        data["limit"] = limit_to_data(entry.limit)
    return data


def limit_to_data(limit: Limit) -> dict[str, Any]:
    """The limit a `turn_limit` entry reached, as the document holds it."""
    return {"name": limit.name, "used": limit.used, "allowed": limit.allowed}


def policy_to_data(policy: PolicyWhy) -> dict[str, Any]:
    """Why a condition made a call wait, as the document holds it."""
    data: dict[str, Any] = {"kind": policy.kind, "when": policy.when, "outcome": policy.outcome}
    if policy.error is not None:
        data["error"] = policy.error
    return data


def policy_from_data(raw: Any, pointer: str = "") -> PolicyWhy:
    """`policy_to_data`'s data back (as a run store's pending row or a workflow's entry keeps
    it), checked as a document's `policy` is; a refusal names `pointer`."""
    return _policy(raw, pointer)


def limit_from_data(raw: Any, pointer: str = "") -> Limit:
    """`limit_to_data`'s data back (as a workflow's entry keeps it), checked as a document's
    `limit` is; a refusal names `pointer`."""
    return _limit(raw, pointer)


def decision_to_data(decision: Decision) -> dict[str, Any]:
    """A decision as a JSON object tagged by `kind`."""
    data: dict[str, Any] = {"kind": decision.kind, "fingerprint": decision.fingerprint}
    if isinstance(decision, Edit):
        data["arguments"] = decision.arguments
    elif isinstance(decision, Reject):
        data["reason"] = decision.reason
    elif isinstance(decision, Answer):
        data["result"] = decision.result
    elif isinstance(decision, Extend):
        data["turns"] = decision.turns
    if isinstance(decision, Approve | Reject) and decision.scope == "run":
        data["scope"] = "run"
        if decision.where is not None:
            data["where"] = decision.where
    return data


def grants_to_data(grants: Iterable[Grant]) -> list[dict[str, Any]]:
    """The run's grants as the document's top-level `grants` holds them."""
    out = []
    for grant in grants:
        data: dict[str, Any] = {"kind": grant.kind, "tool": grant.tool}
        if grant.where is not None:
            data["where"] = grant.where
        if grant.reason is not None:
            data["reason"] = grant.reason
        data["from"] = grant.source
        data["fingerprint"] = grant.fingerprint
        out.append(data)
    return out


def grants_from_data(raw: Any, ptr: str) -> tuple[Grant, ...]:
    """The top-level `grants`: a non-empty list (absent when the run has none)."""
    if type(raw) is not list or not raw:
        raise ContinuationError(
            "expected a non-empty list of grants (leave `grants` out when there are none)",
            pointer=ptr,
        )
    return tuple(_grant(item, f"{ptr}/{i}") for i, item in enumerate(raw))


def _grant(raw: Any, ptr: str) -> Grant:
    """One grant: `{kind, tool, where?, reason? (reject only), from, fingerprint}`."""
    obj = _object(raw, ptr)
    _known(obj, ptr, _GRANT_KEYS)
    kind = obj.get("kind")
    if kind not in ("approve", "reject"):
        raise ContinuationError("expected 'approve' or 'reject'", pointer=f"{ptr}/kind")
    reason = _opt_str(obj, "reason", ptr)
    if (kind == "reject") != (reason is not None):
        raise ContinuationError(
            "a reject grant needs its reason, and only it has one", pointer=f"{ptr}/reason"
        )
    where = _opt_str(obj, "where", ptr)
    if where is not None and not where.strip():
        raise ContinuationError("expected a CEL condition", pointer=f"{ptr}/where")
    tool, source = _str(obj, "tool", ptr), _str(obj, "from", ptr)
    fingerprint = _str(obj, "fingerprint", ptr)
    for key, value in (("tool", tool), ("from", source), ("fingerprint", fingerprint)):
        if not value:
            raise ContinuationError("expected a non-empty string", pointer=f"{ptr}/{key}")
    _plain([where, reason], ptr)
    return Grant(
        kind=kind, tool=tool, source=source, fingerprint=fingerprint, where=where, reason=reason
    )


def _scope(obj: dict[str, Any], ptr: str) -> tuple[Any, str | None]:
    """A decision's `scope` (absent: `call`) and `where` (only with scope `run`)."""
    scope = obj.get("scope", "call")
    if scope != "run" and "scope" in obj:
        raise ContinuationError(
            "expected 'run' (leave `scope` out for this call only)", pointer=f"{ptr}/scope"
        )
    where = _opt_str(obj, "where", ptr)
    if where is not None and scope != "run":
        raise ContinuationError("a `where` needs `scope: run` beside it", pointer=f"{ptr}/where")
    if where is not None and not where.strip():
        raise ContinuationError("expected a CEL condition", pointer=f"{ptr}/where")
    _plain(where, f"{ptr}/where")
    return scope, where


def frames_from_data(raw: Any, pointer: str, order: list[Frame] | None = None) -> Frame:
    """Rebuild the stack from `frames`, checking types and that the links form one tree
    (`order`, when given, receives the frames in document order)."""
    if not isinstance(raw, list) or not raw:
        raise ContinuationError("expected a non-empty list of frames", pointer=pointer)
    frames: list[Frame] = [] if order is None else order
    links: list[tuple[Pending, int, str]] = []
    for i, item in enumerate(raw):
        frames.append(_frame_from_data(item, f"{pointer}/{i}", links))
    if not links and len(frames) == 1:  # a lone frame, the usual case: no links to check
        return frames[0]
    parent_of: dict[int, str] = {}
    for entry, child_index, where in links:
        if not 0 < child_index < len(frames):
            raise ContinuationError(
                f"child frame index {child_index} is out of range 1..{len(frames) - 1}",
                pointer=where,
            )
        if child_index in parent_of:
            raise ContinuationError(
                f"frame {child_index} is the child of two entries (also {parent_of[child_index]})",
                pointer=where,
            )
        parent_of[child_index] = where
        entry.child = frames[child_index]
    orphans = [i for i in range(1, len(frames)) if i not in parent_of]
    if orphans:
        raise ContinuationError(
            f"frames {orphans} are not reachable from the root frame", pointer=pointer
        )
    root = frames[0]
    if len(walk(root)) != len(frames):  # a link cycle that skips the root
        raise ContinuationError("frame links form a cycle", pointer=pointer)
    return root


def _frame_from_data(raw: Any, ptr: str, links: list[tuple[Pending, int, str]]) -> Frame:
    # each check is first the plain test of the well-formed case, inline; only when it fails
    # does the detailed checker run, which raises with the pointer (or accepts what the
    # plain test was too strict for, a `str` subclass say): the same verdict either way
    if type(raw) is not dict or not _FRAME_KEYS.issuperset(raw):
        _known(_object(raw, ptr), ptr, _FRAME_KEYS)
    obj = raw
    agent = obj.get("agent")
    if type(agent) is not str:
        agent = _str(obj, "agent", ptr)
    messages, call_ids = _messages(obj.get("messages"), f"{ptr}/messages")
    counters = obj.get("counters", _NONE)
    frame = _plain_counters_frame(agent, messages, counters)
    if frame is None:
        frame = _checked_counters_frame(agent, messages, counters, f"{ptr}/counters")
    ledger = obj.get("ledger", _NONE)
    if type(ledger) is not dict:
        ledger = _object(ledger, f"{ptr}/ledger")
    if not _all_in(_STATUS_SET, ledger.values()):
        for call_id, status in ledger.items():
            if status not in CALL_STATUSES:
                raise ContinuationError(
                    f"unknown call status {status!r}; expected one of {', '.join(CALL_STATUSES)}",
                    pointer=f"{ptr}/ledger/{_escape(call_id)}",
                )
    frame.ledger = cast(Any, _full_ledger(frame, ledger, call_ids))
    results = obj.get("results", _NONE)
    if type(results) is not dict:
        results = _object(results, f"{ptr}/results")
    if results:  # else the frame's own empty default
        for call_id, text in results.items():
            if not isinstance(text, str):
                raise ContinuationError(
                    "expected a string", pointer=f"{ptr}/results/{_escape(call_id)}"
                )
        frame.results = dict(results)
    if "toolsets" in obj:
        frame.toolsets = _toolsets(obj["toolsets"], f"{ptr}/toolsets")
    if "approved" in obj:
        frame.approved = _approved(obj["approved"], f"{ptr}/approved", frame)
    pending_raw = obj.get("pending", _NO_ITEMS)
    if not isinstance(pending_raw, list):
        raise ContinuationError("expected a list", pointer=f"{ptr}/pending")
    if pending_raw:
        entries = frame.pending
        for j, item in enumerate(pending_raw):
            entry = _plain_entry(item)
            if entry is None:
                where = f"{ptr}/pending/{j}"
                entry, child = _pending_from_data(item, where)
                if child is not None:
                    links.append((entry, child, f"{where}/child"))
            entries.append(entry)
    return frame


def _plain_counters_frame(agent: str, messages: Any, counters: Any) -> Frame | None:
    """The frame with `counters` when every counter is known and of its exact type (an `int`
    counter a non-negative `int`, a number counter a finite non-negative `float`: what
    `_counter` keeps unchanged), the absent ones as `_SAME_AS` says; else None."""
    if type(counters) is not dict:
        return None
    for name, value in counters.items():
        kind = _COUNTER_TYPES.get(name)
        if kind is not type(value) or not 0 <= value < math.inf:
            return None
    frame = Frame.new(agent, messages)
    turns = counters.get("turns", 0)
    frame.attempts = frame.pause_turns = turns  # unless the document says otherwise
    frame.pause_elapsed = counters.get("elapsed", 0.0)
    for name, value in counters.items():
        setattr(frame, name, value)
    return frame


def _checked_counters_frame(agent: str, messages: Any, counters: Any, ptr: str) -> Frame:
    frame = Frame.new(agent, messages)
    if type(counters) is not dict or not _COUNTER_KEYS.issuperset(counters):
        _known(_object(counters, ptr), ptr, _COUNTER_KEYS)
    for name, value in counters.items():  # absent counters keep the frame's zero default
        whole = name in _COUNTERS_INT
        number = _counter(value, whole)
        if number is None:
            expected = "a non-negative integer" if whole else "a finite non-negative number"
            raise ContinuationError(f"expected {expected}", pointer=f"{ptr}/{name}")
        setattr(frame, name, number)
    for name, other in _SAME_AS.items():
        if name not in counters:
            setattr(frame, name, getattr(frame, other))
    return frame


def _toolsets(raw: Any, ptr: str) -> dict[str, dict[str, str]]:
    """Per server, tool name -> schema fingerprint (see `Frame.toolsets`)."""
    out: dict[str, dict[str, str]] = {}
    for server, tools in _object(raw, ptr).items():
        where = f"{ptr}/{_escape(server)}"
        for name, value in _object(tools, where).items():
            if not isinstance(value, str) or not value.startswith("sha256:"):
                raise ContinuationError(
                    "expected a schema fingerprint (sha256:...)", pointer=f"{where}/{_escape(name)}"
                )
        out[server] = dict(tools)
    return out


def _approved(raw: Any, ptr: str, frame: Frame) -> dict[str, str]:
    """Calls of the current turn a person approved -> the fingerprint of the entry approved
    (see `Frame.approved`): only calls of the frame's open turn."""
    current = {c["id"] for c in frame.in_flight()}
    out: dict[str, str] = {}
    for call_id, value in _object(raw, ptr).items():
        where = f"{ptr}/{_escape(call_id)}"
        if call_id not in current:
            raise ContinuationError(
                "an approved call must be a call of the frame's last assistant message, "
                "still awaiting its result",
                pointer=where,
            )
        if not isinstance(value, str) or not value:
            raise ContinuationError("expected the fingerprint of the entry approved", pointer=where)
        out[call_id] = value
    return out


_MESSAGES_AT = '"messages":['
_MESSAGES_END = '],"counters":{'
"""How a compact document opens a frame's messages and closes them (`_frame_to_data` writes
`counters` right after `messages`, always)."""


def split_messages(text: str) -> tuple[str, list[tuple[int, int]]] | None:
    """`text` (compact JSON) with every frame's messages cut out, each written `[]`, and
    where each cut was (the span of the messages array, brackets included); None when the
    text does not surely split so. The cut is a guess from two markers that a reader checks
    whole: every occurrence of both must pair up in order, and `messages_fit` must find the
    rest to be a canonical document with one frame per cut, so no occurrence stood anywhere
    but at a frame's own keys (every other `"messages":[` of the text is in what is left,
    where a canonical document shows it). Only what a cut holds is left unparsed: each span
    must then read as one JSON array (`messages_at`), or the text was not what it claimed."""
    opens = _occurrences(text, _MESSAGES_AT)
    closes = _occurrences(text, _MESSAGES_END)
    if not opens or len(opens) != len(closes):
        return None
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    start = 0
    for i, (at, end) in enumerate(zip(opens, closes, strict=True)):
        first = at + len(_MESSAGES_AT) - 1  # the opening bracket
        if end < first or (i + 1 < len(opens) and opens[i + 1] < end):
            return None
        pieces.append(text[start : first + 1])
        spans.append((first, end + 1))
        start = end
    pieces.append(text[start:])
    return "".join(pieces), spans


def _occurrences(text: str, token: str) -> list[int]:
    found: list[int] = []
    at = text.find(token)
    while at >= 0:
        found.append(at)
        at = text.find(token, at + len(token))
    return found


def messages_fit(data: Any, cuts: int) -> bool:
    """True when `data`, read from the rest `split_messages` left, has one frame per cut, each
    with the empty messages the cut left (what `frames_from_data` checks comes after)."""
    frames = data.get("frames") if isinstance(data, dict) else None
    return (
        isinstance(frames, list)
        and len(frames) == cuts
        and all(isinstance(f, dict) and f.get("messages") == [] for f in frames)
    )


def messages_at(frame: Frame, messages: Any, ptr: str) -> None:
    """Give `frame`, read without its messages, the messages read for it later: checked as
    `_frame_from_data` checks them, the ledger's closed calls filled in the same way."""
    checked, call_ids = _messages(messages, ptr)
    frame.messages = checked
    frame.ledger = cast(Any, _full_ledger(frame, dict(frame.ledger), call_ids))


def _counter(value: Any, whole: bool) -> int | float | None:
    """A counter's value, or None unless it is a non-negative integer (`whole`) or a finite
    non-negative number: NaN and Infinity would be written back as null, and the next
    document could not be read."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if whole:
        return value if isinstance(value, int) and value >= 0 else None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _full_ledger(
    frame: Frame, written: dict[str, Any], call_ids: list[str] | None
) -> dict[str, Any]:
    """The ledger with every call of a closed turn that the document left out as `done`
    (`call_ids`: every call's id in message order, when `_messages` collected them)."""
    current = frame.in_flight()
    if call_ids is not None:  # the current turn's calls are the last ids
        closed = call_ids[: len(call_ids) - len(current)]
        ledger: dict[str, Any] = dict.fromkeys(closed, "done")
        ledger.update(written)
        return ledger
    closed_turns = frame.messages[:-1] if current else frame.messages
    ledger = {}
    for message in closed_turns:
        for call in message.get("tool_calls") or ():
            ledger[call["id"]] = "done"
    ledger.update(written)
    return ledger


def _plain_entry(raw: Any) -> Pending | None:
    """The entry `raw` holds when it is a plain one (the usual `approval` or `external`
    entry: no decision, child, limit, policy, expiry or approvers) and every field has its
    exact type, else None (`_pending_from_data` then reads it, with its pointers)."""
    if type(raw) is not dict or not _PLAIN_ENTRY_KEYS.issuperset(raw):
        return None
    get = raw.get
    reason, tool, arguments, decisions = (
        get("reason"),
        get("tool"),
        get("arguments"),
        get("decisions"),
    )
    entry_id, fingerprint, prompt, detail = (
        get("id"),
        get("fingerprint"),
        get("prompt"),
        get("detail"),
    )
    if not (
        type(reason) is str
        and reason in _PLAIN_REASONS
        and type(entry_id) is str
        and type(fingerprint) is str
        and (tool is None or type(tool) is str)
        and (prompt is None or type(prompt) is str)
        and (detail is None or type(detail) is str)
        and (arguments is None or (type(arguments) is dict and json_problem(arguments) is None))
        and type(decisions) is list
        and _decision_kinds(decisions)
    ):
        return None
    return Pending.new(
        entry_id, reason, tool, arguments, tuple(decisions), fingerprint, prompt, detail
    )


_PLAIN_ENTRY_KEYS = frozenset(
    {"id", "reason", "tool", "arguments", "decisions", "fingerprint", "prompt", "detail"}
)
_PLAIN_REASONS = frozenset(REASONS) - {"subagent", "turn_limit"}
"""Reasons whose entries need none of the members a plain entry leaves out."""
_STATUS_SET = frozenset(CALL_STATUSES)


def _all_in(allowed: frozenset[Any], values: Iterable[Any]) -> bool:
    """True when every item of `values` is in `allowed` (an unhashable one is not)."""
    try:
        return allowed.issuperset(values)
    except TypeError:
        return False


def _pending_from_data(raw: Any, ptr: str) -> tuple[Pending, int | None]:
    obj = _object(raw, ptr)
    _known(obj, ptr, _PENDING_KEYS)
    reason = obj.get("reason")
    if reason not in REASONS:
        raise ContinuationError(
            f"unknown reason {reason!r}; expected one of {', '.join(REASONS)}",
            pointer=f"{ptr}/reason",
        )
    tool = obj.get("tool")
    if tool is not None and not isinstance(tool, str):
        raise ContinuationError("expected a string or null", pointer=f"{ptr}/tool")
    arguments = obj.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise ContinuationError("expected an object or null", pointer=f"{ptr}/arguments")
    _plain(arguments, ptr, "/arguments")
    decisions = obj.get("decisions")
    if not isinstance(decisions, list) or not _decision_kinds(decisions):
        raise ContinuationError(
            f"expected a list of decision kinds ({', '.join(DECISION_KINDS)})",
            pointer=f"{ptr}/decisions",
        )
    child = obj.get("child")
    if child is not None and (not isinstance(child, int) or isinstance(child, bool)):
        raise ContinuationError("expected a frame index", pointer=f"{ptr}/child")
    if (reason == "subagent") != (child is not None):
        raise ContinuationError(
            "a `subagent` entry needs a child frame, and only it may have one",
            pointer=f"{ptr}/child",
        )
    entry = Pending.new(
        _str(obj, "id", ptr),
        reason,
        tool,
        arguments,
        tuple(decisions),
        _str(obj, "fingerprint", ptr),
        _opt_str(obj, "prompt", ptr),
        _opt_str(obj, "detail", ptr),
    )
    if "decision" in obj:
        entry.decision = decision_from_data(obj["decision"], f"{ptr}/decision")
    if "expires_at" in obj:
        entry.expires_at = _expires_at(obj["expires_at"], f"{ptr}/expires_at")
    if "approvers" in obj:
        entry.approvers = _approvers(obj["approvers"], f"{ptr}/approvers")
    if "policy" in obj:
        entry.policy = _policy(obj["policy"], f"{ptr}/policy")
    if (reason == "turn_limit") != ("limit" in obj):
        raise ContinuationError(
            "a `turn_limit` entry needs the `limit` it reached, and only it has one",
            pointer=f"{ptr}/limit",
            suggestion="add {name, used, allowed} (a version 1 document derives it from "
            "`detail`: write `version: 1` if it is one)",
        )
    if "limit" in obj:
        entry.limit = _limit(obj["limit"], f"{ptr}/limit")
    return entry, child


def _limit(raw: Any, ptr: str) -> Limit:
    """A `turn_limit` entry's `limit`: which budget, how much was used of how much."""
    obj = _object(raw, ptr)
    _known(obj, ptr, _LIMIT_KEYS)
    name = obj.get("name")
    if name not in LIMIT_NAMES:
        raise ContinuationError(
            f"unknown limit {name!r}; expected one of {', '.join(LIMIT_NAMES)}",
            pointer=f"{ptr}/name",
        )
    numbers = []
    for key in ("used", "allowed"):
        number = _counter(obj.get(key), whole=name != "timeout")
        if number is None:
            expected = "a non-negative integer" if name != "timeout" else "a non-negative number"
            raise ContinuationError(f"expected {expected}", pointer=f"{ptr}/{key}")
        numbers.append(obj[key])
    return Limit(name=name, used=numbers[0], allowed=numbers[1])


def _policy(raw: Any, ptr: str) -> PolicyWhy:
    """An entry's `policy`: the condition that made it wait, and that it held or failed."""
    obj = _object(raw, ptr)
    _known(obj, ptr, _POLICY_KEYS)
    if obj.get("kind", "when") != "when":
        raise ContinuationError("expected kind 'when'", pointer=f"{ptr}/kind")
    outcome = obj.get("outcome")
    if outcome not in ("held", "error"):
        raise ContinuationError("expected 'held' or 'error'", pointer=f"{ptr}/outcome")
    error = _opt_str(obj, "error", ptr)
    if (outcome == "error") != (error is not None):
        raise ContinuationError(
            "an `error` outcome needs the error, and only it has one", pointer=f"{ptr}/error"
        )
    return PolicyWhy(when=_str(obj, "when", ptr), outcome=outcome, error=error)


def _expires_at(raw: Any, ptr: str) -> float:
    """An entry's `expires_at`: a finite non-negative number of seconds since the epoch."""
    number = _counter(raw, whole=False)
    if number is None:
        raise ContinuationError("expected seconds since the epoch (a number)", pointer=ptr)
    return float(number)


def _approvers(raw: Any, ptr: str) -> tuple[str, ...]:
    """An entry's `approvers`: distinct non-empty names."""
    if (
        type(raw) is not list
        or not raw
        or any(type(name) is not str or not name for name in raw)
        or len(set(raw)) != len(raw)
    ):
        raise ContinuationError("expected a list of distinct role or user names", pointer=ptr)
    _plain(raw, ptr)
    return tuple(raw)


def decision_from_data(raw: Any, ptr: str) -> Decision:
    """A decision from its tagged JSON object."""
    obj = _object(raw, ptr)
    kind = obj.get("kind")
    fp = _str(obj, "fingerprint", ptr)
    extra = {
        "approve": {"scope", "where"},
        "edit": {"arguments"},
        "reject": {"reason", "scope", "where"},
        "answer": {"result"},
        "extend": {"turns"},
    }.get(kind if isinstance(kind, str) else "", set())
    _known(obj, ptr, {"kind", "fingerprint"} | extra)
    if kind == "approve":
        scope, where = _scope(obj, ptr)
        return Approve(fingerprint=fp, scope=scope, where=where)
    if kind == "stop":
        return Stop(fingerprint=fp)
    if kind == "resume":
        return Resume(fingerprint=fp)
    if kind == "edit":
        arguments = obj.get("arguments")
        if not isinstance(arguments, dict):
            raise ContinuationError("expected an object", pointer=f"{ptr}/arguments")
        _plain(arguments, f"{ptr}/arguments")
        return Edit(fingerprint=fp, arguments=arguments)
    if kind == "reject":
        reason = _str(obj, "reason", ptr)
        _plain(reason, f"{ptr}/reason")
        scope, where = _scope(obj, ptr)
        return Reject(fingerprint=fp, reason=reason, scope=scope, where=where)
    if kind == "answer":
        if "result" not in obj:
            raise ContinuationError("missing field", pointer=f"{ptr}/result")
        _plain(obj["result"], f"{ptr}/result")
        return Answer(fingerprint=fp, result=obj["result"])
    if kind == "extend":
        turns = obj.get("turns")
        if not isinstance(turns, int) or isinstance(turns, bool) or turns < 1:
            raise ContinuationError("expected a positive integer", pointer=f"{ptr}/turns")
        return Extend(fingerprint=fp, turns=turns)
    raise ContinuationError(
        f"unknown decision kind {kind!r}; expected one of {', '.join(DECISION_KINDS)}",
        pointer=f"{ptr}/kind",
    )


def _messages(raw: Any, ptr: str) -> tuple[list[dict[str, Any]], list[str] | None]:
    """The messages, checked, and the ids of all their tool calls in order (None when the
    messages took the slow way: the ledger then collects them itself)."""
    if type(raw) is not list:
        raise ContinuationError("expected a list of messages", pointer=ptr)
    call_ids = _well_formed_call_ids(raw) if len(raw) >= _MANY else None
    if call_ids is None:  # few messages, or something is off: find it, with its pointer
        _check_messages(raw, ptr)
    return raw, call_ids


_MANY = 32
"""Below this many messages the plain loop is as fast as the whole-list passes."""


_ROLE = itemgetter("role")
_ID = itemgetter("id")
_FUNCTION = itemgetter("function")
_NAME = itemgetter("name")
_ARGUMENTS = itemgetter("arguments")
_TOOL_CALLS = repeat("tool_calls")
_STR = frozenset({str})
_LIST_OR_NONE = frozenset({list, type(None)})


def _well_formed_call_ids(raw: list[Any]) -> list[str] | None:
    """The ids of every tool call in `raw` when every message surely passes
    `_check_messages` and no call id repeats anywhere, else None. A few whole-list passes
    in C (`map`, `itemgetter`, `set`) instead of a Python loop over every message: a
    missing key is a KeyError, a list or a string where an object belongs a TypeError."""
    try:
        if not _ROLES.issuperset(map(_ROLE, raw)):
            return None
        lists = list(map(dict.get, raw, _TOOL_CALLS))
        if not _LIST_OR_NONE.issuperset(map(type, lists)):
            return None
        calls = list(chain.from_iterable(filter(None, lists)))
        ids = list(map(_ID, calls))
        functions = list(map(_FUNCTION, calls))
        if not (
            _STR.issuperset(map(type, ids))
            and _STR.issuperset(map(type, map(_NAME, functions)))
            and _STR.issuperset(map(type, map(_ARGUMENTS, functions)))
        ):
            return None
    except (KeyError, TypeError):  # also an unhashable role
        return None
    return ids if len(set(ids)) == len(ids) else None


def _check_messages(raw: list[Any], ptr: str) -> None:
    roles = _ROLES
    for i, message in enumerate(raw):  # a hot loop: plain `type() is` checks on purpose
        role = message.get("role") if type(message) is dict else None
        if type(role) is not str or role not in roles:
            raise ContinuationError(
                "expected a message object with a role (user, assistant, tool)",
                pointer=f"{ptr}/{i}",
            )
        calls = message.get("tool_calls")
        if calls is not None:
            _tool_calls(calls, f"{ptr}/{i}/tool_calls")


def _tool_calls(calls: Any, ptr: str) -> None:
    ids: set[str] = set()
    for call in calls if type(calls) is list else (None,):
        function = call.get("function") if type(call) is dict else None
        call_id = call.get("id") if type(call) is dict else None
        if (
            type(call_id) is not str
            or type(function) is not dict
            or type(function.get("name")) is not str
            or type(function.get("arguments")) is not str
        ):
            raise ContinuationError(
                "expected tool calls as {id, type, function: {name, arguments}}", pointer=ptr
            )
        ids.add(call_id)
    if len(ids) != len(calls):
        raise ContinuationError("two tool calls of one message share an id", pointer=ptr)


def _plain(value: Any, ptr: str, below: str = "") -> None:
    """Refuse a value a call runs with or a person supplied unless it is plain JSON data:
    NaN, Infinity, a lone surrogate or absurd nesting would fail later, half-way through
    (`ptr + below`: where the value is; the two are joined only for a fault)."""
    problem = json_problem(value)
    if problem is not None:
        where, what = problem
        raise ContinuationError(
            f"the value {what}", pointer=ptr + below + where, suggestion="was the document edited?"
        )


_DECISION_KIND_SET = frozenset(DECISION_KINDS)


def _decision_kinds(kinds: list[Any]) -> bool:
    """True when every item of `kinds` is a decision kind."""
    return _all_in(_DECISION_KIND_SET, kinds)


def _object(raw: Any, ptr: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ContinuationError(f"expected an object, found {type(raw).__name__}", pointer=ptr)
    return raw


def _known(obj: dict[str, Any], ptr: str, allowed: frozenset[str] | set[str]) -> None:
    if allowed.issuperset(obj):
        return
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ContinuationError(
            f"unknown field {unknown[0]!r}; expected only {', '.join(sorted(allowed))}",
            pointer=f"{ptr}/{_escape(unknown[0])}",
        )


def _str(obj: dict[str, Any], key: str, ptr: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ContinuationError("expected a string", pointer=f"{ptr}/{key}")
    return value


def _opt_str(obj: dict[str, Any], key: str, ptr: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ContinuationError("expected a string", pointer=f"{ptr}/{key}")
    return value


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
