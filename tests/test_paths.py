"""Pending paths name one call each: `root/child@CALL/.../ENTRY`, even when one turn starts
the same sub-agent twice and both invocations use the same call ids; and the scripted model
gives every invocation its own turns."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import loop_tools
import pytest
from builders import (
    ROOT,
    agent,
    call,
    calls,
    finished,
    gated,
    make_spec,
    pending_ids,
    resume,
    run,
    say,
    sub_agent,
    suspended,
    tool_result,
)

from engine import _paths
from engine.cli import main
from engine.continuation import Continuation
from engine.errors import DecisionError, ScriptError
from engine.models.base import ModelRequest
from engine.models.scripted import ScriptedModel
from engine.runtime import Runtime
from engine.store import open_store

FAN = make_spec(
    [agent("root", "worker"), agent("worker", "transfer")],
    [sub_agent("worker"), gated("transfer")],
    name="fan",
)
FAN_SCRIPT: dict[str, Any] = {
    "script_version": 1,
    "agents": {
        "root": [
            calls(
                call("w1", "worker", {"request": "pay bob"}),
                call("w2", "worker", {"request": "pay eve"}),
            ),
            say("Root done."),
        ],
        "worker": {  # one list per invocation, by the id of the call that started it
            "w1": [calls(call("t1", "transfer", {"to": "bob", "amount": 1})), say("bob: done")],
            "w2": [calls(call("t1", "transfer", {"to": "eve", "amount": 2})), say("eve: done")],
        },
    },
}
BOB = "root/worker@w1/t1"
EVE = "root/worker@w2/t1"


def fan() -> tuple[Runtime, Continuation]:
    rt = Runtime(FAN, model_override=ScriptedModel.from_data(FAN_SCRIPT))
    return rt, suspended(run(rt, "pay both", run_id="fan-1"))


def test_two_invocations_of_one_sub_agent_in_one_turn_have_distinct_paths() -> None:
    _, continuation = fan()

    assert pending_ids(continuation) == [BOB, EVE]
    assert [(p.id, p.agent, p.arguments) for p in continuation.pending()] == [
        ("t1", "worker", {"to": "bob", "amount": 1}),
        ("t1", "worker", {"to": "eve", "amount": 2}),
    ]


def test_approve_one_and_reject_the_other_by_path_in_either_order() -> None:
    rt, continuation = fan()

    forward = continuation.approve(BOB).reject(EVE, "not eve")
    backward = continuation.reject("worker@w2/t1", "not eve").approve("worker@w1/t1")
    assert forward == backward
    assert forward.to_json() == backward.to_json()

    # a fresh runtime and model, from the document's text alone: each invocation plays on
    # at its own second turn
    fresh = Runtime(FAN, model_override=ScriptedModel.from_data(FAN_SCRIPT))
    outcome = finished(resume(fresh, Continuation.from_json(forward.to_json())))
    assert outcome.output == "Root done."
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 1})]
    assert outcome.messages[2:4] == [
        tool_result("w1", "bob: done"),
        tool_result("w2", "eve: done"),
    ]
    rt.close()
    fresh.close()


@pytest.mark.parametrize("ident", ["t1", "worker/t1", "root/worker/t1"])
def test_an_ambiguous_identifier_lists_the_full_paths_sorted_and_asks_for_one(ident: str) -> None:
    _, continuation = fan()

    with pytest.raises(DecisionError) as caught:
        continuation.approve(ident)

    assert caught.value.pending_ids == (BOB, EVE)
    assert str(caught.value) == (
        f"{ident!r} names 2 pending calls; pass the full path of the one you mean; "
        f"pending: {BOB}, {EVE}"
    )


@pytest.mark.parametrize(
    ("ident", "path"),
    [
        ("root/worker@w1/t1", True),
        ("worker@w1/t1", True),
        ("worker/t1", True),
        ("root/worker/t1", True),
        ("t1", True),
        ("orker/t1", False),  # only at segment boundaries
        ("root/t1", False),  # a suffix, not a subsequence
        ("worker@w2/t1", False),
        ("worker@w/t1", False),
        ("w1/t1", False),  # the @CALL part may be left out, not the agent
        ("root/worker@w1/t", False),
    ],
)
def test_a_suffix_matches_at_segment_boundaries_with_or_without_call_ids(
    ident: str, path: bool
) -> None:
    assert _paths.matches(ident, "root/worker@w1/t1") is path


def test_the_agent_only_form_of_a_path_is_still_accepted_when_unambiguous() -> None:
    spec_path = ROOT / "specs" / "hr_agent.yaml"
    from engine.spec import load_spec

    with Runtime(load_spec(spec_path)) as rt:
        continuation = suspended(run(rt, "Onboard Ada", run_id="hr-old"))
        full = "hr_agent/account_agent@call_hr_1/call_acc_2"
        assert pending_ids(continuation) == [full]
        old = continuation.approve("hr_agent/account_agent/call_acc_2")
        assert old == continuation.approve(full)


# -- the scripted model: one position per invocation ---------------------------------------


def request(agent: str, path: str, attempt: int = 0) -> ModelRequest:
    return ModelRequest(
        agent=agent, instructions="", messages=[], tools=[], attempt=attempt, path=path
    )


def test_a_keyed_script_picks_the_invocation_by_parent_call_or_by_whole_path() -> None:
    model = ScriptedModel.from_data(
        {
            "agents": {
                "worker": {
                    "w1": [say("first of w1"), say("second of w1")],
                    "/outer/w1": [say("the w1 under outer")],
                }
            }
        }
    )

    assert model.reply(request("worker", "/w1")).content == "first of w1"
    assert model.reply(request("worker", "/w1", 1)).content == "second of w1"
    assert model.reply(request("worker", "/other/w1")).content == "first of w1"
    assert model.reply(request("worker", "/outer/w1")).content == "the w1 under outer"
    assert model.unused() == []
    with pytest.raises(ScriptError, match=r"invocation of agent 'worker' that call 'w9' started"):
        model.reply(request("worker", "/w9"))


def test_unused_turns_of_a_keyed_script_name_their_invocation() -> None:
    model = ScriptedModel.from_data(FAN_SCRIPT)
    model.reply(request("worker", "/w1"))

    assert model.unused() == [
        "root[0]",
        "root[1]",
        "worker[w1][1]",
        "worker[w2][0]",
        "worker[w2][1]",
    ]


# -- the CLI and the store show the paths --------------------------------------------------

HR = str(ROOT / "specs" / "hr_agent.yaml")
FANOUT = "scripted:" + str(ROOT / "specs" / "hr_agent.fanout.script.yaml")
ADA = "hr_agent/account_agent@call_hr_1/call_acc_2"
GRACE = "hr_agent/account_agent@call_hr_2/call_acc_2"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_run_pending_and_resume_decide_two_invocations_apart(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    code, out, _ = cli("run", HR, "--model", FANOUT, "--state", state, "-q", "-p", "Onboard")
    assert code == 3
    assert f"  {ADA}  [approval]  authorize_account" in out
    assert f"  {GRACE}  [approval]  authorize_account" in out
    assert out.endswith(f"next: callcc resume {state} --model {FANOUT} --approve {ADA}\n")

    code, out, _ = cli("pending", state, "--format", "json")
    assert [p["path"] for p in json.loads(out)] == [ADA, GRACE]

    code, _, err = cli("resume", state, "--model", FANOUT, "--approve", "call_acc_2")
    assert code == 2
    assert "'call_acc_2' names 2 pending calls; pass the full path of the one you mean; " in err
    assert f"pending: {ADA}, {GRACE}" in err

    code, out, err = cli(
        "resume", state, "--model", FANOUT, "--format", "json",
        "--reject", GRACE, "--reason", "not yet", "--approve", ADA,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["status"] == "finished"


def test_inspect_shows_each_pending_entry_with_its_path(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    cli("run", HR, "--model", FANOUT, "--state", state, "-q", "-p", "Onboard")

    code, out, _ = cli("inspect", state)

    assert code == 0
    assert f"path: {ADA}\n" in out and f"path: {GRACE}\n" in out


def test_the_store_keeps_one_pending_row_per_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    code, _, err = cli(
        "run", HR, "--model", FANOUT, "--store", url, "--run-id", "fan", "-q", "-p", "x"
    )
    assert code == 3, err

    store = open_store(url)
    try:
        assert [r.path for r in store.pending()] == [ADA, GRACE]
    finally:
        store.close()
    code, out, err = cli("runs", "pending", "--store", url, "--format", "json")
    assert [r["path"] for r in json.loads(out)] == [ADA, GRACE]

    code, out, err = cli(
        "resume", "fan", "--store", url, "--model", FANOUT, "--approve", GRACE, "--reject", ADA
    )
    assert code == 0, err


def test_a_model_call_id_holding_path_separators_is_made_plain(tmp_path: Path) -> None:
    """`/` and `@` part pending paths and store frame paths: ids `a/b@c` and `a/b` from a
    model named frames `/a/b@c` and `/a/b`, one inside the other to the store."""
    script = {
        "script_version": 1,
        "agents": {
            "root": [
                calls(
                    call("a/b@c", "worker", {"request": "pay bob"}),
                    call("a/b", "worker", {"request": "pay eve"}),
                ),
                say("Root done."),
            ],
            "worker": {
                "a_b_c": [calls(call("t1", "transfer", {"to": "bob", "amount": 1})), say("bob")],
                "a_b": [calls(call("t1", "transfer", {"to": "eve", "amount": 2})), say("eve")],
            },
        },
    }
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    with Runtime(FAN, model_override=ScriptedModel.from_data(script), store=store) as rt:
        waiting = suspended(run(rt, "pay both", run_id="ids"))
        assert pending_ids(waiting) == ["root/worker@a_b_c/t1", "root/worker@a_b/t1"]
        stored = rt.load_run("ids")
        decided = stored.approve("worker@a_b_c/t1").reject("worker@a_b/t1", "no")
        done = finished(resume(rt, decided))
    assert done.output == "Root done."
    assert [m["tool_call_id"] for m in done.messages if m["role"] == "tool"] == ["a_b_c", "a_b"]
