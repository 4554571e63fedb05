"""The continuation document, version 2: round trips, malformed input, tampering, size, schema."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import loop_tools
import pytest
from builders import (
    ROOT,
    agent,
    call,
    calls,
    check_document,
    continuation_validator,
    finished,
    gated,
    make_spec,
    python_tool,
    run,
    runtime,
    say,
    sub_agent,
    suspended,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.continuation import SUPPORTED_VERSIONS, Continuation
from engine.errors import ContinuationError, SpecChangedError
from engine.frames import Frame
from engine.runtime import Runtime
from engine.spec import load_spec
from engine.spec.model import ExternalTool, Limits, SuspendRules

FIXTURES = ROOT / "tests" / "fixtures" / "continuation"


# A root agent that delegates to a sub-agent, which runs echo and waits on a transfer.
NESTED = make_spec(
    [agent("boss", "clerk"), agent("clerk", "echo", "transfer")],
    [sub_agent("clerk"), python_tool("echo"), gated("transfer")],
    name="nested",
)
NESTED_TURNS = {
    "boss": [calls(call("b1", "clerk", {"request": "pay bob"})), say("Boss done.")],
    "clerk": [
        calls(
            call("c1", "echo", {"text": "note"}), call("c2", "transfer", {"to": "bob", "amount": 5})
        ),
        say("Clerk done."),
    ],
}


def nested() -> tuple[Runtime, Continuation]:
    rt = runtime(NESTED, NESTED_TURNS)
    continuation = suspended(run(rt, "pay bob", run_id="doc-1"))
    loop_tools.CALLS.clear()  # echo ran before the suspension; count only what runs later
    return rt, continuation


def edited(continuation: Continuation, change: Callable[[dict[str, Any]], None]) -> Continuation:
    """The document edited as JSON by hand, then loaded again."""
    data = json.loads(continuation.to_json())
    change(data)
    return Continuation.from_json(json.dumps(data))


# -- round trips ---------------------------------------------------------------------------

MESSAGE_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=80, deadline=None)
@given(
    texts=st.lists(MESSAGE_TEXT, min_size=1, max_size=6),
    arguments=st.dictionaries(st.text(max_size=8), st.integers() | MESSAGE_TEXT, max_size=3),
    run_id=st.text(min_size=1, max_size=12),
)
def test_a_document_survives_a_json_round_trip_unchanged(
    texts: list[str], arguments: dict[str, Any], run_id: str
) -> None:
    child = Frame(agent="clerk", messages=[{"role": "user", "content": t} for t in texts])
    child.ledger = {"x": "pending"}
    from engine.frames import Pending

    child.pending = [
        Pending.for_call(
            id="x", reason="approval", tool="transfer", arguments=arguments, decisions=("approve",)
        )
    ]
    root = Frame(
        agent="boss",
        messages=[
            {"role": "user", "content": texts[0]},
            {"role": "assistant", "content": texts[-1], "tool_calls": []},
        ],
        turns=len(texts),
        elapsed=0.25,
    )
    root.pending = [
        Pending.for_call(
            id="b", reason="subagent", tool="clerk", arguments={"request": texts[0]}, decisions=()
        )
    ]
    root.pending[0].child = child
    original = Continuation(run_id=run_id, spec_name="s", spec_digest="sha256:x", root=root)

    again = Continuation.from_json(original.to_json())

    assert again == original
    assert again.to_json() == original.to_json()
    assert Continuation.from_json(original.to_json(indent=2)) == original
    check_document(original.approve("x"))


# -- malformed documents -------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        target: Any = data
        for part in parents:
            target = target[int(part) if isinstance(target, list) else part]
        target[int(last) if isinstance(target, list) else last] = value

    return change


@pytest.mark.parametrize(
    ("change", "pointer", "message"),
    [
        (_set("/run_id", 7), "/run_id", "expected a non-empty string"),
        (_set("/spec", "nested"), "/spec", "expected {name: string"),
        (_set("/frames", {}), "/frames", "expected a non-empty list of frames"),
        (_set("/frames/0/agent", None), "/frames/0/agent", "expected a string"),
        (_set("/frames/1/messages", "hi"), "/frames/1/messages", "expected a list of messages"),
        (_set("/frames/1/messages/0", {"content": "x"}), "/frames/1/messages/0", "with a role"),
        (_set("/frames/1/counters/turns", -1), "/frames/1/counters/turns", "non-negative integer"),
        (
            _set("/frames/1/counters/turns", True),
            "/frames/1/counters/turns",
            "non-negative integer",
        ),
        (_set("/frames/1/counters/elapsed", "1s"), "/frames/1/counters/elapsed", "non-negative"),
        (_set("/frames/1/ledger/c2", "paused"), "/frames/1/ledger/c2", "unknown call status"),
        (_set("/frames/1/results/c1", 3), "/frames/1/results/c1", "expected a string"),
        (
            _set("/frames/1/pending/0/reason", "bored"),
            "/frames/1/pending/0/reason",
            "unknown reason",
        ),
        (_set("/frames/1/pending/0/decisions", ["yes"]), "/frames/1/pending/0/decisions", "kinds"),
        (_set("/frames/1/pending/0/arguments", []), "/frames/1/pending/0/arguments", "an object"),
        (_set("/frames/0/pending/0/child", 5), "/frames/0/pending/0/child", "out of range 1..1"),
        (_set("/frames/0/pending/0/child", 0), "/frames/0/pending/0/child", "out of range"),
        (_set("/frames/1/extra", 1), "/frames/1/extra", "unknown field 'extra'"),
        (_set("/surprise", 1), "/surprise", "unknown field 'surprise'"),
        (
            _set("/frames/1/pending/0/decision", {"kind": "maybe", "fingerprint": "f"}),
            "/frames/1/pending/0/decision/kind",
            "unknown decision kind 'maybe'",
        ),
        (
            _set(
                "/frames/1/pending/0/decision", {"kind": "extend", "fingerprint": "f", "turns": 0}
            ),
            "/frames/1/pending/0/decision/turns",
            "positive integer",
        ),
    ],
)
def test_a_malformed_document_is_refused_with_the_pointer_of_the_fault(
    change: Callable[[dict[str, Any]], None], pointer: str, message: str
) -> None:
    _, continuation = nested()
    data = json.loads(continuation.to_json())
    change(data)

    with pytest.raises(ContinuationError) as caught:
        Continuation.from_json(json.dumps(data))

    assert caught.value.pointer == pointer
    assert message in str(caught.value)


def test_truncated_json_is_refused_as_not_valid_json() -> None:
    _, continuation = nested()
    text = continuation.to_json()

    with pytest.raises(ContinuationError, match=r"not valid JSON: .* line 1 column \d+.*truncated"):
        Continuation.from_json(text[: len(text) // 2])


@pytest.mark.parametrize(
    ("version", "said"),
    [
        (99, "unsupported continuation version 99"),
        (3, "unsupported continuation version 3"),
        ("2", "unsupported continuation version '2'"),
        (None, "the continuation has no version"),
    ],
)
def test_an_unknown_version_is_refused_naming_the_supported_versions(
    version: Any, said: str
) -> None:
    _, continuation = nested()

    def change(data: dict[str, Any]) -> None:
        if version is None:
            del data["version"]
        else:
            data["version"] = version

    with pytest.raises(ContinuationError) as caught:
        edited(continuation, change)

    assert caught.value.pointer == "/version"
    assert f"{said}; this callcc reads versions 1, 2 (an integer)" in str(caught.value)
    assert SUPPORTED_VERSIONS == (1, 2)


def test_a_frame_referenced_by_two_entries_is_refused() -> None:
    rt = runtime(
        make_spec(
            [agent("root", "left", "right"), agent("left", "transfer"), agent("right", "transfer")],
            [sub_agent("left"), sub_agent("right"), gated("transfer")],
        ),
        {
            "root": [
                calls(call("r1", "left", {"request": "a"}), call("r2", "right", {"request": "b"}))
            ],
            "left": [calls(call("l1", "transfer", {"to": "bob", "amount": 1}))],
            "right": [calls(call("g1", "transfer", {"to": "eve", "amount": 1}))],
        },
    )
    continuation = suspended(run(rt))

    with pytest.raises(ContinuationError) as caught:
        edited(continuation, _set("/frames/0/pending/1/child", 1))

    assert caught.value.pointer == "/frames/0/pending/1/child"
    assert "frame 1 is the child of two entries" in str(caught.value)


# -- tampering: refused at resume, before anything runs ------------------------------------


def _tamper_arguments(data: dict[str, Any]) -> None:
    data["frames"][1]["pending"][0]["arguments"]["amount"] = 5000


def _tamper_result(data: dict[str, Any]) -> None:
    data["frames"][1]["results"]["c2"] = '{"ok": true}'


def _tamper_tool(data: dict[str, Any]) -> None:
    data["frames"][1]["pending"][0]["tool"] = "wire_everything"


def _tamper_decision(data: dict[str, Any]) -> None:
    data["frames"][1]["pending"][0]["decision"]["fingerprint"] = "0" * 32


def _tamper_decision_kind(data: dict[str, Any]) -> None:
    data["frames"][1]["pending"][0]["decisions"].append("edit")
    data["frames"][1]["pending"][0]["decision"] = {
        "kind": "edit",
        "fingerprint": data["frames"][1]["pending"][0]["fingerprint"],
        "arguments": {"to": "mallory", "amount": 5},
    }


@pytest.mark.parametrize(
    ("tamper", "pointer", "message"),
    [
        (_tamper_arguments, "/frames/1/pending/0/fingerprint", "its call was modified"),
        (_tamper_result, "/frames/1/pending/0/id", "is pending and has a result"),
        (_tamper_tool, "/frames/1/pending/0/tool", "'wire_everything'"),
        (_tamper_decision, "/frames/1/pending/0/decision/fingerprint", "fingerprint mismatch"),
        # the allowed decisions are part of the fingerprint: widening them is a modification
        (_tamper_decision_kind, "/frames/1/pending/0/fingerprint", "its call was modified"),
    ],
)
def test_a_document_edited_by_hand_is_refused_at_resume_and_nothing_runs(
    tamper: Callable[[dict[str, Any]], None], pointer: str, message: str
) -> None:
    rt, continuation = nested()
    document = edited(continuation.approve("c2"), tamper)

    with pytest.raises(ContinuationError) as caught:
        rt.resume(document)

    assert caught.value.pointer == pointer
    assert message in str(caught.value)
    assert loop_tools.CALLS == []


def test_editing_the_arguments_of_the_pending_call_in_its_message_is_refused() -> None:
    """The assistant message's call arguments are what the model sees it asked for; changing
    them by hand (so the transcript no longer matches the call that runs) must be refused."""
    rt, continuation = nested()

    def rewrite(data: dict[str, Any]) -> None:
        message = data["frames"][1]["messages"][1]
        message["tool_calls"][1]["function"]["arguments"] = '{"to": "bob", "amount": 1}'

    document = edited(continuation.approve("c2"), rewrite)

    with pytest.raises(ContinuationError):
        rt.resume(document)
    assert loop_tools.CALLS == []


# -- the spec it belongs to ----------------------------------------------------------------


def test_a_changed_spec_is_refused_unless_the_caller_allows_it() -> None:
    _, continuation = nested()
    changed = runtime(replace(NESTED, digest="sha256:changed"), NESTED_TURNS)

    with pytest.raises(SpecChangedError) as caught:
        changed.resume(continuation.approve("c2"))

    assert caught.value.pointer == "/spec/digest"
    assert "allow_spec_change=True" in str(caught.value)
    assert loop_tools.CALLS == []
    outcome = finished(changed.resume(continuation.approve("c2"), allow_spec_change=True))
    assert outcome.output == "Boss done."
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]


def test_a_document_of_another_spec_is_refused_even_with_allow_spec_change() -> None:
    _, continuation = nested()
    other = runtime(replace(NESTED, name="other"), NESTED_TURNS)

    with pytest.raises(SpecChangedError, match="belongs to spec 'nested'"):
        other.resume(continuation, allow_spec_change=True)


# -- size ----------------------------------------------------------------------------------


def test_the_document_is_at_most_1_2_times_the_json_of_its_messages() -> None:
    def chatter(who: str, n: int) -> list[dict[str, Any]]:
        return [
            calls(
                call(
                    f"{who}_{i}",
                    "echo",
                    {"text": f"{who} step {i}: checking the ledger entry for invoice {i:04d}"},
                )
            )
            for i in range(n)
        ]

    spec = make_spec(
        [agent("a0", "echo", "a1"), agent("a1", "echo", "a2"), agent("a2", "echo", "transfer")],
        [python_tool("echo"), sub_agent("a1"), sub_agent("a2"), gated("transfer")],
    )
    turns = {
        "a0": [*chatter("a0", 6), calls(call("to_a1", "a1", {"request": "go deeper, please"}))],
        "a1": [*chatter("a1", 6), calls(call("to_a2", "a2", {"request": "go deeper, please"}))],
        "a2": [*chatter("a2", 6), calls(call("pay", "transfer", {"to": "bob", "amount": 5}))],
    }
    continuation = suspended(run(runtime(spec, turns), "Reconcile the invoices of this month."))

    messages = [m for _, frame in continuation.frames() for m in frame.messages]
    assert len(continuation.frames()) == 3
    assert len(messages) >= 40
    messages_json = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
    assert len(continuation.to_json()) <= 1.2 * len(messages_json)


# -- the JSON Schema -----------------------------------------------------------------------


def _every_kind_of_document() -> list[Continuation]:
    """Documents for every reason and every decision kind, nested and not."""
    out: list[Continuation] = []
    _, nest = nested()
    out += [nest, nest.approve("c2"), nest.reject("c2", "no")]
    pay = make_spec([agent("a", "transfer")], [gated("transfer", "approve", "edit", "reject")])
    doc = suspended(
        runtime(pay, {"a": [calls(call("t", "transfer", {"to": "b", "amount": 1}))]}).run("x")
    )
    out += [doc, doc.edit("t", {"to": "c", "amount": 2})]
    ext = make_spec([agent("a", "ask")], [ExternalTool(name="ask", description="ask")])
    doc = suspended(runtime(ext, {"a": [calls(call("q", "ask", {"q": 1}))]}).run("x"))
    out += [doc, doc.answer("q", {"any": ["json", 1, None]}), doc.answer("q", None)]
    limited = make_spec([agent("a", "echo", limits=Limits(max_turns=1))], [python_tool("echo")])
    doc = suspended(runtime(limited, {"a": [calls(call("e", "echo", {"text": "t"}))]}).run("x"))
    out += [doc, doc.extend("limit-1", 2), doc.stop("limit-1")]
    paused = make_spec(
        [agent("a", "echo", suspend=SuspendRules(every_turns=1, before_tools=("echo",)))],
        [python_tool("echo")],
    )
    doc = suspended(runtime(paused, {"a": [calls(call("e", "echo", {"text": "t"}))]}).run("x"))
    out += [doc, doc.resume("e")]
    flaky = make_spec([agent("a", "flaky")], [python_tool("flaky", on_error="suspend")])
    doc = suspended(runtime(flaky, {"a": [calls(call("f", "flaky", {"key": "schema"}))]}).run("x"))
    out += [doc, doc.approve("f")]
    erring = make_spec([agent("a")])
    doc = suspended(
        runtime(erring, {"a": [{"error": {"message": "busy", "transient": True}}]}).run("x")
    )
    out += [doc, doc.resume("error-1")]
    return out


def test_every_kind_of_document_validates_against_the_schema() -> None:
    documents = _every_kind_of_document()
    reasons = {p.reason for d in documents for p in d.pending()}
    decisions = {p.decision for d in documents for p in d.pending()}

    assert reasons == {"approval", "external", "turn_limit", "pause", "error"}
    assert decisions == {None, "approve", "reject", "edit", "answer", "extend", "stop", "resume"}
    for document in documents:
        check_document(document)


def test_the_schema_refuses_what_the_loader_refuses() -> None:
    _, continuation = nested()
    validator = continuation_validator()
    good = json.loads(continuation.to_json())
    for change in (
        _set("/version", 1),  # version 1 has its own schema
        _set("/version", 3),
        _set("/frames/1/pending/0/limit", {"name": "max_turns", "used": 1, "allowed": 1}),
        _set("/frames/1/extra", 1),
        _set("/frames/1/pending/0/decision", {"kind": "approve"}),
        _set("/frames/1/pending/0/decision", {"kind": "edit", "fingerprint": "f"}),
        _set("/frames/0/pending/0/child", 0),
        _set("/frames/1/ledger/c2", "paused"),
    ):
        bad = copy.deepcopy(good)
        change(bad)
        assert not validator.is_valid(bad), bad


# -- frozen fixtures of released versions --------------------------------------------------


def test_the_frozen_v1_hr_fixture_still_loads_resumes_and_finishes() -> None:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    text = (FIXTURES / "v1-hr-approval.json").read_text(encoding="utf-8")
    document = Continuation.from_json(text)
    assert document.spec_digest == spec.digest, (
        "specs/hr_agent.yaml changed since tests/fixtures/continuation/v1-hr-approval.json was "
        "made; regenerate the fixture: Runtime(load_spec('specs/hr_agent.yaml')).run("
        "'Onboard Ada Lovelace as an engineer', run_id='fixture-hr-1') and write "
        "continuation.to_json(indent=2)"
    )
    check_document(document)
    assert document.run_id == "fixture-hr-1"
    assert [p.path for p in document.pending()] == ["hr_agent/account_agent@call_hr_1/call_acc_2"]

    outcome = finished(Runtime(spec).resume(document.approve("call_acc_2")))

    assert outcome.run_id == "fixture-hr-1"
    assert outcome.output == (
        "Ada Lovelace is onboarded: account ada created and authorized, welcome email sent."
    )
