"""Approval conditions (`approval.when`, CEL): located diagnostics at `callcc validate`, calls
that wait only when the condition holds, fail-closed evaluation errors, and the events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import loop_tools
import pytest
from builders import agent, call, calls, make_spec, python_tool, run, runtime, say, suspended

from engine.continuation import Continuation
from engine.errors import ContinuationError
from engine.events import PolicyAllowed, RunEvent
from engine.render.text import inspect_text
from engine.spec import validate_file
from engine.spec.model import Approval

HEAD = """spec_version: 1
models:
  m: {kind: scripted, script: s.yaml}
tools:
  pay:
    kind: python
    ref: tools_mod:pay
    description: pay
    parameters:
      type: object
      properties:
        amount: {type: number}
        currency: {type: string}
    approval:
"""
TAIL = """agents:
  a: {model: m, instructions: hi, tools: [pay]}
entrypoint: a
"""


def diagnose(tmp_path: Path, approval: str) -> list[Any]:
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + approval + TAIL, encoding="utf-8")
    return [d for d in validate_file(path, env={}) if d.severity == "error"]


# each: the approval block (line 15 is its first line), code, line, col, suggestion
CASES = [
    ("      when: args.amuont > 1000\n", "unknown-field", 15, 18, "did you mean 'amount'?"),
    ("      when: 'argz.amount > 1'\n", "unknown-variable", 15, 14, "did you mean 'args'?"),
    (
        '      when: "args.amount > 1 && agnet.name == \\"x\\""\n',
        "unknown-variable",
        15,
        33,
        "did you mean 'agent'?",
    ),
    (
        "      when: |\n        args.amount > 1 &&\n          run.turnz > 2\n",
        "unknown-field",
        17,
        15,
        "did you mean 'turns'?",
    ),
    ("      when: >\n        args.amount >\n", "condition-syntax", 16, 22, None),
    (
        "      when: 'args[''curency''] == \"EUR\"'\n",
        "unknown-field",
        15,
        21,
        "did you mean 'currency'?",
    ),
    ("      when: sise(args.currency) > 3\n", "unknown-variable", 15, 13, "did you mean 'size'?"),
    # behind an anchor: the start mark is at `&big`, the text after it
    ("      when: &big 'args.amuont > 1'\n", "unknown-field", 15, 24, "did you mean 'amount'?"),
    ("      when: &big |\n        args.amuont > 1\n", "unknown-field", 16, 14, None),
    ("      when: args.amount + 1\n", "condition-type", 15, 13, None),
    (  # cel-cpp's nesting limit, in words a person can act on
        "      when: " + " + ".join(["args.amount"] * 60) + " > 1\n",
        "condition-too-deep",
        15,
        13,
        "split it into fewer terms, use `in [...]` for a list of values, or move the logic "
        "into the tool",
    ),
]


@pytest.mark.parametrize(("block", "code", "line", "col", "hint"), CASES)
def test_each_problem_sits_at_its_line_and_column_inside_the_expression(
    tmp_path: Path, block: str, code: str, line: int, col: int, hint: str | None
) -> None:
    [found] = diagnose(tmp_path, block)
    assert (found.code, found.line, found.col) == (code, line, col), found
    assert found.pointer == "/tools/pay/approval/when"
    if hint is not None:
        assert found.suggestion == hint


def test_two_problems_of_one_expression_are_both_reported(tmp_path: Path) -> None:
    found = diagnose(tmp_path, "      when: args.amuont > 1 || argz.currency == 'x'\n")
    assert [(d.code, d.col) for d in found] == [("unknown-field", 18), ("unknown-variable", 32)]


def test_a_condition_that_is_not_a_string_points_at_when(tmp_path: Path) -> None:
    [found] = diagnose(tmp_path, "      when: 5\n")
    assert (found.code, found.pointer, found.line) == ("wrong-type", "/tools/pay/approval/when", 15)


def test_required_false_beside_a_condition_is_refused(tmp_path: Path) -> None:
    [found] = diagnose(tmp_path, "      when: args.amount > 1\n      required: false\n")
    assert found.code == "condition-ignored"
    assert found.pointer == "/tools/pay/approval/required"


def test_a_good_condition_is_valid(tmp_path: Path) -> None:
    ok = "      when: 'args.amount > 1000 || args.currency != \"EUR\" || run.turns > 3'\n"
    assert diagnose(tmp_path, ok) == []


def test_resolve_checks_the_arguments_of_inferred_parameters(tmp_path: Path) -> None:
    (tmp_path / "policy_inferred_tools.py").write_text(
        "def pay(to: str, amount: int) -> str:\n    return 'ok'\n", encoding="utf-8"
    )
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(
        "spec_version: 1\nmodels:\n  m: {kind: scripted, script: s.yaml}\ntools:\n  pay:\n"
        "    kind: python\n    ref: policy_inferred_tools:pay\n    description: pay\n"
        "    approval: {when: 'args.amont > 5'}\n" + TAIL,
        encoding="utf-8",
    )
    assert validate_file(path, env={}) == []  # the arguments are not known without importing
    [found] = validate_file(path, resolve=True, env={})
    assert (found.code, found.line, found.col) == ("unknown-field", 9, 28)
    assert found.suggestion == "did you mean 'amount'?"


# -- runs -----------------------------------------------------------------------------------


def transfers(when: str, *turns: dict[str, Any]) -> Any:
    approval = Approval(required=True, when=when, decisions=("approve", "reject"))
    spec = make_spec([agent("payer", "transfer")], [python_tool("transfer", approval=approval)])
    return runtime(spec, {"payer": list(turns)})


def test_a_condition_that_does_not_hold_runs_the_call_and_says_so_in_an_event() -> None:
    rt = transfers(
        "args.amount > 1000",
        calls(call("c1", "transfer", {"to": "bob", "amount": 50})),
        say("sent"),
    )
    seen: list[RunEvent] = []
    rt.observers.add(seen.append)
    before = len(loop_tools.CALLS)
    out = run(rt)
    assert out.kind == "finished"
    assert loop_tools.CALLS[before:] == [("transfer", {"to": "bob", "amount": 50})]
    [allowed] = [e for e in seen if isinstance(e, PolicyAllowed)]
    assert (allowed.kind, allowed.tool, allowed.when, allowed.call_id) == (
        "policy_allowed",
        "transfer",
        "args.amount > 1000",
        "c1",
    )
    assert dict(allowed.arguments) == {"to": "bob", "amount": 50}
    assert allowed.path == "payer"


def test_a_condition_that_holds_waits_and_records_why() -> None:
    rt = transfers(
        "args.amount > 1000 && agent.name == 'payer' && run.turns == 1",
        calls(call("c1", "transfer", {"to": "bob", "amount": 5000})),
        say("sent"),
    )
    before = len(loop_tools.CALLS)
    continuation = suspended(run(rt))
    assert loop_tools.CALLS[before:] == []
    [entry] = continuation.pending()
    assert entry.why == "when args.amount > 1000 && agent.name == 'payer' && run.turns == 1 held"
    data = json.loads(continuation.to_json())
    assert data["frames"][0]["pending"][0]["policy"] == {
        "kind": "when",
        "when": "args.amount > 1000 && agent.name == 'payer' && run.turns == 1",
        "outcome": "held",
    }
    assert entry.to_dict()["why"] == entry.why
    assert "why: when args.amount > 1000" in inspect_text(continuation)
    done = rt.resume(continuation.approve("c1"))
    assert done.kind == "finished"
    assert loop_tools.CALLS[before:] == [("transfer", {"to": "bob", "amount": 5000})]


@pytest.mark.parametrize(
    ("when", "error"),
    [
        ("args.memo.startsWith('x')", "no field 'memo' (an optional argument the call left out?)"),
        ("args.to > 5", "'>' does not apply to (string, int64)"),
        ("args.amount", "the condition gave 5, not true or false"),
    ],
)
def test_a_condition_that_cannot_be_evaluated_waits_and_says_why(when: str, error: str) -> None:
    rt = transfers(when, calls(call("c1", "transfer", {"to": "bob", "amount": 5})), say("x"))
    before = len(loop_tools.CALLS)
    continuation = suspended(run(rt))
    assert loop_tools.CALLS[before:] == []
    [entry] = continuation.pending()
    assert entry.policy is not None
    assert (entry.policy.outcome, entry.policy.error) == ("error", error)
    assert entry.why == f"when {when} could not be evaluated ({error}): approval required"


def test_a_document_with_a_bad_policy_is_refused_at_its_pointer() -> None:
    rt = transfers("args.amount > 1", calls(call("c1", "transfer", {"to": "b", "amount": 5})))
    data = json.loads(suspended(run(rt)).to_json())
    data.pop("signature", None)
    data["frames"][0]["pending"][0]["policy"]["outcome"] = "maybe"
    with pytest.raises(ContinuationError) as caught:
        Continuation.from_json(json.dumps(data))
    assert caught.value.pointer == "/frames/0/pending/0/policy/outcome"


def test_the_picture_shows_why() -> None:
    from engine.render import stack_graph, to_dot

    rt = transfers("args.amount > 1", calls(call("c1", "transfer", {"to": "b", "amount": 5})))
    dot = to_dot(stack_graph(suspended(run(rt))))
    assert "why" in dot and "args.amount &gt; 1 held" in dot
