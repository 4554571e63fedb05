"""Run-scoped grants: an approve or reject decision with `scope: run` answers later calls of
the same tool anywhere in the run (root and sub-agents), while its `where` holds; reject wins;
grants are kept in the signed document and the store, and never cross runs (a fork, a new run)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import asks_tools
import loop_tools
import pytest
from builders import (
    agent,
    call,
    calls,
    check_document,
    finished,
    gated,
    make_spec,
    python_tool,
    resume,
    run,
    runtime,
    say,
    script,
    sub_agent,
    suspended,
    tool_result,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.continuation import Continuation
from engine.decisions import Decide
from engine.errors import ContinuationError, DecisionError
from engine.events import GrantApplied, RunEvent
from engine.grants import Grant
from engine.history import steps
from engine.render import stack_graph, to_dot
from engine.render.text import inspect_text
from engine.runtime import Runtime
from engine.spec.model import Approval, PythonTool
from engine.store import open_store

SPEC = make_spec(
    [agent("root", "left", "transfer"), agent("left", "transfer")],
    [sub_agent("left"), gated("transfer")],
    name="grants",
)


def pay(call_id: str, to: str, amount: int) -> dict[str, Any]:
    return call(call_id, "transfer", {"to": to, "amount": amount})


@pytest.fixture(autouse=True)
def _fresh_log() -> Iterator[None]:
    loop_tools.CALLS.clear()
    asks_tools.CALLS.clear()
    yield
    loop_tools.CALLS.clear()


def paid() -> list[tuple[str, int]]:
    return [(a["to"], a["amount"]) for name, a in loop_tools.CALLS if name == "transfer"]


def observed(rt: Runtime) -> list[GrantApplied]:
    seen: list[RunEvent] = []
    rt.observers.add(seen.append)
    return seen  # type: ignore[return-value]  # filtered by the caller


def applied(seen: list[Any]) -> list[tuple[str, str, str, str | None, str]]:
    return [
        (e.call_id, e.path, e.grant, e.where, e.source) for e in seen if isinstance(e, GrantApplied)
    ]


def test_an_approval_for_the_run_runs_later_calls_of_the_tool_without_asking() -> None:
    rt = runtime(
        SPEC,
        {
            "root": [
                calls(pay("t1", "bob", 5)),
                calls(pay("t2", "eve", 7)),
                calls(pay("t3", "joe", 9000)),
                say("paid"),
            ]
        },
    )
    seen = observed(rt)
    first = suspended(run(rt))
    assert first.grants() == ()
    decided = first.approve("t1", scope="run")
    assert json.loads(decided.to_json())["frames"][0]["pending"][0]["decision"] == {
        "kind": "approve",
        "fingerprint": first.pending()[0].fingerprint,
        "scope": "run",
    }
    out = finished(resume(rt, decided))
    assert paid() == [("bob", 5), ("eve", 7), ("joe", 9000)]
    assert out.output == "paid"
    assert applied(seen) == [
        ("t2", "root", "approve", None, "root/t1"),
        ("t3", "root", "approve", None, "root/t1"),
    ]


def test_a_grant_with_where_covers_only_calls_that_meet_it_and_is_kept_in_the_document() -> None:
    rt = runtime(
        SPEC,
        {
            "root": [
                calls(pay("t1", "bob", 50)),
                calls(pay("t2", "eve", 70)),
                calls(pay("t3", "joe", 500)),
                calls(pay("t4", "ann", 20)),
                say("paid"),
            ]
        },
    )
    first = suspended(run(rt))
    fingerprint = first.pending()[0].fingerprint
    second = suspended(resume(rt, first.approve("t1", scope="run", where="args.amount <= 100")))
    assert paid() == [("bob", 50), ("eve", 70)]  # t3 is outside `where`: it asks
    assert [p.id for p in second.pending()] == ["t3"]
    assert second.grants() == (
        Grant(
            kind="approve",
            tool="transfer",
            source="root/t1",
            fingerprint=fingerprint,
            where="args.amount <= 100",
        ),
    )
    assert json.loads(second.to_json())["grants"] == [
        {
            "kind": "approve",
            "tool": "transfer",
            "where": "args.amount <= 100",
            "from": "root/t1",
            "fingerprint": fingerprint,
        }
    ]
    assert "grant: approve transfer where args.amount <= 100" in inspect_text(second)
    dot = to_dot(stack_graph(second))
    assert "grant" in dot and "approve transfer where args.amount &lt;= 100" in dot
    again = Continuation.from_json(second.to_json())
    assert again.grants() == second.grants()
    finished(resume(rt, second.approve("t3")))  # the grant survived the second suspension
    assert paid() == [("bob", 50), ("eve", 70), ("joe", 500), ("ann", 20)]


def test_a_grant_given_at_the_root_covers_a_sub_agent_started_later() -> None:
    rt = runtime(
        SPEC,
        {
            "root": [
                calls(pay("t1", "bob", 5)),
                calls(call("r1", "left", {"request": "pay eve"})),
                say("done"),
            ],
            "left": [calls(pay("l1", "eve", 6)), say("eve paid")],
        },
    )
    seen = observed(rt)
    finished(resume(rt, suspended(run(rt)).approve("t1", scope="run")))
    assert paid() == [("bob", 5), ("eve", 6)]
    assert applied(seen) == [("l1", "root/left", "approve", None, "root/t1")]


def test_a_grant_given_in_a_sub_agent_covers_the_root_later() -> None:
    rt = runtime(
        SPEC,
        {
            "root": [
                calls(call("r1", "left", {"request": "pay eve"})),
                calls(pay("t2", "joe", 8)),
                say("done"),
            ],
            "left": [calls(pay("l1", "eve", 6)), calls(pay("l2", "ann", 4)), say("paid")],
        },
    )
    seen = observed(rt)
    first = suspended(run(rt))
    assert [p.path for p in first.pending()] == ["root/left@r1/l1"]
    finished(resume(rt, first.approve("l1", scope="run")))
    assert paid() == [("eve", 6), ("ann", 4), ("joe", 8)]
    assert applied(seen) == [
        ("l2", "root/left", "approve", None, "root/left@r1/l1"),
        ("t2", "root", "approve", None, "root/left@r1/l1"),
    ]


def test_a_reject_for_the_run_rejects_later_calls_with_its_reason() -> None:
    rt = runtime(
        SPEC,
        {"root": [calls(pay("t1", "bob", 5)), calls(pay("t2", "eve", 7)), say("none paid")]},
    )
    out = finished(resume(rt, suspended(run(rt)).reject("t1", "no transfers today", scope="run")))
    assert paid() == []
    rejected = "rejected: the call was not executed (no transfers today)"
    assert out.messages[2] == tool_result("t1", rejected)
    assert out.messages[4] == tool_result("t2", rejected)


def test_reject_wins_over_approve_and_undecided_entries_are_decided_by_grants() -> None:
    rt = runtime(
        SPEC,
        {
            "root": [
                calls(pay("t1", "bob", 5), pay("t2", "eve", 7), pay("t3", "ann", 8)),
                calls(pay("t4", "joe", 9)),
                say("done"),
            ]
        },
    )
    first = suspended(run(rt))
    decided = first.decide_many(
        [
            Decide.approve("t1", scope="run"),
            Decide.reject("t2", "stop paying", scope="run", where="args.amount > 6"),
        ]
    )  # t3 (8) is left undecided: the resume decides it by the grants, and reject wins
    seen = observed(rt)
    out = finished(resume(rt, decided))
    assert paid() == [("bob", 5)]
    rejected = "rejected: the call was not executed (stop paying)"
    assert out.messages[2:5] == [
        tool_result("t1", '{"ok": true, "to": "bob", "amount": 5}'),
        tool_result("t2", rejected),
        tool_result("t3", rejected),
    ]
    assert out.messages[6] == tool_result("t4", rejected)
    assert applied(seen) == [
        ("t3", "root", "reject", "args.amount > 6", "root/t2"),
        ("t4", "root", "reject", "args.amount > 6", "root/t2"),
    ]


def test_a_where_that_cannot_be_evaluated_does_not_cover() -> None:
    rt = runtime(SPEC, {"root": [calls(pay("t1", "bob", 5)), calls(pay("t2", "eve", 7))]})
    first = suspended(run(rt))
    second = suspended(resume(rt, first.approve("t1", scope="run", where="int(args.to) > 0")))
    assert [p.id for p in second.pending()] == ["t2"]  # int('eve') fails: it asks as usual
    assert paid() == [("bob", 5)]


def test_a_reject_grant_that_cannot_tell_makes_the_call_ask_despite_an_approve_grant() -> None:
    rt = runtime(
        SPEC, {"root": [calls(pay("t1", "bob", 5), pay("t2", "7", 7)), calls(pay("t3", "ann", 8))]}
    )
    first = suspended(run(rt))
    decided = first.decide_many(
        [
            Decide.approve("t1", scope="run"),
            Decide.reject("t2", "no numbered accounts", scope="run", where="int(args.to) > 0"),
        ]
    )
    second = suspended(resume(rt, decided))
    assert [p.id for p in second.pending()] == ["t3"]  # int('ann') fails: a person decides
    assert paid() == [("bob", 5)]


def test_only_an_entry_waiting_for_approval_takes_scope_run() -> None:
    flaky, later = python_tool("flaky", on_error="suspend"), python_tool("later")
    spec = make_spec([agent("root", "flaky", "later")], [flaky, later], name="unscoped")
    turns = {
        "root": [
            calls(call("f1", "flaky", {"key": f"k{id(spec)}"}), call("e1", "later", {"topic": "x"}))
        ]
    }
    first = suspended(run(runtime(spec, turns)))
    assert sorted((p.id, p.reason) for p in first.pending()) == [
        ("e1", "external"),
        ("f1", "error"),
    ]
    with pytest.raises(
        DecisionError,
        match=r"root/f1: scope 'run' grants later approvals, and this entry waits for 'error'",
    ):
        first.approve("f1", scope="run")  # on an error entry, approve runs it again
    with pytest.raises(DecisionError, match=r"waits for 'external', not approval"):
        first.reject("e1", "no", scope="run")
    assert first.approve("f1").reject("e1", "no").grants() == ()  # for the call alone: fine


@pytest.mark.parametrize(
    ("grant", "pointer", "message"),
    [
        ({"tool": "wire"}, "/grants/0/tool", "grant for tool 'wire', which is not in the spec"),
        ({"where": "args.amount >"}, "/grants/0/where", "grant where 'args.amount >'"),
    ],
)
def test_a_grant_the_spec_cannot_honour_is_refused_before_the_resume_runs_anything(
    grant: dict[str, Any], pointer: str, message: str
) -> None:
    rt = runtime(SPEC, {"root": [calls(pay("t1", "bob", 5)), calls(pay("t2", "eve", 7))]})
    data = json.loads(suspended(run(rt)).to_json())
    data["grants"] = [
        {"kind": "approve", "tool": "transfer", "from": "root/x", "fingerprint": "f", **grant}
    ]
    with pytest.raises(ContinuationError, match=message) as caught:
        rt.resume(Continuation.from_dict(data).approve("t1"))
    assert caught.value.pointer == pointer
    assert paid() == []  # nothing ran


def test_a_bad_where_is_refused_when_the_decision_is_made() -> None:
    first = suspended(run(runtime(SPEC, {"root": [calls(pay("t1", "bob", 5))]})))
    with pytest.raises(DecisionError, match=r"the condition ends too early \(at column 14\)"):
        first.approve("t1", scope="run", where="args.amount >")
    with pytest.raises(DecisionError, match="needs scope 'run'"):
        first.approve("t1", where="args.amount < 5")
    rt = runtime(SPEC, {"root": []})
    with pytest.raises(DecisionError, match=r"args has no parameter 'amont'.*did you mean"):
        rt.check_decisions(first, [Decide.approve("t1", scope="run", where="args.amont < 5")])


ORDER_TURNS = {
    "root": [calls(call("r1", "left", {"request": "x"}), pay("t2", "joe", 8), pay("t3", "ann", 9))],
    "left": [calls(pay("l1", "eve", 6))],
}
CHOICES = ("approve", "reject", "approve for the run", "reject for the run", "approve where")


@cache
def three_pending() -> Continuation:
    return suspended(runtime(SPEC, ORDER_TURNS).run("go", run_id="order-1"))


def _decide(continuation: Continuation, ident: str, kind: str) -> Continuation:
    if kind == "approve where":
        return continuation.approve(ident, scope="run", where="args.amount < 9")
    scope = "run" if kind.endswith("for the run") else "call"
    if kind.startswith("approve"):
        return continuation.approve(ident, scope=scope)
    return continuation.reject(ident, "no", scope=scope)


@settings(max_examples=40, deadline=None)
@given(
    choices=st.dictionaries(st.sampled_from(["l1", "t2", "t3"]), st.sampled_from(CHOICES)),
    data=st.data(),
)
def test_scoped_decisions_in_any_order_give_the_same_document(
    choices: dict[str, str], data: st.DataObject
) -> None:
    base = three_pending()
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
    check_document(shuffled)


def test_a_signed_document_with_an_edited_grant_is_refused() -> None:
    key = b"k" * 32
    rt = Runtime(
        SPEC,
        model_override=script(
            {"root": [calls(pay("t1", "bob", 50)), calls(pay("t2", "eve", 500)), say("ok")]}
        ),
        secret_key=key,
    )
    first = suspended(rt.run("go"))
    second = suspended(rt.resume(first.approve("t1", scope="run", where="args.amount <= 100")))
    data = json.loads(second.to_json())
    assert data["grants"][0]["where"] == "args.amount <= 100"
    data["grants"][0]["where"] = "args.amount <= 1000"
    with pytest.raises(ContinuationError, match="signature"):
        rt.load(json.dumps(data))
    assert rt.load(second.to_json()).grants() == second.grants()


def refunds(second: int, final: str) -> Runtime:
    """A desk whose tool asks for refunds above 100 itself: 150 EUR, then `second` EUR."""
    tool = PythonTool(
        name="issue_refund",
        description="refund an order",
        ref="asks_tools:issue_refund",
        approval=Approval(required=False, decisions=("approve", "reject")),
    )
    spec = make_spec([agent("desk", "issue_refund")], [tool], name="asks")
    return runtime(
        spec,
        {
            "desk": [
                calls(call("c1", "issue_refund", {"order_id": "A-2", "amount": 150})),
                calls(call("c2", "issue_refund", {"order_id": "A-2", "amount": second})),
                say(final),
            ]
        },
    )


def test_a_tool_that_asks_is_answered_by_a_grant() -> None:
    rt = refunds(200, "refunded")
    first = suspended(run(rt))
    finished(resume(rt, first.approve("c1", scope="run")))
    assert asks_tools.CALLS == [
        ("issue_refund", {"order_id": "A-2", "amount": 150}, False),
        ("issue_refund", {"order_id": "A-2", "amount": 150}, True),
        ("issue_refund", {"order_id": "A-2", "amount": 200}, False),
        ("issue_refund", {"order_id": "A-2", "amount": 200}, True),
    ]


def test_a_tool_that_asks_is_rejected_by_a_reject_grant_and_never_runs_approved() -> None:
    rt = refunds(120, "no refunds")
    first = suspended(run(rt))
    events: list[Any] = observed(rt)
    done = finished(resume(rt, first.reject("c1", "no refunds today", scope="run")))
    assert [c[2] for c in asks_tools.CALLS] == [False, False]  # each asked; neither ran approved
    [refused] = [e for e in events if e.kind == "tool_finished" and e.call_id == "c2"]
    assert refused.status == "rejected"  # not `failed`: nothing of the tool went wrong
    assert tool_result("c2", "rejected: the call was not executed (no refunds today)") in (
        done.messages
    )


def test_a_condition_that_held_is_answered_by_a_grant() -> None:
    approval = Approval(required=True, when="args.amount > 100", decisions=("approve", "reject"))
    spec = make_spec(
        [agent("payer", "transfer")],
        [
            PythonTool(
                name="transfer", description="pay", ref="loop_tools:transfer", approval=approval
            )
        ],
        name="when",
    )
    rt = runtime(
        spec,
        {"payer": [calls(pay("c1", "bob", 500)), calls(pay("c2", "eve", 700)), say("ok")]},
    )
    finished(resume(rt, suspended(run(rt)).approve("c1", scope="run")))
    assert paid() == [("bob", 500), ("eve", 700)]


# -- stores, forks -------------------------------------------------------------------------


def test_grants_survive_the_store_and_audit_records_the_scope(store_url: str) -> None:
    turns = {
        "root": [
            calls(pay("t1", "bob", 50)),
            calls(pay("t2", "eve", 500)),
            calls(pay("t3", "ann", 60)),
            say("paid"),
        ]
    }
    with Runtime(SPEC, model_override=script(turns), store=store_url) as rt:
        first = suspended(rt.run("go", run_id="g1"))
        suspended(rt.resume(first.approve("t1", scope="run", where="args.amount <= 100")))
    with Runtime(SPEC, model_override=script(turns), store=store_url) as rt:
        loaded = rt.load_run("g1")  # rebuilt from the store's events
        [grant] = loaded.grants()
        assert (grant.kind, grant.where, grant.source) == (
            "approve",
            "args.amount <= 100",
            "root/t1",
        )
        assert [p.id for p in loaded.pending()] == ["t2"]
        finished(rt.resume(loaded.approve("t2")))
    assert paid() == [("bob", 50), ("eve", 500), ("ann", 60)]
    store = open_store(store_url)
    try:
        decided = [a for a in store.audit("g1") if a.action == "decided"]
    finally:
        store.close()
    assert [(a.call_id, a.decision, a.detail) for a in decided] == [
        ("t1", "approve", {"scope": "run", "where": "args.amount <= 100"}),
        ("t2", "approve", None),
    ]


def test_a_fork_starts_with_no_grants(store_url: str) -> None:
    turns = {
        "root": [
            calls(pay("t1", "bob", 5)),
            calls(pay("t2", "eve", 500)),
            calls(pay("t3", "ann", 6)),
            say("paid"),
        ]
    }
    with Runtime(SPEC, model_override=script(turns), store=store_url) as rt:
        first = suspended(rt.run("go", run_id="src"))
        second = suspended(rt.resume(first.approve("t1", scope="run", where="args.amount < 10")))
        assert len(second.grants()) == 1
    store = open_store(store_url)
    try:
        last = len(list(steps(store.events("src"))))
    finally:
        store.close()
    with Runtime(SPEC, model_override=script(turns), store=store_url) as rt:
        forked = suspended(rt.fork("src", at=last, new_run_id="fork"))
        assert forked.grants() == ()
        assert rt.load_run("fork").grants() == ()
        assert rt.load_run("src").grants() == second.grants()  # the original keeps its own
        again = suspended(rt.resume(forked.approve("t2")))  # t3 (6) asks in the fork
        assert [p.id for p in again.pending()] == ["t3"]


def test_a_fork_at_a_scoped_decision_the_original_never_turned_into_a_grant_grants_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.runtime

    turns = {"root": [calls(pay("t1", "bob", 5)), calls(pay("t2", "eve", 6)), say("paid")]}
    with Runtime(SPEC, model_override=script(turns), store=store_url) as rt:
        first = suspended(rt.run("go", run_id="cut"))

        def died(*_: object) -> None:  # the decisions are kept; the process dies before more
            raise KeyboardInterrupt

        monkeypatch.setattr(engine.runtime.grants, "take", died)
        with pytest.raises(KeyboardInterrupt):
            rt.resume(first.approve("t1", scope="run"))
        monkeypatch.undo()
    store = open_store(store_url)
    try:
        last = len(list(steps(store.events("cut"))))
    finally:
        store.close()
    with Runtime(SPEC, model_override=script(turns), store=store_url) as rt:
        forked = rt.fork("cut", at=last, new_run_id="cut-fork")
        again = suspended(forked)  # t1's approval answers t1 alone: t2 asks in the fork
        assert again.grants() == () and [p.id for p in again.pending()] == ["t2"]
    assert paid() == [("bob", 5)]


def test_a_new_run_starts_with_no_grants() -> None:
    turns = {"root": [calls(pay("t1", "bob", 5)), calls(pay("t2", "eve", 6)), say("ok")]}
    rt = runtime(SPEC, {"root": turns["root"] * 2})
    finished(resume(rt, suspended(run(rt, run_id="one")).approve("t1", scope="run")))
    second = suspended(run(rt, run_id="two"))
    assert second.grants() == () and [p.id for p in second.pending()] == ["t1"]


# -- the CLI -------------------------------------------------------------------------------

BILLS = str(Path(__file__).resolve().parent.parent / "specs" / "bills.yaml")


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_for_run_and_where_grant_and_the_grant_is_shown(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    assert cli("run", BILLS, "--state", state, "-q", "-p", "pay")[0] == 3
    code, out, _ = cli(
        "resume", state, "-q", "--format", "json",
        "--approve", "call_laptop", "--for-run", "--where", "args.amount <= 2000",
    )  # fmt: skip
    assert code == 3
    data = json.loads(out)
    assert [p["id"] for p in data["pending"]] == ["call_car"]  # the phone ran, granted
    assert [(g["kind"], g["where"], g["from"]) for g in data["grants"]] == [
        ("approve", "args.amount <= 2000", "treasurer/call_laptop")
    ]
    code, out, _ = cli("pending", state)
    expected = (
        "  grant: approve transfer where args.amount <= 2000 for the rest of the run "
        "(from treasurer/call_laptop)\n"
    )
    assert code == 3 and out.endswith(expected)
    _, out, _ = cli("inspect", state)
    assert "grant: approve transfer where args.amount <= 2000" in out
    _, out, _ = cli("inspect", state, "--format", "json")
    assert json.loads(out)["grants"] == data["grants"]
    code, out, _ = cli("resume", state, "-q", "--reject", "call_car", "--reason", "not now")
    assert code == 0 and "the car (15,000 EUR) was not approved" in out


def test_cli_approve_all_for_run_makes_each_entry_grant(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    cli("run", BILLS, "--state", state, "-q", "-p", "pay")
    code, out, _ = cli("resume", state, "-q", "--approve", "all", "--for-run")
    assert code == 0, out  # the phone and the car ran without asking: no where, every call


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--for-run", "--approve", "call_laptop"], "--for-run applies to the --approve ID"),
        (["--approve", "call_laptop", "--where", "args.amount < 5"], "--where applies to"),
        (
            ["--approve", "call_laptop", "--stop", "call_laptop", "--for-run"],
            "--for-run applies to the --approve ID",
        ),
        (
            ["--approve", "call_laptop", "--for-run", "--for-run"],
            "--for-run is given twice for --approve call_laptop",
        ),
        (
            ["--approve", "call_laptop", "--for-run", "--where", "args.amount <"],
            "the condition ends too early (at column 14)",
        ),
        (
            ["--approve", "call_laptop", "--for-run", "--where", "args.amont < 5"],
            "args has no parameter 'amont'",
        ),
    ],
)
def test_cli_misused_grant_flags_are_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    state = str(tmp_path / "state.json")
    cli("run", BILLS, "--state", state, "-q", "-p", "pay")
    code, _, err = cli("resume", state, "-q", *flags)
    assert code == 2 and message in err, err
    assert (
        json.loads(Path(state).read_text(encoding="utf-8"))["frames"][0]["pending"][0].get(
            "decision"
        )
        is None
    )  # nothing was decided
