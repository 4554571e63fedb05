"""Every suspension reason and every decision: what runs, what never runs, what the model sees."""

from __future__ import annotations

import json

import loop_tools
import pytest
from builders import (
    agent,
    assistant,
    call,
    calls,
    finished,
    gated,
    make_spec,
    pending_ids,
    python_tool,
    resume,
    run,
    runtime,
    say,
    stopped,
    suspended,
    tool_result,
    user,
)

from engine.continuation import Continuation
from engine.errors import DecisionError
from engine.runtime import Suspended
from engine.spec.model import ExternalTool, Limits, SuspendRules

PAY = make_spec(
    [agent("bank", "echo", "transfer")],
    [python_tool("echo"), gated("transfer", "approve", "edit", "reject")],
)
BOB = {"to": "bob", "amount": 10}
ONE_TRANSFER = {"bank": [calls(call("t1", "transfer", BOB)), say("Done.")]}
RECEIPT = '{"ok": true, "to": "bob", "amount": 10}'


# -- approval ------------------------------------------------------------------------------


def test_an_approval_tool_suspends_before_it_runs() -> None:
    continuation = suspended(run(runtime(PAY, ONE_TRANSFER)))

    [entry] = continuation.pending()
    assert entry.id == "t1"
    assert entry.path == "bank/t1"
    assert entry.reason == "approval"
    assert entry.tool == "transfer"
    assert entry.arguments == BOB
    assert entry.decisions == ("approve", "edit", "reject")
    assert entry.decision is None
    assert loop_tools.CALLS == []


def test_approve_runs_the_tool_exactly_once() -> None:
    rt = runtime(PAY, ONE_TRANSFER)
    continuation = suspended(run(rt, "pay bob"))

    outcome = finished(resume(rt, continuation.approve("t1")))

    assert loop_tools.CALLS == [("transfer", BOB)]
    assert outcome.messages == [
        user("pay bob"),
        assistant("", ("t1", "transfer", BOB)),
        tool_result("t1", RECEIPT),
        assistant("Done."),
    ]


def test_reject_never_runs_the_tool_and_tells_the_model_why() -> None:
    rt = runtime(PAY, ONE_TRANSFER)
    continuation = suspended(run(rt))

    outcome = finished(resume(rt, continuation.reject("t1", "bob is not a customer")))

    assert loop_tools.CALLS == []
    assert outcome.messages[2] == tool_result(
        "t1", "rejected: the call was not executed (bob is not a customer)"
    )
    assert outcome.output == "Done."


def test_edit_runs_the_tool_with_the_edited_arguments_and_the_model_sees_the_edited_call() -> None:
    rt = runtime(PAY, ONE_TRANSFER)
    continuation = suspended(run(rt, "pay bob"))
    edited = {"to": "bob", "amount": 7}

    outcome = finished(resume(rt, continuation.edit("t1", edited)))

    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 7})]
    assert outcome.messages == [
        user("pay bob"),
        assistant("", ("t1", "transfer", edited)),
        tool_result("t1", '{"ok": true, "to": "bob", "amount": 7}'),
        assistant("Done."),
    ]


def test_an_edit_that_violates_the_parameters_is_refused_at_resume_and_nothing_runs() -> None:
    rt = runtime(PAY, ONE_TRANSFER)
    continuation = suspended(run(rt))

    with pytest.raises(DecisionError, match=r"edit of t1: .*'lots' is not of type 'integer'"):
        rt.resume(continuation.edit("t1", {"to": "bob", "amount": "lots"}))

    assert loop_tools.CALLS == []


# -- external results ----------------------------------------------------------------------

ASK = make_spec(
    [agent("main", "ask_expert", "wait_for")],
    [
        ExternalTool(
            name="ask_expert",
            description="Ask a person.",
            parameters={"type": "object", "properties": {"q": {"type": "string"}}},
        ),
        python_tool("wait_for", ref="loop_tools:later"),
    ],
)


def test_an_external_tool_suspends_and_answer_supplies_its_result() -> None:
    rt = runtime(ASK, {"main": [calls(call("x1", "ask_expert", {"q": "why?"})), say("Thanks.")]})
    continuation = suspended(run(rt))

    [entry] = continuation.pending()
    assert (entry.reason, entry.tool, entry.arguments) == ("external", "ask_expert", {"q": "why?"})
    assert entry.decisions == ("answer", "reject")
    outcome = finished(resume(rt, continuation.answer("x1", {"because": 42})))

    assert outcome.messages[2] == tool_result("x1", '{"because": 42}')


def test_an_external_tool_can_be_rejected() -> None:
    rt = runtime(ASK, {"main": [calls(call("x1", "ask_expert", {"q": "why?"})), say("Ok.")]})
    continuation = suspended(run(rt))

    outcome = finished(resume(rt, continuation.reject("x1", "nobody knows")))

    assert outcome.messages[2] == tool_result(
        "x1", "rejected: the call was not executed (nobody knows)"
    )


def test_a_python_tool_raising_deferred_waits_for_an_answer_given_as_text() -> None:
    rt = runtime(ASK, {"main": [calls(call("d1", "wait_for", {"topic": "rates"})), say("Ok.")]})
    continuation = suspended(run(rt))

    [entry] = continuation.pending()
    assert entry.reason == "external"
    assert entry.detail == "waiting for a result about rates"
    outcome = finished(resume(rt, continuation.answer("d1", "rates are 3%")))

    assert outcome.messages[2] == tool_result("d1", "rates are 3%")
    assert loop_tools.CALLS == [("later", {"topic": "rates"})]  # not run again on resume


# -- turn limits ---------------------------------------------------------------------------


def _limited(**limits: int) -> object:
    return make_spec([agent("bank", "echo", limits=Limits(**limits))], [python_tool("echo")])


def test_max_turns_suspends_and_extend_grants_more_turns() -> None:
    rt = runtime(
        _limited(max_turns=1),
        {"bank": [calls(call("c1", "echo", {"text": "a"}), text="Step one."), say("All done.")]},
    )
    continuation = suspended(run(rt))

    [entry] = continuation.pending()
    assert (entry.id, entry.reason, entry.decisions) == (
        "limit-1",
        "turn_limit",
        ("extend", "stop"),
    )
    assert entry.detail is not None and entry.detail.startswith("max_turns:")
    outcome = finished(resume(rt, continuation.extend("limit-1", 1)))

    assert outcome.output == "All done."
    assert loop_tools.CALLS == [("echo", {"text": "a"})]


def test_max_turns_stop_finishes_with_the_reply_so_far() -> None:
    rt = runtime(
        _limited(max_turns=1),
        {"bank": [calls(call("c1", "echo", {"text": "a"}), text="Step one."), say("unused")]},
    )
    continuation = suspended(run(rt))

    outcome = stopped(resume(rt, continuation.stop("limit-1")))

    assert outcome.output == "Step one."
    assert outcome.messages[-1] == tool_result("c1", "echo: a")


def test_a_reply_with_more_calls_than_max_tool_calls_suspends_before_any_runs() -> None:
    many = [call(f"c{i}", "echo", {"text": str(i)}) for i in range(50)]
    rt = runtime(_limited(max_tool_calls=10), {"bank": [calls(*many), say("Fifty.")]})
    continuation = suspended(run(rt))

    [entry] = continuation.pending()
    assert entry.reason == "turn_limit"
    assert entry.detail == "max_tool_calls: 0 used of 10, the model asks for 50 more"
    assert loop_tools.CALLS == []

    outcome = finished(resume(rt, continuation.extend(entry.id, 40)))
    assert len(loop_tools.CALLS) == 50
    assert [m["tool_call_id"] for m in outcome.messages if m["role"] == "tool"] == [
        f"c{i}" for i in range(50)
    ]


def test_an_extension_too_small_for_the_reply_suspends_again() -> None:
    many = [call(f"c{i}", "echo", {"text": str(i)}) for i in range(5)]
    rt = runtime(_limited(max_tool_calls=2), {"bank": [calls(*many), say("Five.")]})
    continuation = suspended(run(rt))

    again = suspended(resume(rt, continuation.extend("limit-1", 1)))

    assert pending_ids(again) == ["bank/limit-2"]
    assert loop_tools.CALLS == []


# -- pauses --------------------------------------------------------------------------------


def test_every_turns_pauses_and_resume_does_not_pause_again_at_once() -> None:
    spec = make_spec(
        [agent("main", "echo", suspend=SuspendRules(every_turns=1))], [python_tool("echo")]
    )
    rt = runtime(spec, {"main": [calls(call("c1", "echo", {"text": "a"})), say("Done.")]})
    continuation = suspended(run(rt))

    [entry] = continuation.pending()
    assert (entry.id, entry.reason, entry.decisions) == ("pause-1", "pause", ("resume", "stop"))
    assert entry.detail == "every_turns: paused after 1 turns"
    assert loop_tools.CALLS == [("echo", {"text": "a"})]

    # Same runtime, same process: the counters live in the document, so no pause at once.
    outcome = finished(resume(rt, continuation.resume("pause-1")))
    assert outcome.output == "Done."
    assert loop_tools.CALLS == [("echo", {"text": "a"})]


def test_a_pause_can_stop_the_agent() -> None:
    spec = make_spec(
        [agent("main", "echo", suspend=SuspendRules(every_turns=1))], [python_tool("echo")]
    )
    rt = runtime(spec, {"main": [calls(call("c1", "echo", {"text": "a"}), text="Half."), say("x")]})

    outcome = stopped(resume(rt, suspended(run(rt)).stop("pause-1")))

    assert outcome.output == "Half."


BEFORE = make_spec(
    [agent("main", "echo", suspend=SuspendRules(before_tools=("echo",)))], [python_tool("echo")]
)


def test_before_tools_pauses_on_the_call_and_resume_runs_it() -> None:
    rt = runtime(BEFORE, {"main": [calls(call("c1", "echo", {"text": "a"})), say("Done.")]})
    continuation = suspended(run(rt))

    [entry] = continuation.pending()
    assert (entry.id, entry.reason, entry.decisions) == ("c1", "pause", ("resume", "reject"))
    assert loop_tools.CALLS == []

    outcome = finished(resume(rt, continuation.resume("c1")))
    assert loop_tools.CALLS == [("echo", {"text": "a"})]
    assert outcome.messages[2] == tool_result("c1", "echo: a")


def test_before_tools_reject_skips_the_call() -> None:
    rt = runtime(BEFORE, {"main": [calls(call("c1", "echo", {"text": "a"})), say("Done.")]})

    outcome = finished(resume(rt, suspended(run(rt)).reject("c1", "not now")))

    assert loop_tools.CALLS == []
    assert outcome.messages[2] == tool_result("c1", "rejected: the call was not executed (not now)")


# -- tool errors ---------------------------------------------------------------------------

FLAKY = make_spec([agent("main", "flaky")], [python_tool("flaky", on_error="suspend")])
"""`on_error: suspend`: these tests are about the `error` entry a person decides on (the
default, `model`, is tests/test_on_error.py's)."""
FLAKY_SCRIPT = {"main": [calls(call("f1", "flaky", {"key": "k"})), say("Done.")]}


def test_a_tool_exception_with_on_error_suspend_suspends_with_reason_error() -> None:
    continuation = suspended(run(runtime(FLAKY, FLAKY_SCRIPT)))

    [entry] = continuation.pending()
    assert (entry.id, entry.reason, entry.decisions) == (
        "f1",
        "error",
        ("approve", "answer", "reject"),
    )
    assert entry.detail is not None
    assert entry.detail.startswith("tool flaky failed: ConnectionError: upstream unavailable")
    [(_, frame)] = continuation.frames()
    assert frame.ledger == {"f1": "failed"}


def test_approve_after_a_tool_error_retries_the_call() -> None:
    rt = runtime(FLAKY, FLAKY_SCRIPT)

    outcome = finished(resume(rt, suspended(run(rt)).approve("f1")))

    assert loop_tools.CALLS == [("flaky", {"key": "k"}), ("flaky", {"key": "k"})]
    assert outcome.messages[2] == tool_result("f1", "ok k")


def test_answer_after_a_tool_error_supplies_the_result_without_running_it() -> None:
    rt = runtime(FLAKY, FLAKY_SCRIPT)

    outcome = finished(resume(rt, suspended(run(rt)).answer("f1", "cached value")))

    assert loop_tools.CALLS == [("flaky", {"key": "k"})]
    assert outcome.messages[2] == tool_result("f1", "cached value")


def test_reject_after_a_tool_error_skips_the_call() -> None:
    rt = runtime(FLAKY, FLAKY_SCRIPT)

    outcome = finished(resume(rt, suspended(run(rt)).reject("f1", "give up")))

    assert loop_tools.CALLS == [("flaky", {"key": "k"})]
    assert outcome.messages[2] == tool_result("f1", "rejected: the call was not executed (give up)")


# -- several calls in one turn -------------------------------------------------------------


def test_calls_needing_no_approval_run_before_the_suspension_and_are_not_rerun() -> None:
    rt = runtime(
        PAY,
        {
            "bank": [
                calls(call("e1", "echo", {"text": "note"}), call("t1", "transfer", BOB)),
                say("ok"),
            ]
        },
    )
    continuation = suspended(run(rt))

    assert loop_tools.CALLS == [("echo", {"text": "note"})]
    [(_, frame)] = continuation.frames()
    assert frame.ledger == {"e1": "done", "t1": "pending"}
    assert frame.results == {"e1": "echo: note"}

    outcome = finished(resume(rt, continuation.approve("t1")))
    assert loop_tools.CALLS == [("echo", {"text": "note"}), ("transfer", BOB)]
    assert outcome.messages[2:4] == [tool_result("e1", "echo: note"), tool_result("t1", RECEIPT)]


def test_approving_one_of_two_runs_it_suspends_on_the_other_and_never_reruns_it() -> None:
    carol = {"to": "carol", "amount": 3}
    rt = runtime(
        PAY,
        {"bank": [calls(call("t1", "transfer", BOB), call("t2", "transfer", carol)), say("ok")]},
    )
    continuation = suspended(run(rt))
    assert pending_ids(continuation) == ["bank/t1", "bank/t2"]

    second = suspended(resume(rt, continuation.approve("t1")))

    assert loop_tools.CALLS == [("transfer", BOB)]
    assert pending_ids(second) == ["bank/t2"]
    [(_, frame)] = second.frames()
    assert frame.results == {"t1": RECEIPT}

    outcome = finished(resume(rt, second.approve("t2")))
    assert loop_tools.CALLS == [("transfer", BOB), ("transfer", {"to": "carol", "amount": 3})]
    assert outcome.messages[2:4] == [
        tool_result("t1", RECEIPT),
        tool_result("t2", '{"ok": true, "to": "carol", "amount": 3}'),
    ]


# -- decision errors -----------------------------------------------------------------------

TWO_GATED = make_spec([agent("bank", "transfer")], [gated("transfer")])
TWO_SCRIPT = {"bank": [calls(call("t2", "transfer", BOB), call("t1", "transfer", BOB)), say("ok")]}


def test_a_decision_the_entry_does_not_allow_is_refused_listing_the_pending_ids() -> None:
    continuation = suspended(run(runtime(TWO_GATED, TWO_SCRIPT)))

    with pytest.raises(DecisionError) as caught:
        continuation.edit("t1", {"to": "eve", "amount": 1})

    assert "bank/t1 (approval) does not allow 'edit'; allowed: approve, reject" in str(caught.value)
    assert caught.value.pending_ids == ("bank/t1", "bank/t2")


def test_an_unknown_id_is_refused_listing_the_pending_ids_sorted() -> None:
    continuation = suspended(run(runtime(TWO_GATED, TWO_SCRIPT)))

    with pytest.raises(DecisionError) as caught:
        continuation.approve("t9")

    assert str(caught.value) == "no pending call 't9'; pending: bank/t1, bank/t2"
    assert caught.value.pending_ids == ("bank/t1", "bank/t2")


def test_deciding_the_same_entry_twice_is_refused() -> None:
    continuation = suspended(run(runtime(TWO_GATED, TWO_SCRIPT))).approve("t1")

    with pytest.raises(DecisionError, match=r"bank/t1 is already decided \(approve\)"):
        continuation.reject("t1")


def test_a_decision_returns_a_new_continuation_and_leaves_the_original_unchanged() -> None:
    continuation = suspended(run(runtime(TWO_GATED, TWO_SCRIPT)))
    before = continuation.to_json()

    decided = continuation.approve("t1").reject("t2", "no")

    assert continuation.to_json() == before
    assert [p.decision for p in continuation.pending()] == [None, None]
    assert [(p.id, p.decision) for p in decided.pending()] == [("t2", "reject"), ("t1", "approve")]
    assert json.loads(decided.to_json())["frames"][0]["pending"][1]["decision"] == {
        "kind": "approve",
        "fingerprint": continuation.pending()[1].fingerprint,
    }


def test_approve_all_approves_every_undecided_entry_that_allows_it() -> None:
    rt = runtime(TWO_GATED, TWO_SCRIPT)

    finished(resume(rt, suspended(run(rt)).approve_all()))

    assert loop_tools.CALLS == [("transfer", BOB), ("transfer", BOB)]


def test_the_every_turns_pause_counter_survives_the_json_document() -> None:
    """`pause_turns` must be in the document, or a run resumed from JSON (another process)
    pauses later than the same run resumed in memory."""
    spec = make_spec(
        [agent("main", "echo", "transfer", suspend=SuspendRules(every_turns=2))],
        [python_tool("echo"), gated("transfer")],
    )
    turns = {
        "main": [
            calls(call("t1", "transfer", BOB)),
            calls(call("e1", "echo", {"text": "a"})),
            say("Done."),
        ]
    }
    rt = runtime(spec, turns)
    decided = suspended(run(rt)).approve("t1")

    in_memory = suspended(rt.resume(decided))
    from_json = runtime(spec, turns).resume(Continuation.from_json(decided.to_json()))

    assert pending_ids(in_memory) == ["main/pause-1"]
    assert isinstance(from_json, Suspended), from_json
    assert pending_ids(from_json.continuation) == ["main/pause-1"]
