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
    refused at `/signature` (or, holding NaN, as not JSON).
(c) Random hostile model replies from the loopback OpenAI server (malformed tool calls, bodies
    that are no chat completion, text with lone surrogates or NUL, HTTP errors), run and then
    resumed through the CLI with strict UTF-8 streams: never a traceback, exit codes only
    0/1/2/3, a state callcc wrote always resumes (never exit 2), and the gated tool runs only
    when a decision approved it.
(d) The corruptions of (b) resumed through the CLI: exit codes only 0/1/2/3, never a
    traceback, never a call the uncorrupted document did not approve.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import loop_tools
import pytest
from builders import agent, call, calls, gated, make_spec, python_tool, say, script, sub_agent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai_server import OpenAICompatServer

from engine.cli import main
from engine.continuation import Continuation
from engine.errors import ContinuationError, DecisionError
from engine.runtime import Failed, Finished, Runtime, Stopped, Suspended
from engine.spec import load_spec
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


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


POISON: dict[str, Callable[[], Any]] = {
    "NaN": lambda: float("nan"),
    "Infinity": lambda: float("inf"),
    "-Infinity": lambda: float("-inf"),
    "a lone surrogate": lambda: "\ud800",
    "text ending in a lone surrogate": lambda: "bob\udfff",
    "a key with a lone surrogate": lambda: {"k\udc80": 1},
    "150 deep": lambda: _nested(150),
    "300 deep": lambda: _nested(300),
}
"""Values no valid document holds: JSON has no NaN, UTF-8 no lone surrogate, and nesting this
deep overflowed encoders and validators."""


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


def _sensitive(data: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Places where a poisoned value reaches a fingerprint, a decision or a counter: pending
    arguments, decisions and their arguments, counters (a missing counter included)."""
    out: list[tuple[Any, Any]] = []
    frames = data.get("frames")
    for frame in frames if isinstance(frames, list) else []:
        if not isinstance(frame, dict):
            continue
        counters = frame.get("counters")
        if isinstance(counters, dict):
            names = [*counters, *(["extra_seconds"] if "extra_seconds" not in counters else [])]
            out += [(counters, k) for k in names]
        pending = frame.get("pending")
        for entry in pending if isinstance(pending, list) else []:
            if not isinstance(entry, dict):
                continue
            for container in (entry.get("arguments"), entry.get("decision")):
                if isinstance(container, dict):
                    out += [(container, k) for k in container if k not in ("kind", "fingerprint")]
            decision = entry.get("decision")
            edit = decision.get("arguments") if isinstance(decision, dict) else None
            if isinstance(edit, dict):
                out += [(edit, k) for k in edit]
    return out


def corrupt(draw: Any, data: dict[str, Any]) -> str:
    """Apply one random corruption in place; say what it was."""
    places = _places(data)
    kind = draw(st.sampled_from(["retype", "delete", "duplicate", "string", "poison"]))
    if kind == "retype":
        node, key = draw(st.sampled_from(places))
        old = node[key]
        new = draw(ANY_JSON.filter(lambda v: _type(v) != _type(old)))
        node[key] = new
        return f"retype {key!r}: {old!r} -> {new!r}"
    if kind == "poison":
        sensitive = _sensitive(data) if draw(st.booleans()) else []
        node, key = draw(st.sampled_from(sensitive or places))
        old = node.get(key) if isinstance(node, dict) else node[key]
        poison = draw(st.sampled_from(sorted(POISON)))
        node[key] = POISON[poison]()  # made afresh: later corruptions may change it
        return f"poison {key!r}: {old!r} -> {poison}"
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
    try:
        doc = Continuation.from_json(text)
        rt.resume(doc)
    except ACCEPTED:
        assert loop_tools.CALLS == [], note
        return
    assert_ran_only_what_it_approved(base, note)


def assert_ran_only_what_it_approved(base: str, note: str) -> None:
    """Every call in `loop_tools.CALLS` is one the *uncorrupted* document `base` approves: a
    corruption must never add to it. (An edit's arguments are not bound to anything without a
    key, so an edited call may run with corrupted arguments, but only a call the reviewer
    chose to edit.)"""
    approved = authorized(Continuation.from_json(base))
    edited_tools = edited(Continuation.from_json(base))
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
    """NaN is refused where the document is parsed, before its signature is checked."""
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
    error = str(caught.value)
    assert caught.value.pointer.startswith("/signature") or error.startswith("not valid JSON:")
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


# -- (c) random hostile model replies through the CLI --------------------------------------

HOSTILE_SPEC = """\
spec_version: 1
name: hostile
allow_modules: [loop_tools]
models:
  gpt: {kind: openai, model: test-model, base_url: BASE_URL, max_retries: 0, timeout: 10}
tools:
  echo: {kind: python, ref: "loop_tools:echo", description: Say it back.}
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {required: true}
agents:
  clerk:
    description: Echoes and pays.
    model: gpt
    instructions: Echo or pay when asked.
    tools: [echo, transfer]
    limits: {max_turns: 4}
entrypoint: clerk
"""
ARGUMENT_TEXT = st.sampled_from(
    [
        '{"text": "hi"}',
        '{"to": "bob", "amount": 5}',
        '{"to": "bob", "amount": NaN}',
        '{"text": "\\ud800"}',
        '{"text": "nul \\u0000"}',
        '{"text": ',
        "[" * 300 + "]" * 300,
        '{"x": ' * 150 + "1" + "}" * 150,
        "",
    ]
) | st.text(max_size=6)
FUNCTION = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["echo", "transfer", "wire_all", "", None, 3]),
        "arguments": ARGUMENT_TEXT | st.sampled_from([None, {"text": "x"}, [1], 7]),
    }
) | st.sampled_from([None, "echo", []])
TOOL_CALL = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["c1", "c2", "", None, 7]),
        "type": st.sampled_from(["function", "function", "custom", None]),
        "function": FUNCTION,
    }
) | st.sampled_from(["not a call", 3, None])
CONTENT = st.none() | st.text(max_size=8) | st.sampled_from(["a\ud800b", "\udfff", "nul\x00"])
MESSAGE = st.fixed_dictionaries(
    {"role": st.just("assistant"), "content": CONTENT | st.sampled_from([[{"type": "text"}], 4])},
    optional={"tool_calls": st.lists(TOOL_CALL, max_size=3) | st.sampled_from(["echo", {}])},
) | st.sampled_from([None, "text"])
CHOICE = st.fixed_dictionaries(
    {
        "index": st.just(0),
        "message": MESSAGE,
        "finish_reason": st.sampled_from(["stop", "tool_calls", None, "length", 3]),
    }
)
BODY = st.fixed_dictionaries(
    {"choices": st.lists(CHOICE, max_size=1) | st.sampled_from([None, {}, "x"])},
    optional={"usage": st.sampled_from([None, "x", {"prompt_tokens": 1, "extra": {"a": 1}}])},
)
RAW = st.sampled_from(
    [b"<html>502</html>", b"", b"\xff\xfe", b'{"choices": [', b"null", b"1" * 5000]
)
REPLY = st.one_of(
    BODY.map(lambda body: {"body": body}),
    RAW.map(lambda raw: {"raw": raw}),
    st.sampled_from([400, 401, 429, 500]).map(lambda s: {"status": s, "error": "no \ud800"}),
    st.sampled_from(["fine", "a\ud800b"]).map(lambda text: {"text": text}),
)
"""One answer of the model server: any of the shapes a hostile or broken server sends."""
EXIT_CODES = {0, 1, 2, 3}


@pytest.fixture(scope="session")
def hostile_server() -> Iterator[OpenAICompatServer]:
    """One loopback server for every example (each starts with `reset()`)."""
    with OpenAICompatServer() as server:
        yield server


@pytest.fixture(scope="session")
def hostile_spec(hostile_server: OpenAICompatServer, tmp_path_factory: Any) -> Path:
    path = Path(tmp_path_factory.mktemp("hostile")) / "hostile.yaml"
    path.write_text(HOSTILE_SPEC.replace("BASE_URL", hostile_server.base_url), encoding="utf-8")
    return path


def strict() -> io.TextIOWrapper:
    """A stream that encodes like a UTF-8 terminal: a lone surrogate raises."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


@settings(PROPERTY, max_examples=30)  # each example starts the CLI twice (~0.1 s a client)
@given(replies=st.lists(REPLY, min_size=1, max_size=4), output=st.sampled_from(["text", "json"]))
def test_hostile_replies_never_escape_as_tracebacks_and_never_run_the_gated_tool(
    hostile_server: OpenAICompatServer,
    hostile_spec: Path,
    replies: list[dict[str, Any]],
    output: str,
) -> None:
    hostile_server.reset()
    loop_tools.CALLS.clear()
    for reply in replies:
        hostile_server.push(**reply)
    state = hostile_spec.parent / "state.json"
    state.unlink(missing_ok=True)
    flags = ["--state", str(state), "--format", output, "-q"]
    err = strict()

    code = main(["run", str(hostile_spec), "-p", "go \ud800", *flags], strict(), err)

    assert code in EXIT_CODES
    assert all(name != "transfer" for name, _ in loop_tools.CALLS), "ran without approval"
    if code != 3:
        return
    waiting = Continuation.from_json(state.read_text(encoding="utf-8"))
    approved = [(p.tool, p.arguments) for p in waiting.pending() if "approve" in p.decisions]
    decide = ["--approve", "all"]
    for entry in waiting.pending():
        if "resume" in entry.decisions:
            decide += ["--continue", entry.id]
    before = list(loop_tools.CALLS)

    again = main(["resume", str(state), *decide, *flags], strict(), err)

    assert again in EXIT_CODES - {2}, err.buffer.getvalue()  # type: ignore[attr-defined]
    for name, arguments in loop_tools.CALLS[len(before) :]:
        if name == "transfer":
            approved.remove(("transfer", arguments))  # ValueError: ran without approval


# -- (d) random corruptions through the CLI --------------------------------------------------


@pytest.fixture(scope="session")
def property_yaml(tmp_path_factory: Any) -> tuple[Path, str]:
    """SPEC as a YAML file for the CLI (with TURNS as its script), and its digest."""
    folder = Path(tmp_path_factory.mktemp("property"))
    (folder / "turns.yaml").write_text(
        json.dumps({"script_version": 1, "agents": TURNS}), encoding="utf-8"
    )
    path = folder / "property.yaml"
    path.write_text(PROPERTY_YAML, encoding="utf-8")
    return path, load_spec(path).digest


PROPERTY_YAML = """\
spec_version: 1
name: property
allow_modules: [loop_tools]
models:
  scripted: {kind: scripted, script: turns.yaml}
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {required: true, decisions: [approve, edit, reject]}
  ask: {kind: external, description: Ask the auditor.}
  lookup: {kind: python, ref: "loop_tools:lookup", description: Look up.}
  clerk: {kind: agent, agent: clerk, description: delegate to clerk}
  echo:
    kind: python
    ref: loop_tools:echo
    description: Say it back.
    approval: {required: true, decisions: [approve, reject]}
agents:
  boss:
    description: The boss.
    model: scripted
    instructions: You are boss.
    tools: [transfer, ask, lookup, clerk]
    suspend: {before_tools: [lookup]}
  clerk:
    description: The clerk.
    model: scripted
    instructions: You are clerk.
    tools: [echo]
entrypoint: boss
"""


@settings(PROPERTY, max_examples=60)
@given(base=st.sampled_from(BASES), data=st.data())
def test_a_corrupted_document_resumed_by_the_cli_is_exit_0_to_3_and_runs_only_what_it_approves(
    property_yaml: tuple[Path, str], base: str, data: st.DataObject
) -> None:
    loop_tools.CALLS.clear()
    spec, digest = property_yaml
    original = json.loads(base)
    original["spec"] = {"name": "property", "digest": digest, "path": str(spec)}
    base = json.dumps(original)
    document = json.loads(base)
    steps = [corrupt(data.draw, document) for _ in range(data.draw(st.integers(1, 3)))]
    text = json.dumps(document)
    note = f"corruptions: {steps}\ndocument: {text}"
    state = spec.parent / "state.json"
    state.write_text(text, encoding="utf-8")
    err = strict()

    code = main(["resume", str(state), "--spec", str(spec), "-q"], strict(), err)

    assert code in EXIT_CODES, note
    if code == 2:
        assert loop_tools.CALLS == [], note
    assert_ran_only_what_it_approved(base, note)
