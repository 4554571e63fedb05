"""`Continuation.decide_many`: a batch of decisions is the document the same decisions make one
by one, in every order; one bad item refuses the batch whole, naming it; and deciding K
entries (a batch, `approve_all`, `--approve all`, or one by one) never rescans the stack per
decision, which the tests observe by counting, never by timing."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from io import StringIO
from pathlib import Path
from typing import Any

import loop_tools
import pytest
from builders import (
    agent,
    call,
    calls,
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

import engine.continuation
import engine.decisions
from engine import Continuation, Decide
from engine.cli import main
from engine.errors import DecisionError
from engine.spec.model import ExternalTool, Limits, SuspendRules

# One stack waiting on five entries of four reasons at three depths: an approval, an external
# result and a pause before a tool in the root; a turn limit in one sub-agent; an approval in
# another whose call id (`t`) repeats the root's, so a bare `t` is ambiguous.
STACK = make_spec(
    [
        agent(
            "boss",
            "transfer",
            "ask",
            "lookup",
            "clerk",
            "auditor",
            suspend=SuspendRules(before_tools=("lookup",)),
        ),
        agent("clerk", "echo", limits=Limits(max_turns=1)),
        agent("auditor", "transfer"),
    ],
    [
        gated("transfer", "approve", "edit", "reject"),
        ExternalTool(name="ask", description="Ask a person."),
        python_tool("lookup"),
        python_tool("echo"),
        sub_agent("clerk"),
        sub_agent("auditor"),
    ],
)
STACK_TURNS = {
    "boss": [
        calls(
            call("t", "transfer", {"to": "bob", "amount": 5}),
            call("q", "ask", {"question": "ok?"}),
            call("l", "lookup", {"key": "k"}),
            call("c", "clerk", {"request": "echo"}),
            call("a", "auditor", {"request": "audit"}),
        ),
        say("All done."),
    ],
    "clerk": [calls(call("e", "echo", {"text": "hi"})), say("echoed")],
    "auditor": [calls(call("t", "transfer", {"to": "eve", "amount": 9})), say("audited")],
}
PATHS = {
    "t": "boss/t",
    "q": "boss/q",
    "l": "boss/l",
    "limit": "boss/clerk@c/limit-1",
    "at": "boss/auditor@a/t",
}
NAMES = {  # other ways to name each entry, as the one-by-one methods accept them
    "t": ["boss/t"],
    "q": ["boss/q", "q"],
    "l": ["l"],
    "limit": ["limit-1", "clerk/limit-1", "boss/clerk/limit-1"],
    "at": ["auditor/t", "boss/auditor@a/t"],
}
CHOICES: dict[str, list[Decide | Callable[[str], Decide]]] = {  # valid and invalid ones
    "t": [
        Decide.approve,
        lambda i: Decide.edit(i, {"to": "carol", "amount": 3}),
        lambda i: Decide.reject(i, "no"),
        Decide.stop,  # not allowed for an approval
    ],
    "q": [lambda i: Decide.answer(i, {"ok": [1, None]}), Decide.reject, Decide.approve],
    "l": [Decide.resume, Decide.reject, lambda i: Decide.answer(i, float("nan"))],
    "limit": [lambda i: Decide.extend(i, 2), Decide.stop, lambda i: Decide.extend(i, 0)],
    "at": [Decide.approve, lambda i: Decide.reject(i, "not eve")],
}


@cache
def waiting() -> Continuation:
    document = suspended(run(runtime(STACK, STACK_TURNS), "Pay everyone", run_id="many-1"))
    assert [p.path for p in document.pending()] == list(PATHS.values())
    return document


def one_by_one(document: Continuation, items: list[Decide]) -> Continuation:
    """The same decisions through the one-by-one methods."""
    for item in items:
        method = getattr(document, item.kind)
        if item.kind == "edit":
            document = method(item.id, item.arguments)
        elif item.kind in ("reject", "answer", "extend"):
            value = {"reject": item.reason, "answer": item.result, "extend": item.turns}
            document = method(item.id, value[item.kind])
        else:
            document = method(item.id)
    return document


ITEM = st.sampled_from(sorted(CHOICES)).flatmap(
    lambda leaf: st.tuples(
        st.sampled_from(NAMES[leaf] + ["t"]),  # `t` is ambiguous: refused, whatever it decides
        st.sampled_from(CHOICES[leaf]),
    )
)


@settings(max_examples=150, deadline=None)
@given(drawn=st.lists(ITEM, max_size=7), data=st.data())
def test_a_batch_is_the_document_one_by_one_decisions_make_in_every_order(
    drawn: list[tuple[str, Callable[[str], Decide]]], data: st.DataObject
) -> None:
    base = waiting()
    before = base.to_json()
    items = [make(ident) for ident, make in drawn]
    order = data.draw(st.permutations(items))
    try:
        expected = one_by_one(base, order)
    except DecisionError:
        refused = next(i for i in range(len(order)) if _refuses(base, order[: i + 1]))
        with pytest.raises(DecisionError, match=f"^decision {refused + 1} of {len(order)} "):
            base.decide_many(order)
    else:
        assert base.decide_many(order).to_json() == expected.to_json()
        assert base.decide_many(reversed(order)).to_json() == expected.to_json()
        assert base.decide_many(items).to_json() == expected.to_json()
    assert base.to_json() == before  # a batch, refused or not, changes no continuation


def _refuses(base: Continuation, items: list[Decide]) -> bool:
    try:
        one_by_one(base, items)
    except DecisionError:
        return True
    return False


def test_five_decisions_give_one_document_in_all_120_orders() -> None:
    base = waiting()
    items = [
        Decide.edit("boss/t", {"to": "carol", "amount": 3}),
        Decide.answer("q", {"ok": True}),
        Decide.reject("l", "not now"),
        Decide.extend("limit-1", 2),
        Decide.approve("auditor/t"),
    ]
    expected = one_by_one(base, items).to_json()
    for order in itertools.permutations(items):
        assert base.decide_many(order).to_json() == expected
        assert one_by_one(base, list(order)).to_json() == expected
    assert {p.path: p.decision for p in base.decide_many(items).pending()} == {
        "boss/t": "edit",
        "boss/q": "answer",
        "boss/l": "reject",
        "boss/clerk@c/limit-1": "extend",
        "boss/auditor@a/t": "approve",
    }


ALL = "boss/auditor@a/t, boss/clerk@c/limit-1, boss/l, boss/q, boss/t"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [Decide.approve("boss/t"), Decide.stop("boss/t"), Decide.approve("q")],
            "decision 2 of 3 (stop 'boss/t') is refused, so nothing was decided: boss/t "
            f"(approval) does not allow 'stop'; allowed: approve, edit, reject; pending: {ALL}",
        ),
        (
            [Decide.approve("auditor/t"), Decide.reject("boss/auditor@a/t")],
            "decision 2 of 2 (reject 'boss/auditor@a/t') is refused, so nothing was decided: "
            "boss/auditor@a/t is decided by decision 1 of this batch already; give one "
            f"decision per entry; pending: {ALL}",
        ),
        (
            [Decide.approve("t")],
            "decision 1 of 1 (approve 't') is refused, so nothing was decided: 't' names 2 "
            "pending calls; pass the full path of the one you mean; pending: boss/auditor@a/t, "
            "boss/t",
        ),
        (
            [Decide.resume("l"), Decide.approve("nope")],
            "decision 2 of 2 (approve 'nope') is refused, so nothing was decided: no pending "
            f"call 'nope'; pending: {ALL}",
        ),
        (
            [Decide.answer("q", {"n": float("inf")})],
            "decision 1 of 1 (answer 'q') is refused, so nothing was decided: an answer must "
            "be plain JSON data: it inf is not a JSON number (at /n); pending: none",
        ),
        (
            [Decide.extend("limit-1", 0)],
            "decision 1 of 1 (extend 'limit-1') is refused, so nothing was decided: extend "
            "needs a positive whole number; pending: none",
        ),
        (
            [Decide.approve("boss/t"), "boss/q"],
            "decision 2 of 2 (?) is refused, so nothing was decided: expected a Decide, not "
            "str; pending: none",
        ),
    ],
)
def test_one_bad_item_refuses_the_whole_batch_and_names_it(items: list[Any], message: str) -> None:
    base = waiting()
    with pytest.raises(DecisionError) as caught:
        base.decide_many(items)
    assert str(caught.value) == message
    assert all(p.decision is None for p in base.pending())


def test_a_decided_entry_stays_decided_for_a_later_batch() -> None:
    decided = waiting().decide_many([Decide.approve("boss/t")])
    with pytest.raises(DecisionError, match=r"boss/t is already decided \(approve\)"):
        decided.decide_many([Decide.resume("l"), Decide.reject("boss/t")])


def test_an_empty_batch_decides_nothing() -> None:
    base = waiting()
    assert base.decide_many([]) is base
    assert base.decide_many(iter(())).to_json() == base.to_json()


def test_a_batch_copies_its_values() -> None:
    arguments = {"to": "carol", "amount": 3}
    decided = waiting().decide_many([Decide.edit("boss/t", arguments)])
    arguments["amount"] = 1_000_000
    entry = decided.find("boss/t")[1]
    assert entry.decision is not None and entry.decision.kind == "edit"
    assert entry.decision.arguments == {"to": "carol", "amount": 3}


def test_a_decided_batch_resumes_like_one_by_one_decisions() -> None:
    items = [
        Decide.approve("boss/t"),
        Decide.answer("q", "yes"),
        Decide.resume("l"),
        Decide.extend("limit-1", 1),
        Decide.reject("auditor/t", "not eve"),
    ]
    loop_tools.CALLS.clear()
    batch = runtime(STACK, STACK_TURNS).resume(waiting().decide_many(items))
    by_batch = list(loop_tools.CALLS)
    loop_tools.CALLS.clear()
    single = runtime(STACK, STACK_TURNS).resume(one_by_one(waiting(), items))
    assert batch == single
    assert (
        by_batch
        == loop_tools.CALLS
        == [  # the clerk's echo ran before its limit
            ("transfer", {"to": "bob", "amount": 5}),
            ("lookup", {"key": "k"}),
        ]
    )


# -- cost: counted, not timed ------------------------------------------------------------------

K = 300
WIDE = make_spec([agent("bank", "transfer", limits=Limits(max_tool_calls=K))], [gated("transfer")])
WIDE_TURNS = {
    "bank": [
        calls(*[call(f"t{i}", "transfer", {"to": "bob", "amount": i}) for i in range(K)]),
        say("Paid."),
    ]
}


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """How often the stack is indexed and rebuilt, and how many decisions each rebuild holds:
    the real functions run, only counted."""
    seen: dict[str, list[int]] = {"index": [], "rebuild": []}
    index, rebuild = engine.decisions.PendingIndex.of, engine.continuation.decided_root

    def counting_index(root: Any) -> Any:
        seen["index"].append(1)
        return index(root)

    def counting_rebuild(root: Any, decisions: Any) -> Any:
        seen["rebuild"].append(len(decisions))
        return rebuild(root, decisions)

    monkeypatch.setattr(engine.decisions.PendingIndex, "of", staticmethod(counting_index))
    monkeypatch.setattr(engine.continuation, "decided_root", counting_rebuild)
    return seen


def test_approve_all_is_one_batch(counted: dict[str, list[int]]) -> None:
    waiting_k = suspended(run(runtime(WIDE, WIDE_TURNS), "Pay", run_id="wide-1"))
    decided = waiting_k.approve_all()
    assert counted == {"index": [1], "rebuild": [K]}
    assert {p.decision for p in decided.pending()} == {"approve"}


def test_one_by_one_decisions_index_the_stack_once(counted: dict[str, list[int]]) -> None:
    document = suspended(run(runtime(WIDE, WIDE_TURNS), "Pay", run_id="wide-2"))
    for i in range(K):
        document = document.approve(f"t{i}")  # a bare id: found without a scan
    assert counted == {"index": [1], "rebuild": [1] * K}
    assert document.to_json() == document.approve_all().to_json()


WIDE_YAML = """\
spec_version: 1
name: wide
models:
  scripted: {{kind: scripted, script: wide.script.yaml}}
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {{required: true, decisions: [approve, reject]}}
agents:
  bank:
    model: scripted
    instructions: Pay.
    tools: [transfer]
    limits: {{max_tool_calls: {k}}}
entrypoint: bank
"""


def test_the_clis_approve_all_decides_in_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: dict[str, list[int]]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wide.yaml").write_text(WIDE_YAML.format(k=K), encoding="utf-8")
    script = {"script_version": 1, "agents": {"bank": WIDE_TURNS["bank"]}}
    (tmp_path / "wide.script.yaml").write_text(json.dumps(script), encoding="utf-8")

    def cli(*argv: str) -> tuple[int, str]:
        out, err = StringIO(), StringIO()
        return main(list(argv), stdout=out, stderr=err), err.getvalue()

    assert cli("run", "wide.yaml", "-p", "Pay", "-q", "--state", "s.json")[0] == 3
    counted["index"].clear()
    counted["rebuild"].clear()
    loop_tools.CALLS.clear()
    code, err = cli("resume", "s.json", "--approve", "all", "-q")
    assert (code, err) == (0, "")
    assert counted["rebuild"] == [K]  # one rebuild holding all K decisions
    assert len(loop_tools.CALLS) == K


def test_a_subclass_of_decide_keeps_the_defaults_a_method_does_not_name() -> None:
    @dataclass(frozen=True, kw_only=True, slots=True)
    class Mine(Decide):
        where: str | None = "args.amount < 10"

    assert Mine.stop("x").where == "args.amount < 10"
    assert Mine.approve("x", scope="run", where=None).where is None  # named: as given
    assert type(Mine.reject("x", "no")) is Mine
