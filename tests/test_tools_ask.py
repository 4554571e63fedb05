"""A python tool that asks for approval itself (`engine.NeedsApproval`): the run suspends with
reason `approval` and the decisions the tool's spec allows; approve runs it once more with
`ToolContext.approved` (and the arguments it asked to act on), edit with the reviewer's,
reject tells the model why and runs nothing. A process killed at any point never runs the
tool twice and never asks twice for one call."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asks_tools
import pytest
from builders import (
    agent,
    assistant,
    call,
    calls,
    finished,
    make_spec,
    resume,
    run,
    runtime,
    say,
    script,
    suspended,
    tool_result,
    user,
)
from test_crash_windows import KillingStore, without_server_fsync

from engine import NeedsApproval, RetryWithModel, ToolContext
from engine.errors import UsageError
from engine.events import EntryAdded, RunEvent
from engine.journal import rebuild
from engine.runtime import Runtime, Suspended
from engine.spec.model import Approval, PythonTool
from engine.store import RunRecord, RunStore, open_store

REFUND_ASK = "Refund 900 EUR for order A-2?"


def refund_tool(*decisions: str, name: str = "issue_refund") -> PythonTool:
    kinds: tuple[str, ...] = decisions or ("approve", "reject")
    return PythonTool(
        name=name,
        description="refund an order",
        ref=f"asks_tools:{name}",
        approval=Approval(required=False, decisions=kinds),  # type: ignore[arg-type]
    )


@pytest.fixture(autouse=True)
def _fresh_log() -> Iterator[None]:
    asks_tools.CALLS.clear()
    yield
    asks_tools.CALLS.clear()


def refund_run(*decisions: str, amount: float = 2000) -> Runtime:
    spec = make_spec([agent("desk", "issue_refund")], [refund_tool(*decisions)])
    turns = {
        "desk": [
            calls(call("r1", "issue_refund", {"order_id": "A-2", "amount": amount})),
            say("Done."),
        ]
    }
    return runtime(spec, turns)


def test_the_package_exports_what_a_tool_raises() -> None:
    import callcc
    import engine

    assert engine.NeedsApproval is NeedsApproval and callcc.NeedsApproval is NeedsApproval
    assert engine.RetryWithModel is RetryWithModel and "RetryWithModel" in callcc.__all__


def test_a_tool_that_asks_suspends_with_its_prompt_arguments_and_the_spec_s_decisions() -> None:
    doc = suspended(run(refund_run("approve", "edit", "reject")))
    (entry,) = doc.pending()
    assert (entry.path, entry.reason, entry.tool) == ("desk/r1", "approval", "issue_refund")
    assert entry.prompt == REFUND_ASK
    assert entry.arguments == {"order_id": "A-2", "amount": 900.0}  # what it will act on
    assert entry.decisions == ("approve", "edit", "reject")
    assert entry.detail == (
        "issue_refund asked for approval itself: refunds above 100 EUR need a person"
    )
    assert asks_tools.CALLS == [("issue_refund", {"order_id": "A-2", "amount": 2000}, False)]
    data = json.loads(doc.to_json())
    assert data["frames"][0]["ledger"] == {"r1": "pending"}
    assert "approved" not in data["frames"][0]


def test_approve_runs_the_tool_once_more_approved_with_the_arguments_it_asked_for() -> None:
    rt = refund_run()
    doc = suspended(run(rt))
    done = finished(resume(rt, doc.approve("r1")))
    assert asks_tools.CALLS == [
        ("issue_refund", {"order_id": "A-2", "amount": 2000}, False),
        ("issue_refund", {"order_id": "A-2", "amount": 900.0}, True),
    ]
    # the model sees the call it was approved as, and its result
    assert done.messages == [
        user("go"),
        assistant("", ("r1", "issue_refund", {"order_id": "A-2", "amount": 900.0})),
        tool_result("r1", "refunded 900 EUR for A-2"),
        {"role": "assistant", "content": "Done."},
    ]


def test_edit_runs_the_tool_with_the_reviewer_s_arguments_and_it_does_not_ask_again() -> None:
    rt = refund_run("approve", "edit", "reject")
    doc = suspended(run(rt))
    done = finished(resume(rt, doc.edit("r1", {"order_id": "A-2", "amount": 450})))
    assert asks_tools.CALLS[-1] == ("issue_refund", {"order_id": "A-2", "amount": 450}, True)
    assert len(asks_tools.CALLS) == 2
    assert done.messages[1] == assistant(
        "", ("r1", "issue_refund", {"order_id": "A-2", "amount": 450})
    )
    assert done.messages[2] == tool_result("r1", "refunded 450 EUR for A-2")


def test_edit_is_refused_unless_the_spec_allows_it() -> None:
    doc = suspended(run(refund_run()))
    with pytest.raises(Exception, match="edit"):
        doc.edit("r1", {"order_id": "A-2", "amount": 450})


def test_reject_tells_the_model_why_and_runs_nothing() -> None:
    rt = refund_run()
    doc = suspended(run(rt))
    done = finished(resume(rt, doc.reject("r1", "refunds over 500 go through finance")))
    assert len(asks_tools.CALLS) == 1  # only the call that asked
    assert done.messages[2] == tool_result(
        "r1", "rejected: the call was not executed (refunds over 500 go through finance)"
    )


def test_a_call_the_tool_does_not_ask_about_runs_at_once() -> None:
    done = finished(run(refund_run(amount=30)))
    assert asks_tools.CALLS == [("issue_refund", {"order_id": "A-2", "amount": 30}, False)]
    assert done.messages[2] == tool_result("r1", "refunded 30 EUR for A-2")


def test_a_spec_gate_counts_as_the_approval_the_tool_would_ask_for() -> None:
    gated = PythonTool(
        name="issue_refund",
        description="refund an order",
        ref="asks_tools:issue_refund",
        approval=Approval(required=True),
    )
    spec = make_spec([agent("desk", "issue_refund")], [gated])
    turns = {
        "desk": [
            calls(call("r1", "issue_refund", {"order_id": "A-2", "amount": 800})),
            say("Done."),
        ]
    }
    rt = runtime(spec, turns)
    doc = suspended(run(rt))
    assert doc.pending()[0].detail is None  # the spec asked, not the tool
    finished(resume(rt, doc.approve("r1")))
    assert asks_tools.CALLS == [("issue_refund", {"order_id": "A-2", "amount": 800}, True)]


def test_a_tool_that_asks_again_once_approved_is_a_tool_error_never_a_second_question() -> None:
    spec = make_spec(
        [agent("desk", "always_asks")],
        [
            PythonTool(
                name="always_asks",
                description="asks",
                ref="asks_tools:always_asks",
                on_error="suspend",
            )
        ],
    )
    turns = {"desk": [calls(call("a1", "always_asks", {"order_id": "A-1"})), say("ok")]}
    rt = runtime(spec, turns)
    doc = suspended(run(rt))
    assert doc.pending()[0].reason == "approval"
    again = suspended(resume(rt, doc.approve("a1")))
    (entry,) = again.pending()
    assert entry.reason == "error"
    assert "raised NeedsApproval for a call a person approved already" in (entry.detail or "")
    assert "ctx.approved" in (entry.detail or "")
    # a retry of that error still counts as approved: it is the same call
    data = json.loads(again.to_json())
    assert list(data["frames"][0]["approved"]) == ["a1"]


def test_a_tool_asking_with_arguments_that_do_not_fit_its_parameters_is_a_tool_error() -> None:
    spec = make_spec(
        [agent("desk", "asks_badly")],
        [PythonTool(name="asks_badly", description="asks", ref="asks_tools:asks_badly")],
    )
    turns = {"desk": [calls(call("b1", "asks_badly", {"order_id": "A-1"})), say("ok")]}
    done = finished(run(runtime(spec, turns)))
    text = done.messages[2]["content"]
    assert text.startswith("error: asks_badly failed: asks_badly raised NeedsApproval with ")
    assert "do not fit" in text


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("asks_in_numbers", "a NeedsApproval prompt of type int, not text"),
        ("defers_in_numbers", "a Deferred reason of type int, not text"),
    ],
)
def test_a_question_or_reason_that_is_not_text_is_a_tool_error_not_an_unreadable_run(
    name: str, said: str
) -> None:
    spec = make_spec(
        [agent("desk", name)], [PythonTool(name=name, description="x", ref=f"asks_tools:{name}")]
    )
    turns = {"desk": [calls(call("b1", name, {"order_id": "A-1"})), say("ok")]}
    done = finished(run(runtime(spec, turns)))  # nothing waits on a value the document refuses
    assert said in done.messages[2]["content"]


def test_a_retry_message_that_is_not_text_reaches_the_model_as_text() -> None:
    name = "retries_in_numbers"
    spec = make_spec(
        [agent("desk", name)], [PythonTool(name=name, description="x", ref=f"asks_tools:{name}")]
    )
    turns = {"desk": [calls(call("b1", name, {"order_id": "A-1"})), say("ok")]}
    done = finished(run(runtime(spec, turns)))
    assert done.messages[2]["content"] == "7"


def test_the_entry_is_announced_as_the_tool_s_own_question() -> None:
    seen: list[RunEvent] = []
    spec = make_spec([agent("desk", "issue_refund")], [refund_tool()])
    turns = {"desk": [calls(call("r1", "issue_refund", {"order_id": "A-2", "amount": 2000}))]}
    suspended(Runtime(spec, model_override=script(turns), observers=[seen.append]).run("go"))
    (added,) = [e for e in seen if isinstance(e, EntryAdded)]
    assert added.entry.reason == "approval" and added.entry.prompt == REFUND_ASK
    assert added.entry.arguments == {"order_id": "A-2", "amount": 900.0}
    assert (added.entry.detail or "").startswith("issue_refund asked for approval itself")


def test_tool_context_approved_defaults_to_false() -> None:
    ctx = ToolContext(run_id="r", call_id="c", agent="a", tool="t")
    assert ctx.approved is False


# -- crash safety ----------------------------------------------------------------------------

CRASH_SPEC = make_spec([agent("desk", "issue_refund")], [refund_tool()])
CRASH_TURNS = {
    "desk": [
        calls(call("r1", "issue_refund", {"order_id": "A-2", "amount": 2000})),
        say("Refunded."),
    ]
}


def drive_refund(store: Any, run_id: str) -> None:
    """What the unkilled process does: run to the tool's question, approve, resume."""
    with Runtime(CRASH_SPEC, model_override=script(CRASH_TURNS), store=store) as rt:
        waiting = rt.run("go", run_id=run_id)
        assert isinstance(waiting, Suspended), waiting
        assert finished(rt.resume(waiting.continuation.approve("r1"))).output == "Refunded."


def tool_log(log: Path) -> list[tuple[str, dict[str, Any], bool]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [(name, arguments, approved) for name, arguments, approved in map(json.loads, lines)]


def refunds(log: Path) -> list[dict[str, Any]]:
    """The refunds that happened: calls that ran approved (the side effect)."""
    return [arguments for _, arguments, approved in tool_log(log) if approved]


def operate_refund(store: RunStore, run_id: str, log: Path) -> RunRecord:
    """Bring a killed run to its end as an operator: start it if it never existed, recover it
    if it was left running, approve what the tool asks; a call cut off by the crash
    (`error`) is answered with the refund's result when the log shows the refund happened,
    else approved to run again (it asks again if it never was approved)."""
    with Runtime(CRASH_SPEC, model_override=script(CRASH_TURNS), store=store) as rt:
        for _ in range(10):
            try:
                record = store.get_run(run_id)
            except UsageError:
                rt.run("go", run_id=run_id)
                continue
            if record.status == "finished":
                return record
            if record.status == "running":
                rt.recover(run_id, force=True)
                continue
            assert record.status == "suspended", record
            waiting = rt.load_run(run_id)
            for entry in waiting.pending():
                if entry.reason == "error" and entry.arguments in refunds(log):
                    waiting = waiting.answer(entry.id, "refunded 900 EUR for A-2")
                else:
                    assert entry.reason in ("approval", "error"), entry
                    waiting = waiting.approve(entry.id)
            rt.resume(waiting)
    raise AssertionError(f"run {run_id} did not finish: {store.get_run(run_id)}")


def killed_refund(url: str, run_id: str, at: int, when: str, log: Path) -> int:
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.environ["CALLCC_TEST_LOG"] = str(log)
            drive_refund(KillingStore(open_store(url), at, when), run_id)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def test_a_run_killed_at_any_write_around_a_tool_s_question_refunds_exactly_once(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = without_server_fsync(store_url)
    store = open_store(url)
    try:
        reference = tmp_path / "reference.log"
        monkeypatch.setenv("CALLCC_TEST_LOG", str(reference))
        counting = KillingStore(store)
        drive_refund(counting, "reference")
        expected = rebuild(*store.snapshot("reference")).frames()[0][1].messages
        assert refunds(reference) == [{"order_id": "A-2", "amount": 900.0}]
        assert len(tool_log(reference)) == 2  # it asked, then it refunded
        for at in range(1, counting.writes + 1):
            for when in ("before", "after"):
                run_id, log = f"kill-{at}-{when}", tmp_path / f"{at}-{when}.log"
                monkeypatch.setenv("CALLCC_TEST_LOG", str(log))
                status = killed_refund(url, run_id, at, when, log)
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
                record = operate_refund(store, run_id, log)
                where = f"killed {when} write {at} of {counting.writes}"
                assert record.output == "Refunded.", where
                assert refunds(log) == [{"order_id": "A-2", "amount": 900.0}], where
                got = rebuild(*store.snapshot(run_id)).frames()[0][1].messages
                assert got == expected, where
    finally:
        store.close()


def test_an_approval_kept_for_a_call_outside_the_open_turn_is_refused_with_its_pointer() -> None:
    from engine import Continuation
    from engine.errors import ContinuationError

    spec = make_spec(
        [agent("desk", "always_asks")],
        [PythonTool(name="always_asks", description="a", ref="asks_tools:always_asks")],
    )
    turns = {"desk": [calls(call("a1", "always_asks", {"order_id": "A-1"}))]}
    rt = runtime(spec, turns)
    data = json.loads(suspended(run(rt)).to_json())
    data["frames"][0]["approved"] = {"nope": "0123"}
    with pytest.raises(ContinuationError) as caught:
        Continuation.from_json(json.dumps(data))
    assert caught.value.pointer == "/frames/0/approved/nope"
    assert "a call of the frame's last assistant message" in str(caught.value)
    data["frames"][0]["approved"] = {"a1": 7}
    with pytest.raises(ContinuationError, match="fingerprint of the entry approved"):
        Continuation.from_json(json.dumps(data))


def test_a_tool_that_asks_inside_a_sub_agent_waits_there_and_runs_once_approved() -> None:
    from builders import sub_agent

    spec = make_spec(
        [agent("boss", "desk"), agent("desk", "issue_refund")],
        [sub_agent("desk"), refund_tool("approve", "edit", "reject")],
    )
    turns = {
        "boss": [calls(call("b1", "desk", {"request": "refund A-2"})), say("boss done")],
        "desk": [
            calls(call("r1", "issue_refund", {"order_id": "A-2", "amount": 2000})),
            say("refunded"),
        ],
    }
    rt = runtime(spec, turns)
    doc = suspended(run(rt))
    [entry] = doc.pending()
    assert (entry.path, entry.reason) == ("boss/desk@b1/r1", "approval")
    edited = doc.edit("boss/desk@b1/r1", {"order_id": "A-2", "amount": 300})
    assert finished(resume(rt, edited)).output == "boss done"
    assert asks_tools.CALLS == [
        ("issue_refund", {"order_id": "A-2", "amount": 2000}, False),
        ("issue_refund", {"order_id": "A-2", "amount": 300}, True),
    ]
