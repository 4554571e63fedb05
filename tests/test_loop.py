"""The agent loop: model turn -> tool calls -> model turn, and how each kind of turn ends."""

from __future__ import annotations

import loop_tools
import pytest
from builders import (
    agent,
    assistant,
    call,
    calls,
    failed,
    finished,
    make_spec,
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

ECHO_SPEC = make_spec(
    [agent("main", "echo", "lookup")], [python_tool("echo"), python_tool("lookup")]
)


def test_a_text_reply_finishes_the_run_with_that_text() -> None:
    outcome = finished(run(runtime(ECHO_SPEC, {"main": [say("Hello.")]}), "hi"))

    assert outcome.output == "Hello."
    assert outcome.messages == [user("hi"), assistant("Hello.")]
    assert loop_tools.CALLS == []


def test_a_python_tool_runs_and_the_whole_transcript_is_recorded() -> None:
    rt = runtime(
        ECHO_SPEC,
        {"main": [calls(call("c1", "echo", {"text": "ping"}), text="Checking."), say("Pong.")]},
    )

    outcome = finished(run(rt, "ping it"))

    assert outcome.output == "Pong."
    assert outcome.messages == [
        user("ping it"),
        assistant("Checking.", ("c1", "echo", {"text": "ping"})),
        tool_result("c1", "echo: ping"),
        assistant("Pong."),
    ]
    assert loop_tools.CALLS == [("echo", {"text": "ping"})]


def test_calls_of_one_turn_all_run_and_their_results_follow_in_call_order() -> None:
    rt = runtime(
        ECHO_SPEC,
        {
            "main": [
                calls(call("c1", "echo", {"text": "one"}), call("c2", "echo", {"text": "two"})),
                say("Both."),
            ]
        },
    )

    outcome = finished(run(rt))

    assert outcome.messages[2:4] == [
        tool_result("c1", "echo: one"),
        tool_result("c2", "echo: two"),
    ]
    # They run concurrently, so the order they start in is not promised; each ran once.
    assert sorted(loop_tools.CALLS, key=str) == [
        ("echo", {"text": "one"}),
        ("echo", {"text": "two"}),
    ]


@pytest.mark.parametrize(
    ("name", "arguments", "message_prefix"),
    [
        pytest.param(
            "nope", {}, "error: unknown tool 'nope'; available tools: echo, lookup", id="unknown"
        ),
        pytest.param(
            "echo", '{"text": ', "error: the arguments are not valid JSON (", id="bad-json"
        ),
        pytest.param(
            "echo",
            {"text": 5},
            "error: the arguments do not match the parameters of echo at text: "
            "5 is not of type 'string'",
            id="schema",
        ),
        pytest.param(
            "echo",
            {},
            "error: the arguments do not match the parameters of echo: "
            "'text' is a required property",
            id="missing",
        ),
    ],
)
def test_a_call_that_cannot_run_goes_back_to_the_model_as_an_error_and_the_run_continues(
    name: str, arguments: object, message_prefix: str
) -> None:
    rt = runtime(ECHO_SPEC, {"main": [calls(call("c1", name, arguments)), say("Sorry.")]})

    outcome = finished(run(rt))

    assert outcome.output == "Sorry."
    [message] = [m for m in outcome.messages if m["role"] == "tool"]
    assert message["tool_call_id"] == "c1"
    assert message["content"].startswith(message_prefix), message["content"]
    assert loop_tools.CALLS == []


def test_a_refused_call_is_recorded_as_failed_in_the_ledger() -> None:
    # A deferred call beside it suspends the run, so the ledger of the turn is visible.
    rt = runtime(
        make_spec(
            [agent("main", "echo", "ask")],
            [python_tool("echo"), python_tool("ask", ref="loop_tools:later")],
        ),
        {"main": [calls(call("bad", "nope"), call("ext", "ask", {"topic": "t"})), say("ok")]},
    )

    [(_, frame)] = suspended(run(rt)).frames()

    assert frame.ledger == {"bad": "failed", "ext": "pending"}
    assert frame.results == {"bad": "error: unknown tool 'nope'; available tools: ask, echo"}


def test_finish_reason_length_fails_the_run_naming_the_reason() -> None:
    rt = runtime(ECHO_SPEC, {"main": [say("Half an answ", finish_reason="length")]})

    outcome = failed(run(rt))

    assert "finish_reason 'length'" in outcome.reason
    assert "incomplete" in outcome.reason


def test_content_filter_fails_the_run_too() -> None:
    rt = runtime(ECHO_SPEC, {"main": [say("", finish_reason="content_filter")]})

    assert "'content_filter'" in failed(run(rt)).reason


def test_a_call_past_the_end_of_the_script_fails_the_run_loudly() -> None:
    rt = runtime(ECHO_SPEC, {"main": [calls(call("c1", "echo", {"text": "x"}))]})

    outcome = failed(run(rt))

    assert "asked for turn 2 of agent 'main' but the script has only 1" in outcome.reason


def test_a_transient_model_error_suspends_and_resume_carries_on() -> None:
    rt = runtime(
        ECHO_SPEC,
        {"main": [{"error": {"message": "rate limited", "transient": True}}, say("Back.")]},
    )

    continuation = suspended(run(rt, "hi"))

    [entry] = continuation.pending()
    assert (entry.id, entry.reason, entry.decisions) == ("error-1", "error", ("resume", "stop"))
    assert entry.detail == "model call failed: rate limited"
    outcome = finished(resume(rt, continuation.resume("error-1")))
    assert outcome.output == "Back."
    assert outcome.messages == [user("hi"), assistant("Back.")]


def test_stop_after_a_transient_model_error_ends_with_the_reply_so_far() -> None:
    rt = runtime(
        ECHO_SPEC,
        {
            "main": [
                calls(call("c1", "echo", {"text": "a"}), text="Working."),
                {"error": {"message": "overloaded", "transient": True}},
            ]
        },
    )

    continuation = suspended(run(rt))

    outcome = stopped(resume(rt, continuation.stop("error-1")))
    assert outcome.output == "Working."


def test_a_permanent_model_error_fails_the_run_with_its_message() -> None:
    rt = runtime(ECHO_SPEC, {"main": [{"error": {"message": "bad key", "transient": False}}]})

    outcome = failed(run(rt))

    assert outcome.reason == "model call of agent 'main' failed: bad key"


def test_a_tool_context_carries_the_idempotency_key_run_id_and_call_id() -> None:
    rt = runtime(ECHO_SPEC, {"main": [calls(call("call_7", "lookup", {"key": "k"})), say("ok")]})

    outcome = finished(run(rt, run_id="run-42"))

    assert outcome.messages[2] == tool_result("call_7", "k@run-42:call_7")
    assert loop_tools.CALLS == [("lookup", {"key": "k"})]
