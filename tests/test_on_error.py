"""What a python tool's exception does, by its `on_error`: `model` (the default) hands the
error to the model as the call's result so it can correct itself, `suspend` asks a person
(an `error` entry), `fail` ends the run; `RetryWithModel` tells the model exactly what the
tool says, whatever the policy. A process that died mid-call is no tool error: that call
waits for a person whatever the policy says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asks_tools
import pytest
from asks_tools import ProcessDied
from builders import (
    agent,
    assistant,
    call,
    calls,
    failed,
    finished,
    make_spec,
    run,
    runtime,
    say,
    script,
    suspended,
    tool_result,
    user,
)

from engine.cli import main
from engine.events import RunEvent, ToolErrorToModel, ToolFinished
from engine.runtime import Runtime, Suspended
from engine.spec import load_spec
from engine.spec.model import OnError, PythonTool, Spec
from engine.store import RunStore

FIND_ERROR = (
    "error: find_order failed: KeyError: 'A-9'; correct the arguments and call it again, "
    "or go on without it"
)


@pytest.fixture(autouse=True)
def _fresh_log() -> Iterator[None]:
    asks_tools.CALLS.clear()
    yield
    asks_tools.CALLS.clear()


def tool(name: str, on_error: OnError | None = None, timeout: float | None = None) -> PythonTool:
    if on_error is None:  # the spec says nothing: the default
        return PythonTool(name=name, description=name, ref=f"asks_tools:{name}", timeout=timeout)
    return PythonTool(
        name=name,
        description=name,
        ref=f"asks_tools:{name}",
        on_error=on_error,
        timeout=timeout,
    )


def one_tool(t: PythonTool) -> Spec:
    return make_spec([agent("desk", t.name)], [t])


FIND_TURNS = {
    "desk": [
        calls(call("f1", "find_order", {"order_id": "A-9"})),
        calls(call("f2", "find_order", {"order_id": "A-1"})),
        say("Order A-1 costs 40 EUR."),
    ]
}


def test_the_default_hands_the_error_to_the_model_which_corrects_itself() -> None:
    seen: list[RunEvent] = []
    rt = Runtime(
        one_tool(tool("find_order")), model_override=script(FIND_TURNS), observers=[seen.append]
    )
    done = finished(run(rt))
    assert done.messages == [
        user("go"),
        assistant("", ("f1", "find_order", {"order_id": "A-9"})),
        tool_result("f1", FIND_ERROR),
        assistant("", ("f2", "find_order", {"order_id": "A-1"})),
        tool_result("f2", "order A-1: 40 EUR"),
        {"role": "assistant", "content": "Order A-1 costs 40 EUR."},
    ]
    [to_model] = [e for e in seen if isinstance(e, ToolErrorToModel)]
    assert (to_model.kind, to_model.call_id, to_model.tool) == (
        "tool_error_to_model",
        "f1",
        "find_order",
    )
    assert (to_model.error, to_model.retry, to_model.path) == (FIND_ERROR, False, "desk")
    finishes = [(e.call_id, e.status) for e in seen if isinstance(e, ToolFinished)]
    assert finishes == [("f1", "failed"), ("f2", "done")]


def test_the_spec_default_is_model() -> None:
    assert PythonTool(name="t", description="t", ref="m:f").on_error == "model"


def test_on_error_model_keeps_the_failed_call_in_the_ledger() -> None:
    spec = make_spec(
        [agent("desk", "find_order", "issue_refund")],
        [tool("find_order"), tool("issue_refund")],
    )
    turns = {
        "desk": [
            calls(
                call("f1", "find_order", {"order_id": "A-9"}),
                call("r1", "issue_refund", {"order_id": "A-2", "amount": 500}),
            ),
            say("ok"),
        ]
    }
    doc = suspended(run(runtime(spec, turns)))  # the refund asks; the lookup's error is kept
    [(_, frame)] = doc.frames()
    assert frame.ledger == {"f1": "failed", "r1": "pending"}
    assert frame.results == {"f1": FIND_ERROR}


def test_on_error_suspend_asks_a_person_as_before() -> None:
    doc = suspended(run(runtime(one_tool(tool("find_order", "suspend")), FIND_TURNS)))
    [entry] = doc.pending()
    assert (entry.id, entry.reason, entry.decisions) == (
        "f1",
        "error",
        ("approve", "answer", "reject"),
    )
    assert entry.detail == (
        "tool find_order failed: KeyError: 'A-9'; approve to retry, answer to supply the "
        "result, reject to skip"
    )


def test_on_error_fail_ends_the_run() -> None:
    outcome = failed(run(runtime(one_tool(tool("find_order", "fail")), FIND_TURNS)))
    assert outcome.reason == "tool find_order failed: KeyError: 'A-9' (on_error: fail)"
    assert not outcome.resumable
    [(_, frame)] = outcome.continuation.frames()
    assert frame.ledger == {"f1": "failed"}


def test_the_timeout_of_an_idempotent_tool_goes_to_the_model() -> None:
    turns = {"desk": [calls(call("s1", "stalls", {"order_id": "A-1"})), say("gave up")]}
    stalls = PythonTool(
        name="stalls", description="s", ref="asks_tools:stalls", timeout=0.05, idempotent=True
    )
    done = finished(run(runtime(one_tool(stalls), turns)))
    assert done.messages[2] == tool_result(
        "s1",
        "error: stalls failed: timed out after 0.05 s; correct the arguments and call it "
        "again, or go on without it",
    )


def test_the_timeout_of_a_tool_that_is_not_idempotent_asks_a_person_not_the_model() -> None:
    """It may still run, or have taken effect: a model told to try again might do it twice."""
    turns = {"desk": [calls(call("s1", "stalls", {"order_id": "A-1"})), say("gave up")]}
    doc = suspended(run(runtime(one_tool(tool("stalls", timeout=0.05)), turns)))
    [entry] = doc.pending()
    assert (entry.id, entry.reason) == ("s1", "error")
    assert entry.detail == (
        "tool stalls failed: timed out after 0.05 s; it is not idempotent and may have taken "
        "effect; approve to retry, answer to supply the result, reject to skip"
    )
    failing = runtime(one_tool(tool("stalls", "fail", timeout=0.05)), turns)
    assert failed(run(failing)).reason == (
        "tool stalls failed: timed out after 0.05 s (on_error: fail)"
    )


@pytest.mark.parametrize("policy", ["model", "suspend", "fail"])
def test_retry_with_model_tells_the_model_exactly_the_tool_s_words_whatever_the_policy(
    policy: OnError,
) -> None:
    seen: list[RunEvent] = []
    turns = {
        "desk": [
            calls(call("c1", "check_iban", {"iban": "FR76"})),
            calls(call("c2", "check_iban", {"iban": "DE89"})),
            say("valid"),
        ]
    }
    spec = one_tool(tool("check_iban", policy))
    done = finished(run(Runtime(spec, model_override=script(turns), observers=[seen.append])))
    words = "'FR76' is no German IBAN: it must start with DE; ask the user"
    assert done.messages[2] == tool_result("c1", words)
    assert done.messages[4] == tool_result("c2", "valid")
    [to_model] = [e for e in seen if isinstance(e, ToolErrorToModel)]
    assert (to_model.error, to_model.retry) == (words, True)


@pytest.mark.parametrize("policy", ["model", "fail"])
def test_a_process_that_died_mid_call_is_no_tool_error_it_waits_for_a_person(
    store: RunStore, policy: OnError
) -> None:
    spec = one_tool(tool("dies", policy))
    turns = {"desk": [calls(call("d1", "dies", {"order_id": "A-1"})), say("ok")]}
    with (
        Runtime(spec, model_override=script(turns), store=store) as first,
        pytest.raises(ProcessDied),
    ):
        first.run("go", run_id="died")
    assert store.get_run("died").status == "running"
    with Runtime(spec, model_override=script(turns), store=store) as second:
        waiting = second.recover("died", force=True)
    assert isinstance(waiting, Suspended), waiting
    [entry] = waiting.continuation.pending()
    assert (entry.id, entry.reason) == ("d1", "error")
    assert (entry.detail or "").startswith("the process stopped while dies was running")
    assert asks_tools.CALLS == [("dies", {"order_id": "A-1"}, False)]  # never run again


FAIL_SPEC = """\
spec_version: 1
name: fails
models:
  scripted: {kind: scripted, script: fails.script.yaml}
tools:
  find_order:
    kind: python
    ref: on_error_cli_tools:find_order
    description: Look an order up.
    on_error: fail
agents:
  desk:
    model: scripted
    instructions: Help.
    tools: [find_order]
entrypoint: desk
"""
FAIL_SCRIPT = """\
script_version: 1
agents:
  desk:
    - tool_calls: [{id: f1, name: find_order, arguments: {order_id: A-9}}]
    - text: never
"""
FAIL_TOOLS = """\
def find_order(order_id: str) -> str:
    raise KeyError(order_id)
"""


def test_the_cli_exits_1_when_on_error_fail_ends_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fails.yaml").write_text(FAIL_SPEC, encoding="utf-8")
    (tmp_path / "fails.script.yaml").write_text(FAIL_SCRIPT, encoding="utf-8")
    (tmp_path / "on_error_cli_tools.py").write_text(FAIL_TOOLS, encoding="utf-8")
    assert load_spec(tmp_path / "fails.yaml", env={}).tools["find_order"].on_error == "fail"  # type: ignore[union-attr]
    code = main(
        [
            "run",
            str(tmp_path / "fails.yaml"),
            "-p",
            "refund A-9",
            "--state",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 1
    assert "tool find_order failed: KeyError: 'A-9' (on_error: fail)" in capsys.readouterr().err
