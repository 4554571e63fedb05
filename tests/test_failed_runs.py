"""A run that fails for good on a model call (HTTP 400: a prompt over the server's context)
keeps its continuation up to the failure, resumable once the cause is fixed with an explicit
decision: through the API, in a sub-agent, with a store, and from the CLI over HTTP."""

from __future__ import annotations

import json
import shlex
from io import StringIO
from pathlib import Path

import loop_tools
import pytest
from builders import (
    agent,
    call,
    calls,
    failed,
    finished,
    gated,
    make_spec,
    python_tool,
    resume,
    run,
    runtime,
    say,
    script,
    stopped,
    sub_agent,
)
from openai_server import OpenAICompatServer

from engine.cli import main
from engine.errors import ConflictError, ContinuationError
from engine.runtime import Runtime

TOO_LONG = {"error": {"message": "the prompt exceeds the context size", "transient": False}}
ECHO = make_spec([agent("main", "echo")], [python_tool("echo")])
NESTED = make_spec(
    [agent("lead", "helper"), agent("helper", "echo")],
    [sub_agent("helper"), python_tool("echo")],
)
NESTED_TURNS = {
    "lead": [calls(call("c_help", "helper", {"request": "echo hi"})), say("Lead done.")],
    "helper": [calls(call("c_echo", "echo", {"text": "hi"})), TOO_LONG, say("Helped.")],
}


def test_a_permanent_model_failure_records_an_error_entry_and_resumes_once_fixed() -> None:
    rt = runtime(ECHO, {"main": [TOO_LONG, say("Fixed.")]})

    outcome = failed(run(rt, "hi"))

    assert (
        outcome.reason == "model call of agent 'main' failed: the prompt exceeds the context size"
    )
    assert outcome.resumable
    [entry] = outcome.continuation.pending()
    assert (entry.path, entry.reason, entry.decisions, entry.decision) == (
        "main/error-1",
        "error",
        ("resume", "stop"),
        None,
    )
    assert entry.detail == (
        "model call of agent 'main' failed: the prompt exceeds the context size; "
        "fix the cause, then resume to ask the model again"
    )
    assert finished(resume(rt, outcome.continuation.resume("error-1"))).output == "Fixed."


def test_a_failed_run_resumes_only_with_a_decision_and_can_be_stopped() -> None:
    rt = runtime(
        ECHO, {"main": [calls(call("c1", "echo", {"text": "a"}), text="Working."), TOO_LONG]}
    )
    outcome = failed(run(rt))

    again = rt.resume(outcome.continuation)  # undecided: nothing is asked, the run waits
    assert again.kind == "suspended"
    assert [p.decisions for p in again.continuation.pending()] == [("resume", "stop")]
    assert stopped(resume(rt, again.continuation.stop("error-1"))).output == "Working."
    assert loop_tools.CALLS == [("echo", {"text": "a"})]


def test_a_sub_agent_failing_keeps_the_whole_stack_and_resumes_inside_the_child() -> None:
    rt = runtime(NESTED, NESTED_TURNS)

    outcome = failed(run(rt, "go"))

    assert outcome.reason == (
        "sub-agent 'helper' (call c_help) failed: model call of agent 'helper' failed: "
        "the prompt exceeds the context size"
    )
    assert outcome.resumable
    assert [(p.path, p.reason) for p in outcome.continuation.pending()] == [
        ("lead/helper@c_help/error-1", "error")
    ]
    done = finished(resume(rt, outcome.continuation.resume("error-1")))
    assert done.output == "Lead done."
    assert loop_tools.CALLS == [("echo", {"text": "hi"})]  # the child's done call never reran


def test_a_failure_that_left_nothing_to_resume_stays_unresumable() -> None:
    rt = runtime(ECHO, {"main": [say("Half an answ", finish_reason="length")]})
    outcome = failed(run(rt))

    assert not outcome.resumable
    assert outcome.continuation.pending() == []
    with pytest.raises(ContinuationError, match="only a failed model call can be resumed"):
        rt.resume(outcome.continuation)


def test_with_a_store_a_failed_run_stays_failed_and_is_claimed_like_a_suspended_one(
    store_url: str,
) -> None:
    spec = NESTED
    with Runtime(spec, model_override=script(NESTED_TURNS), store=store_url) as rt:
        outcome = failed(rt.run("go", run_id="r-failed"))
        assert rt.store is not None
        record = rt.store.get_run("r-failed")
        assert (record.status, record.output) == ("failed", outcome.reason)
        assert record.nonce == outcome.continuation.nonce

        loaded = rt.load_run("r-failed")
        assert [p.path for p in loaded.pending()] == ["lead/helper@c_help/error-1"]
        decided = loaded.resume("error-1")
        assert finished(rt.resume(decided)).output == "Lead done."
        assert rt.store.get_run("r-failed").status == "finished"
        with pytest.raises(ConflictError):
            rt.resume(decided)
    assert loop_tools.CALLS == [("echo", {"text": "hi"})]


# -- the CLI over the loopback OpenAI server -------------------------------------------------

OPENAI_YAML = """\
spec_version: 1
name: longctx
allow_modules: [loop_tools]
models:
  gpt:
    kind: openai
    model: test-model
    base_url: BASE_URL
    api_key_env: CALLCC_TEST_API_KEY
    max_retries: 0
    timeout: 10
tools:
  echo:
    kind: python
    ref: loop_tools:echo
    description: Echo text.
agents:
  main:
    description: Answers.
    model: gpt
    instructions: Answer.
    tools: [echo]
entrypoint: main
"""
CONTEXT_ERROR = "the request exceeds the available context size (4096 tokens)"


@pytest.fixture
def openai_spec(
    openai_server: OpenAICompatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("CALLCC_TEST_API_KEY", "test-key")
    spec = tmp_path / "longctx.yaml"
    spec.write_text(OPENAI_YAML.replace("BASE_URL", openai_server.base_url), encoding="utf-8")
    return spec


def callcc(*argv: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_without_a_store_writes_the_failed_state_and_resumes_it_once_fixed(
    openai_server: OpenAICompatServer, openai_spec: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    openai_server.push(tool_calls=[{"id": "c1", "name": "echo", "arguments": {"text": "a"}}])
    openai_server.push(status=400, error=CONTEXT_ERROR)

    code, out, err = callcc("run", str(openai_spec), "-p", "hi", "--state", str(state), "-q")

    assert code == 1
    assert out == ""
    assert "callcc: run failed: model call of agent 'main' failed: model 'test-model'" in err
    assert f"HTTP 400: Error code: 400 - {CONTEXT_ERROR}" in err
    assert state.exists()
    code, out, _ = callcc("pending", str(state), "--format", "json")
    [entry] = json.loads(out)
    assert (code, entry["reason"], entry["decisions"]) == (3, "error", ["resume", "stop"])

    # the server's context was raised: the same request now succeeds
    openai_server.push(text="Done.")
    code, out, err = callcc("resume", str(state), "--resume", "error-1", "-q")

    assert (code, out) == (0, "Done.\n"), err
    assert not state.exists()
    assert loop_tools.CALLS == [("echo", {"text": "a"})]
    assert openai_server.requests[2]["messages"] == openai_server.requests[1]["messages"]


def test_cli_with_a_store_keeps_the_failed_run_and_resumes_it_once_fixed(
    openai_server: OpenAICompatServer, openai_spec: Path, store_url: str, tmp_path: Path
) -> None:
    openai_server.push(status=400, error=CONTEXT_ERROR)
    store = ("--store", store_url)

    code, out, err = callcc(
        "run", str(openai_spec), "-p", "hi", "--run-id", "r-400", "--format", "json", *store
    )

    assert code == 1
    data = json.loads(out)
    assert (data["status"], data["state_file"], data["run_id"]) == ("failed", None, "r-400")
    assert [(p["id"], p["reason"]) for p in data["pending"]] == [("error-1", "error")]
    assert (
        "callcc: the failed run r-400 is kept in the store: once the cause is fixed, resume it "
        f"with `callcc resume r-400 --store {shlex.quote(store_url)} --resume main/error-1`"
    ) in err
    assert not list(tmp_path.glob("callcc-state*.json"))
    code, out, _ = callcc("runs", "show", "r-400", "--format", "json", *store)
    assert json.loads(out)["status"] == "failed"

    openai_server.push(text="Done.")
    code, out, err = callcc("resume", "r-400", "--resume", "error-1", "-q", *store)

    assert (code, out) == (0, "Done.\n"), err
    code, out, _ = callcc("runs", "show", "r-400", "--format", "json", *store)
    assert json.loads(out)["status"] == "finished"


def test_a_call_approved_before_the_failure_is_not_asked_for_again() -> None:
    """The decision made before the failure is not asked again after the resume."""
    spec = make_spec([agent("bank", "transfer")], [gated("transfer")], name="bank")
    rt = runtime(
        spec,
        {
            "bank": [
                calls(call("t1", "transfer", {"to": "bob", "amount": 5})),
                TOO_LONG,
                say("Paid."),
            ]
        },
    )
    waiting = rt.run("pay")
    assert waiting.kind == "suspended"
    outcome = failed(resume(rt, waiting.continuation.approve("t1")))
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]
    assert finished(resume(rt, outcome.continuation.resume("error-1"))).output == "Paid."
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]
