"""Sub-agents as tools: suspensions deep in the stack, ids at any depth, decisions in any order."""

from __future__ import annotations

import asyncio
import sys
from functools import cache

import loop_tools
import pytest
from builders import (
    ROOT,
    agent,
    call,
    calls,
    check_document,
    finished,
    gated,
    json_depth,
    make_spec,
    pending_ids,
    resume,
    run,
    runtime,
    say,
    sub_agent,
    suspended,
    tool_result,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.continuation import Continuation
from engine.runtime import Runtime
from engine.spec import Spec, load_spec

# -- the HR example ------------------------------------------------------------------------


@cache
def hr() -> tuple[Runtime, Continuation]:
    rt = Runtime(load_spec(ROOT / "specs" / "hr_agent.yaml"))
    return rt, suspended(run(rt, "Onboard Ada Lovelace", run_id="hr-1"))


def test_the_hr_example_suspends_deep_in_the_account_agent() -> None:
    _, continuation = hr()

    [entry] = continuation.pending()
    assert entry.id == "call_acc_2"
    assert entry.path == "hr_agent/account_agent@call_hr_1/call_acc_2"
    assert entry.agent == "account_agent"
    assert entry.tool == "authorize_account"
    assert entry.arguments == {"username": "ada", "role": "engineer"}
    assert entry.prompt == "Grant engineer access to ada?"
    [(root_path, root), (child_path, child)] = continuation.frames()
    assert (root_path, child_path) == (("hr_agent",), ("hr_agent", "account_agent@call_hr_1"))
    assert [(p.id, p.reason) for p in root.pending] == [("call_hr_1", "subagent")]
    assert child.ledger == {"call_acc_1": "done", "call_acc_2": "pending"}


@pytest.mark.parametrize(
    "ident",
    [
        "call_acc_2",
        "hr_agent/account_agent@call_hr_1/call_acc_2",
        "hr_agent/account_agent/call_acc_2",
        "account_agent@call_hr_1/call_acc_2",
        "account_agent/call_acc_2",
    ],
)
def test_an_entry_is_addressed_by_bare_id_full_path_or_path_suffix(ident: str) -> None:
    _, continuation = hr()

    full = "hr_agent/account_agent@call_hr_1/call_acc_2"
    assert continuation.approve(ident) == continuation.approve(full)


def test_approving_the_hr_example_finishes_it() -> None:
    rt, continuation = hr()

    outcome = finished(resume(rt, continuation.approve("account_agent/call_acc_2")))

    assert outcome.output == (
        "Ada Lovelace is onboarded: account ada created and authorized, welcome email sent."
    )
    assert outcome.messages[2] == tool_result(
        "call_hr_1", "Account ada created and authorized as engineer."
    )


# -- depth ---------------------------------------------------------------------------------


def chain(depth: int) -> tuple[Spec, dict[str, list[dict[str, object]]]]:
    """Agents a0 -> a1 -> ... -> a{depth-1}; the last one calls a transfer needing approval."""
    last = f"a{depth - 1}"
    agents = [agent(f"a{i}", f"a{i + 1}") for i in range(depth - 1)]
    agents.append(agent(last, "transfer"))
    tools = [sub_agent(f"a{i}") for i in range(1, depth)] + [gated("transfer")]
    turns: dict[str, list[dict[str, object]]] = {
        f"a{i}": [calls(call(f"call_a{i}", f"a{i + 1}", {"request": "go"})), say(f"a{i} done")]
        for i in range(depth - 1)
    }
    turns[last] = [
        calls(call(f"call_a{depth - 1}", "transfer", {"to": "bob", "amount": 1})),
        say(f"{last} done"),
    ]
    return make_spec(agents, tools, name=f"chain{depth}"), turns


def _run_chain(depth: int) -> tuple[Runtime, Continuation]:
    spec, turns = chain(depth)
    rt = runtime(spec, turns)
    return rt, suspended(rt.run("go"))


def test_a_chain_of_ten_sub_agents_suspends_at_the_bottom_and_resumes_to_the_top() -> None:
    rt, continuation = _run_chain(10)
    check_document(continuation)

    assert pending_ids(continuation) == [
        "a0/" + "/".join(f"a{i}@call_a{i - 1}" for i in range(1, 10)) + "/call_a9"
    ]
    assert len(continuation.frames()) == 10

    outcome = finished(resume(rt, continuation.approve("call_a9")))
    assert outcome.output == "a0 done"
    assert outcome.messages[2] == tool_result("call_a0", "a1 done")
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 1})]


def test_the_document_does_not_nest_deeper_with_a_deeper_stack() -> None:
    _, shallow = _run_chain(2)
    _, deep = _run_chain(10)

    assert json_depth(deep.to_json()) == json_depth(shallow.to_json())


def test_a_stack_of_three_hundred_sub_agents_runs_suspends_loads_and_resumes() -> None:
    depth = 300
    assert depth * 3 > sys.getrecursionlimit() / 4  # deep enough that recursion would show
    rt, continuation = _run_chain(depth)

    reloaded = Continuation.from_json(continuation.approve("call_a299").to_json())
    outcome = finished(rt.resume(reloaded))

    assert outcome.output == "a0 done"
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 1})]


def test_a_stack_of_three_hundred_sub_agents_on_the_event_loop_stays_within_a_small_stack() -> None:
    """Driven as tasks every few levels (not one per level), the stack is bounded by the
    levels between two tasks, not by the depth: it runs under a recursion limit of 200."""
    spec, turns = chain(300)
    rt = runtime(spec, turns)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        continuation = suspended(asyncio.run(rt.arun("go")))
        reloaded = Continuation.from_json(continuation.approve("call_a299").to_json())
        outcome = finished(asyncio.run(rt.aresume(reloaded)))
    finally:
        sys.setrecursionlimit(limit)

    assert outcome.output == "a0 done"
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 1})]


# -- two sub-agents suspended in one turn --------------------------------------------------

BRANCHES = make_spec(
    [agent("root", "left", "right"), agent("left", "transfer"), agent("right", "transfer")],
    [sub_agent("left"), sub_agent("right"), gated("transfer")],
    name="branches",
)
BRANCH_TURNS: dict[str, list[dict[str, object]]] = {
    "root": [
        calls(
            call("r1", "left", {"request": "pay bob"}), call("r2", "right", {"request": "pay eve"})
        ),
        say("Both paid."),
    ],
    "left": [calls(call("l1", "transfer", {"to": "bob", "amount": 1})), say("bob paid")],
    "right": [calls(call("g1", "transfer", {"to": "eve", "amount": 2})), say("eve paid")],
}


def _branches() -> tuple[Runtime, Continuation]:
    rt = runtime(BRANCHES, BRANCH_TURNS)
    return rt, suspended(run(rt, "pay both", run_id="branches-1"))


def test_two_sub_agents_suspended_in_one_turn_are_both_pending() -> None:
    _, continuation = _branches()

    assert pending_ids(continuation) == ["root/left@r1/l1", "root/right@r2/g1"]
    assert loop_tools.CALLS == []


def test_decisions_in_different_sub_agents_give_the_same_document_and_run_in_either_order() -> None:
    rt, continuation = _branches()

    forward = continuation.approve("l1").approve("right/g1")
    backward = continuation.approve("right/g1").approve("l1")

    assert forward.to_json() == backward.to_json()
    first = finished(resume(rt, forward))
    # A runtime resumes one suspension once; the other order resumes as another process would.
    second = finished(resume(runtime(BRANCHES, BRANCH_TURNS), backward))
    assert (first.output, first.messages) == (second.output, second.messages)
    assert first.messages[2:4] == [tool_result("r1", "bob paid"), tool_result("r2", "eve paid")]
    bob, eve = ("transfer", {"to": "bob", "amount": 1}), ("transfer", {"to": "eve", "amount": 2})
    assert sorted(loop_tools.CALLS, key=str) == [bob, bob, eve, eve]  # once per resume


def test_approving_one_branch_runs_it_and_suspends_on_the_other_without_losing_it() -> None:
    rt, continuation = _branches()

    again = suspended(resume(rt, continuation.approve("l1")))

    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 1})]
    assert pending_ids(again) == ["root/right@r2/g1"]
    [(_, root), _] = again.frames()
    assert root.results == {"r1": "bob paid"}
    assert root.ledger == {"r1": "done", "r2": "pending"}

    outcome = finished(resume(rt, again.reject("g1", "eve is unknown")))
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 1})]
    assert outcome.messages[2:4] == [tool_result("r1", "bob paid"), tool_result("r2", "eve paid")]


# -- order independence, as a property -----------------------------------------------------

THREE = make_spec(
    [
        agent("root", "left", "right", "transfer"),
        agent("left", "transfer"),
        agent("right", "transfer"),
    ],
    [sub_agent("left"), sub_agent("right"), gated("transfer")],
    name="three",
)
THREE_TURNS = {
    **BRANCH_TURNS,
    "root": [
        calls(
            call("r1", "left", {"request": "pay bob"}),
            call("r2", "right", {"request": "pay eve"}),
            call("r3", "transfer", {"to": "joe", "amount": 3}),
        ),
        say("All paid."),
    ],
}


@cache
def three_pending() -> Continuation:
    return suspended(runtime(THREE, THREE_TURNS).run("pay all", run_id="three-1"))


def _decide(continuation: Continuation, ident: str, kind: str) -> Continuation:
    return continuation.approve(ident) if kind == "approve" else continuation.reject(ident, "no")


@settings(max_examples=60, deadline=None)
@given(
    choices=st.dictionaries(
        st.sampled_from(["l1", "g1", "r3"]), st.sampled_from(["approve", "reject"])
    ),
    data=st.data(),
)
def test_any_decisions_in_any_order_give_the_same_document(
    choices: dict[str, str], data: st.DataObject
) -> None:
    base = three_pending()
    assert pending_ids(base) == ["root/r3", "root/left@r1/l1", "root/right@r2/g1"]
    order = data.draw(st.permutations(sorted(choices)))

    shuffled = base
    for ident in order:
        shuffled = _decide(shuffled, ident, choices[ident])
    canonical = base
    for ident in sorted(choices):
        canonical = _decide(canonical, ident, choices[ident])
    reversed_ = base
    for ident in reversed(order):
        reversed_ = _decide(reversed_, ident, choices[ident])

    assert shuffled.to_json() == canonical.to_json() == reversed_.to_json()
    assert {p.id: p.decision for p in shuffled.pending()} == {
        ident: choices.get(ident) for ident in ("l1", "g1", "r3")
    }
