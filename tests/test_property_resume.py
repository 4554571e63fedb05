"""Properties of resume: random decisions and random corruptions never run what nobody approved.

(a) Random decision sequences over a stack waiting on four entries of four reasons — an
    approval, an external result, a pause before a tool, and an approval inside a sub-agent —
    resumed in up to three rounds. Each resume either follows the documented semantics
    (decided calls settle, undecided ones stay pending, all decided means finished) or is
    refused with `ContinuationError` / `DecisionError`; a rejected or undecided call never ran.
(b) Random corruptions of a valid document's JSON (a leaf replaced by a value of another type, a
    key deleted, a list item duplicated, a string changed): `resume(from_json(...))` either
    works or raises `ContinuationError` / `DecisionError`, never another exception, and never
    runs a call the document it resumed did not approve. With a key, every corruption is
    refused at `/signature`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import loop_tools
import pytest
from builders import agent, call, calls, gated, make_spec, python_tool, say, script, sub_agent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.continuation import Continuation
from engine.errors import ContinuationError, DecisionError
from engine.runtime import Failed, Finished, Runtime, Stopped, Suspended
from engine.spec.model import ExternalTool, SuspendRules

PROPERTY = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


SPEC = make_spec(
    [
        agent(
            "boss",
            "transfer",
            "ask",
            "lookup",
            "clerk",
            suspend=SuspendRules(before_tools=("lookup",)),
        ),
        agent("clerk", "echo"),
    ],
    [
        gated("transfer", "approve", "edit", "reject"),
        ExternalTool(name="ask", description="Ask the auditor."),
        python_tool("lookup"),
        sub_agent("clerk"),
        gated("echo", "approve", "reject"),
    ],
    name="property",
)
TURNS = {
    "boss": [
        calls(
            call("t", "transfer", {"to": "bob", "amount": 5}),
            call("q", "ask", {"question": "is bob a customer?"}),
            call("l", "lookup", {"key": "bob"}),
            call("c", "clerk", {"request": "note it"}),
        ),
        say("Boss done."),
    ],
    "clerk": [calls(call("e", "echo", {"text": "note"})), say("Clerk done.")],
}
LEAVES = {"t": "boss/t", "q": "boss/q", "l": "boss/l", "e": "boss/clerk@c/e"}
TOOL_OF = {"t": "transfer", "q": "ask", "l": "lookup", "e": "echo"}
ORIGINAL_ARGS = {
    "t": {"to": "bob", "amount": 5},
    "q": {"question": "is bob a customer?"},
    "l": {"key": "bob"},
    "e": {"text": "note"},
}
ACCEPTED = (ContinuationError, DecisionError)


def fresh() -> tuple[Runtime, Continuation]:
    rt = Runtime(SPEC, model_override=script(TURNS))
    outcome = rt.run("Pay bob", run_id="prop-1")
    assert isinstance(outcome, Suspended), outcome
    loop_tools.CALLS.clear()
    return rt, outcome.continuation


# -- (a) random decision sequences ---------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
DECISION = st.one_of(
    st.tuples(st.just("approve")),
    st.tuples(
        st.just("edit"),
        st.sampled_from(
            [
                {"to": "carol", "amount": 3},
                {"to": "bob", "amount": "five"},  # violates the tool's parameters
                {"to": "bob"},
                {"text": "edited"},
            ]
        ),
    ),
    st.tuples(st.just("reject"), st.text(max_size=10)),
    st.tuples(st.just("answer"), JSON),
    st.tuples(st.just("extend"), st.integers(min_value=1, max_value=3)),
    st.tuples(st.just("stop")),
    st.tuples(st.just("resume")),
)
IDENT = st.sampled_from(
    [*LEAVES, *LEAVES.values(), "clerk/e", "clerk@c/e", "boss/clerk/e", "c", "nope", "boss"]
)
ROUND = st.lists(st.tuples(IDENT, DECISION), max_size=6)


def decide(doc: Continuation, ident: str, decision: tuple[Any, ...]) -> Continuation:
    kind, *rest = decision
    if kind == "approve":
        return doc.approve(ident)
    if kind == "edit":
        return doc.edit(ident, rest[0])
    if kind == "reject":
        return doc.reject(ident, rest[0])
    if kind == "answer":
        return doc.answer(ident, rest[0])
    if kind == "extend":
        return doc.extend(ident, rest[0])
    if kind == "stop":
        return doc.stop(ident)
    return doc.resume(ident)


def leaf_of(path: str) -> str:
    return next(k for k, v in LEAVES.items() if v == path)


@PROPERTY
@given(rounds=st.lists(ROUND, min_size=1, max_size=3))
def test_random_decisions_run_exactly_the_approved_calls(
    rounds: list[list[tuple[str, tuple[Any, ...]]]],
) -> None:
    loop_tools.CALLS.clear()
    rt, doc = fresh()
    may_run: dict[str, list[dict[str, Any]]] = {}  # tool -> arguments it may run with
    for decisions in rounds:
        for ident, decision in decisions:
            try:
                doc = decide(doc, ident, decision)
            except DecisionError:
                continue  # not pending, not allowed, or already decided: refused, recorded nothing
        decided = {leaf_of(p.path): p for p in doc.pending() if p.decision is not None}
        undecided = {leaf_of(p.path) for p in doc.pending() if p.decision is None}
        before = list(loop_tools.CALLS)
        try:
            outcome = rt.resume(doc)
        except ACCEPTED:
            assert before == loop_tools.CALLS  # a refused document runs nothing
            return
        ran = loop_tools.CALLS[len(before) :]
        for leaf, view in decided.items():
            entry = doc.find(view.path)[1]
            assert entry.decision is not None
            if entry.decision.kind in ("approve", "resume"):
                may_run.setdefault(TOOL_OF[leaf], []).append(ORIGINAL_ARGS[leaf])
            elif entry.decision.kind == "edit":
                may_run.setdefault(TOOL_OF[leaf], []).append(entry.decision.arguments)
        for name, arguments in ran:
            assert name in may_run, f"{name} ran without approval: {loop_tools.CALLS}"
            assert arguments in may_run.pop(name)  # at most once, with the decided arguments
        stopped = any(d.decision == "stop" for d in decided.values())
        if isinstance(outcome, Finished | Stopped):
            assert not undecided or stopped
            return
        assert not isinstance(outcome, Failed), outcome.reason
        doc = outcome.continuation
        still = {leaf_of(p.path) for p in doc.pending()}
        assert undecided <= still  # an undecided call is still waiting, and never ran
        assert still <= undecided | {"e"}  # the clerk's call may wait again only if undecided
        for leaf in still:
            assert all(TOOL_OF[leaf] != name for name, _ in ran)


def test_all_four_entries_approved_or_answered_finish() -> None:
    rt, doc = fresh()
    assert sorted(p.path for p in doc.pending()) == sorted(LEAVES.values())
    doc = doc.approve("t").answer("q", "yes").resume("l").approve("e")

    outcome = rt.resume(doc)

    assert isinstance(outcome, Finished) and outcome.output == "Boss done."
    assert sorted(loop_tools.CALLS) == [
        ("echo", {"text": "note"}),
        ("lookup", {"key": "bob"}),
        ("transfer", {"to": "bob", "amount": 5}),
    ]


# -- (b) random corruptions ----------------------------------------------------------------


def _base_documents() -> list[str]:
    """Valid unsigned documents: undecided, partly decided, and fully decided."""
    _, doc = fresh()
    partly = doc.approve("t").reject("e", "no notes")
    full = doc.edit("t", {"to": "carol", "amount": 3}).answer("q", [1]).reject("l").approve("e")
    return [doc.to_json(), partly.to_json(), full.to_json()]


BASES = _base_documents()
VOCABULARY = [
    *LEAVES,
    "c",
    "boss",
    "clerk",
    "transfer",
    "echo",
    "lookup",
    "ask",
    "approval",
    "external",
    "pause",
    "subagent",
    "turn_limit",
    "error",
    "approve",
    "edit",
    "reject",
    "answer",
    "resume",
    "stop",
    "extend",
    "pending",
    "running",
    "done",
    "rejected",
    "failed",
    "assistant",
    "tool",
    "user",
    "",
]
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(VOCABULARY),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=4,
)


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _places(data: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in the document, iteratively."""
    out: list[tuple[Any, Any]] = []
    stack = [data]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            out.append((node, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return out


def corrupt(draw: Any, data: dict[str, Any]) -> str:
    """Apply one random corruption in place; say what it was."""
    places = _places(data)
    kind = draw(st.sampled_from(["retype", "delete", "duplicate", "string"]))
    if kind == "retype":
        node, key = draw(st.sampled_from(places))
        old = node[key]
        new = draw(ANY_JSON.filter(lambda v: _type(v) != _type(old)))
        node[key] = new
        return f"retype {key!r}: {old!r} -> {new!r}"
    if kind == "delete":
        keyed = [(n, k) for n, k in places if isinstance(n, dict)]
        node, key = draw(st.sampled_from(keyed or [(data, "frames")]))
        del node[key]
        return f"delete {key!r}"
    if kind == "duplicate":
        lists = [n[k] for n, k in places if isinstance(n[k], list) and n[k]]
        if not lists:
            return "nothing to duplicate"
        target = draw(st.sampled_from(lists))
        index = draw(st.integers(0, len(target) - 1))
        target.insert(index, copy.deepcopy(target[index]))
        return f"duplicate item {index}"
    strings = [(n, k) for n, k in places if isinstance(n[k], str)]
    node, key = draw(st.sampled_from(strings))
    old = node[key]
    new = draw((st.sampled_from(VOCABULARY) | st.text(max_size=8)).filter(lambda v: v != old))
    node[key] = new
    return f"string {key!r}: {old!r} -> {new!r}"


def authorized(doc: Continuation) -> list[tuple[str, dict[str, Any]]]:
    """The calls a document approves to run now: approve/resume as asked, edit as edited."""
    out = []
    for view in doc.pending():
        _, entry = doc.find(view.path)
        decision = entry.decision
        if decision is None or entry.tool is None:
            continue
        if decision.kind in ("approve", "resume"):
            out.append((entry.tool, entry.arguments or {}))
        elif decision.kind == "edit":
            out.append((entry.tool, decision.arguments))
    return out


def edited(doc: Continuation) -> list[str]:
    """The tools of the calls a document decides to edit."""
    out = []
    for view in doc.pending():
        _, entry = doc.find(view.path)
        if entry.decision is not None and entry.decision.kind == "edit" and entry.tool:
            out.append(entry.tool)
    return out


@PROPERTY
@given(base=st.sampled_from(BASES), data=st.data())
def test_a_corrupted_document_is_refused_or_runs_only_what_it_approves(
    base: str, data: st.DataObject
) -> None:
    loop_tools.CALLS.clear()
    document = json.loads(base)
    steps = [corrupt(data.draw, document) for _ in range(data.draw(st.integers(1, 3)))]
    text = json.dumps(document)
    note = f"corruptions: {steps}\ndocument: {text}"
    rt = Runtime(SPEC, model_override=script(TURNS))
    # What the *uncorrupted* document approves: a corruption must never add to it. (An edit's
    # arguments are not bound to anything without a key, so an edited call may run with
    # corrupted arguments, but only a call the reviewer chose to edit.)
    approved = authorized(Continuation.from_json(base))
    edited_tools = edited(Continuation.from_json(base))
    try:
        doc = Continuation.from_json(text)
        rt.resume(doc)
    except ACCEPTED:
        assert loop_tools.CALLS == [], note
        return
    for name, arguments in loop_tools.CALLS:
        if (name, arguments) in approved:
            approved.remove((name, arguments))
        elif name in edited_tools:
            edited_tools.remove(name)
        else:
            raise AssertionError(f"{name}({arguments}) ran unapproved\n{note}")


@PROPERTY
@given(base=st.sampled_from(BASES), data=st.data())
def test_every_corruption_of_a_signed_document_is_refused_at_the_signature(
    base: str, data: st.DataObject
) -> None:
    """Fails while a non-ASCII `signature.mac` raises TypeError (see test_integrity.py
    test_BUG_a_signature_mac_with_non_ascii_text_is_a_continuation_error); drop `BUG_` then."""
    key = "property-key-0123456789abcdef"
    rt = Runtime(SPEC, model_override=script(TURNS), secret_key=key)
    signed = Continuation.from_json(base, keys=()).to_dict()
    original = json.loads(
        Continuation(
            run_id=signed["run_id"],
            spec_name=signed["spec"]["name"],
            spec_digest=signed["spec"]["digest"],
            spec_path=signed["spec"].get("path"),
            nonce=signed["nonce"],
            key=key.encode(),
            root=Continuation.from_json(base).root,
        ).to_json()
    )
    document = copy.deepcopy(original)
    corrupt(data.draw, document)
    if document == original:
        return
    with pytest.raises(ContinuationError) as caught:
        rt.resume(rt.load(json.dumps(document)))
    assert caught.value.pointer.startswith("/signature"), caught.value
    assert loop_tools.CALLS == []


# -- what the corruption property found, minimized -----------------------------------------
#
# Each starts from the undecided (or partly decided) valid document and changes one or two
# fields; each must be refused with ContinuationError before anything runs. Against the
# engine of 6b4cc67 these raised KeyError, ValueError, TypeError and JSONDecodeError, or ran
# an unapproved call.


def _resume_edited(base: str, change: Any) -> tuple[Runtime, Any]:
    data = json.loads(base)
    change(data)
    rt = Runtime(SPEC, model_override=script(TURNS))
    return rt, rt.resume(Continuation.from_json(json.dumps(data)))


def test_a_call_marked_running_without_its_pending_entry_is_refused() -> None:
    """engine/tooling.py run_calls: an in-flight call whose ledger says `running` and that has
    no pending entry is executed, so deleting the clerk's approval entry and writing `running`
    runs `echo` nobody approved. No valid document holds `running` (statuses at suspension are
    pending, done, rejected, failed)."""

    def change(d: dict[str, Any]) -> None:
        del d["frames"][1]["pending"]
        d["frames"][1]["ledger"]["e"] = "running"

    with pytest.raises(ContinuationError):
        _resume_edited(BASES[0], change)
    assert loop_tools.CALLS == []


def test_a_pending_call_without_its_entry_is_refused() -> None:
    """engine/loop.py settle: `frame.results.pop(call["id"])` raises KeyError when an in-flight
    call has neither a result nor a pending entry (the `pending` list was deleted)."""

    def change(d: dict[str, Any]) -> None:
        del d["frames"][1]["pending"]

    with pytest.raises(ContinuationError):
        _resume_edited(BASES[0], change)
    assert loop_tools.CALLS == []


def test_a_duplicated_tool_call_id_is_refused() -> None:
    """engine/tooling.py run_calls: the same call id twice in the in-flight message makes
    `frame.pending.remove(entry)` run twice (ValueError), leaving `_child` coroutines never
    awaited; with an approved entry the KeyError of settle follows instead."""

    def change(d: dict[str, Any]) -> None:
        tool_calls = d["frames"][0]["messages"][1]["tool_calls"]
        tool_calls.insert(0, dict(tool_calls[0]))

    with pytest.raises(ContinuationError):
        _resume_edited(BASES[1], change)
    assert loop_tools.CALLS == []


def test_a_duplicated_pending_entry_is_refused() -> None:
    """engine/runtime.py check: two pending entries with one id are accepted; the approved call
    runs, its twin stays pending (approved) beside the result, and the next resume of that
    continuation is refused ("is pending and has a result"): the run is stuck."""

    def change(d: dict[str, Any]) -> None:
        pending = d["frames"][0]["pending"]
        pending.insert(0, copy.deepcopy(pending[0]))

    with pytest.raises(ContinuationError):
        _resume_edited(BASES[1], change)
    assert loop_tools.CALLS == []


def test_a_message_role_that_is_a_list_is_refused() -> None:
    """engine/_codec.py _messages: `message.get("role") not in _ROLES` hashes the role, so a
    list or object role raises TypeError instead of ContinuationError."""

    def change(d: dict[str, Any]) -> None:
        d["frames"][0]["messages"][0]["role"] = []

    with pytest.raises(ContinuationError) as caught:
        _resume_edited(BASES[0], change)
    assert caught.value.pointer == "/frames/0/messages/0"


def test_a_running_call_with_arguments_that_are_not_json_is_refused() -> None:
    """engine/tooling.py run_calls: `json.loads(text)` of a `running` call's arguments is not
    guarded (classify checked them once, but the document is input now)."""

    def change(d: dict[str, Any]) -> None:
        del d["frames"][1]["pending"]
        d["frames"][1]["ledger"]["e"] = "running"
        d["frames"][1]["messages"][1]["tool_calls"][0]["function"]["arguments"] = "{not json"

    with pytest.raises(ContinuationError):
        _resume_edited(BASES[0], change)
    assert loop_tools.CALLS == []
