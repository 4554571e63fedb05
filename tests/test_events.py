"""Run events: what observers and `astream` see, in order, and that watching never breaks a run.

The sequences are asserted whole (kind, path, call id), so an event that goes missing, moves or
appears twice fails here. The loop's own modules are checked to import no consumer.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import copy
import itertools
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import loop_tools
import pytest
from builders import (
    VIRTUAL_SPEC,
    agent,
    call,
    calls,
    finished,
    gated,
    make_spec,
    python_tool,
    say,
    script,
    sub_agent,
    suspended,
)

from engine.continuation import Continuation
from engine.errors import UsageError
from engine.events import (
    AgentEnded,
    DecisionApplied,
    EntryAdded,
    ModelCalled,
    ModelReplied,
    RunEvent,
    RunFinished,
    RunResumed,
    RunStarted,
    RunSuspended,
    ToolFinished,
    ToolStarted,
    read_only,
)
from engine.models.base import ModelReply, ModelRequest
from engine.runtime import Finished, Outcome, Runtime, Suspended
from engine.spec.model import Limits, OpenAIModel, Spec

if TYPE_CHECKING:
    from openai_server import OpenAICompatServer

ENGINE = Path(__file__).parent.parent / "engine"

# -- a sub-agent's approval, suspended and resumed in a fresh runtime ---------------------------

NESTED = make_spec(
    [agent("boss", "worker"), agent("worker", "echo", "transfer")],
    [sub_agent("worker"), python_tool("echo"), gated("transfer")],
)
NESTED_TURNS = {
    "boss": [calls(call("b1", "worker", {"request": "pay bob"})), say("all paid")],
    "worker": [
        calls(
            call("w1", "echo", {"text": "hi"}), call("w2", "transfer", {"to": "bob", "amount": 5})
        ),
        say("paid bob"),
    ],
}


def shape(events: list[RunEvent]) -> list[tuple[str, str, str | None]]:
    return [(e.kind, e.path, e.call_id) for e in events]


def test_a_nested_approval_suspended_and_resumed_elsewhere_emits_every_event_in_order() -> None:
    seen: list[RunEvent] = []
    first = Runtime(NESTED, model_override=script(NESTED_TURNS), observers=[seen.append])
    document = suspended(first.run("pay bob", run_id="ev-1")).to_json()

    assert shape(seen) == [
        ("run_started", "boss", None),
        ("agent_started", "boss", None),
        ("model_called", "boss", None),
        ("model_replied", "boss", None),
        ("tool_started", "boss", "b1"),
        ("agent_started", "boss/worker", "b1"),
        ("model_called", "boss/worker", "b1"),
        ("model_replied", "boss/worker", "b1"),
        ("entry_added", "boss/worker", "w2"),
        ("tool_started", "boss/worker", "w1"),
        ("tool_finished", "boss/worker", "w1"),
        ("agent_ended", "boss/worker", "b1"),
        ("agent_ended", "boss", None),
        ("run_suspended", "boss", None),
    ]
    assert {e.run_id for e in seen} == {"ev-1"}
    started = seen[0]
    assert isinstance(started, RunStarted) and started.prompt == "pay bob"
    delegated = seen[4]
    assert isinstance(delegated, ToolStarted)
    assert (delegated.tool_kind, delegated.sub_agent, delegated.carries_on) == (
        "agent",
        "worker",
        False,
    )
    reply = seen[7]
    assert isinstance(reply, ModelReplied)
    assert (reply.tool_calls, reply.tools, reply.model, reply.provider) == (
        ("w1", "w2"),
        ("echo", "transfer"),
        "scripted",
        "scripted",
    )
    gate = seen[8]
    assert isinstance(gate, EntryAdded)
    assert (gate.entry.path, gate.entry.reason, gate.entry.decisions) == (
        "boss/worker@b1/w2",
        "approval",
        ("approve", "reject"),
    )
    ended = [e for e in seen if isinstance(e, AgentEnded)]
    assert [e.status for e in ended] == ["suspended", "suspended"]
    waiting = seen[-1]
    assert isinstance(waiting, RunSuspended)
    assert [(p.path, p.id, p.reason, p.tool) for p in waiting.pending] == [
        ("boss/worker@b1/w2", "w2", "approval", "transfer")
    ]

    again: list[RunEvent] = []
    fresh = Runtime(NESTED, model_override=script(NESTED_TURNS), observers=[again.append])
    outcome = fresh.resume(Continuation.from_json(document).approve("w2"))

    assert finished(outcome).output == "all paid"
    assert shape(again) == [
        ("run_resumed", "boss", None),
        ("agent_started", "boss", None),
        ("tool_started", "boss", "b1"),
        ("agent_started", "boss/worker", "b1"),
        ("decision_applied", "boss/worker", "w2"),
        ("tool_started", "boss/worker", "w2"),
        ("tool_finished", "boss/worker", "w2"),
        ("model_called", "boss/worker", "b1"),
        ("model_replied", "boss/worker", "b1"),
        ("agent_ended", "boss/worker", "b1"),
        ("tool_finished", "boss", "b1"),
        ("model_called", "boss", None),
        ("model_replied", "boss", None),
        ("agent_ended", "boss", None),
        ("run_finished", "boss", None),
    ]
    resumed = again[0]
    assert isinstance(resumed, RunResumed) and not resumed.recovered and resumed.trace is None
    carried = again[2]
    assert isinstance(carried, ToolStarted) and carried.carries_on
    decided = again[4]
    assert isinstance(decided, DecisionApplied)
    assert (decided.entry, decided.decision, decided.tool) == ("w2", "approve", "transfer")
    delegated_result = again[10]
    assert isinstance(delegated_result, ToolFinished)
    assert (delegated_result.status, delegated_result.result) == ("done", "paid bob")
    end = again[-1]
    assert isinstance(end, RunFinished) and end.output == "all paid" and not end.stopped


def test_a_run_without_observers_emits_nothing_and_runs_the_same() -> None:
    quiet = Runtime(NESTED, model_override=script(NESTED_TURNS))
    assert not quiet.observers
    seen: list[RunEvent] = []
    watched = Runtime(NESTED, model_override=script(NESTED_TURNS), observers=[seen.append])
    assert (
        suspended(quiet.run("pay bob", run_id="q")).root.messages
        == suspended(watched.run("pay bob", run_id="q")).root.messages
    )
    assert seen


# -- tool outcomes -----------------------------------------------------------------------------


def test_tool_outcomes_are_done_failed_and_rejected_by_the_spec_or_a_reviewer() -> None:
    spec = make_spec(
        [agent("main", "echo", "flaky", "transfer")],
        [python_tool("echo"), python_tool("flaky", on_error="suspend"), gated("transfer")],
    )
    turns = {
        "main": [
            calls(
                call("e1", "echo", {"text": "hi"}),
                call("f1", "flaky", {"key": "events"}),
                call("u1", "nope"),
                call("t1", "transfer", {"to": "bob", "amount": "five"}),
                call("t2", "transfer", {"to": "bob", "amount": 5}),
            ),
            say("done"),
        ]
    }
    seen: list[RunEvent] = []
    runtime = Runtime(spec, model_override=script(turns), observers=[seen.append])
    waiting = suspended(runtime.run("go"))
    decided = waiting.approve("f1").reject("t2", reason="not today")
    assert finished(runtime.resume(decided)).output == "done"

    outcomes = [(e.call_id, e.status, e.refused) for e in seen if isinstance(e, ToolFinished)]
    assert sorted(outcomes[:4]) == [
        ("e1", "done", False),
        ("f1", "failed", False),
        ("t1", "rejected", True),
        ("u1", "rejected", True),
    ]
    assert sorted(outcomes[4:]) == [("f1", "done", False), ("t2", "rejected", False)]
    results = {(e.call_id, e.status): e.result for e in seen if isinstance(e, ToolFinished)}
    assert results["f1", "failed"] is not None and "ConnectionError" in results["f1", "failed"]
    assert results["t2", "rejected"] == "rejected: the call was not executed (not today)"
    assert (
        results["u1", "rejected"] is not None and "unknown tool 'nope'" in results["u1", "rejected"]
    )
    entries = [(e.entry.id, e.entry.reason) for e in seen if isinstance(e, EntryAdded)]
    assert sorted(entries) == [("f1", "error"), ("t2", "approval")]
    assert [t for t, _ in loop_tools.CALLS] == ["echo", "flaky", "flaky"]


# -- usage from a real OpenAI client --------------------------------------------------------------


def openai_spec(base_url: str) -> Spec:
    return Spec(
        spec_version=1,
        name="openai-usage",
        path=VIRTUAL_SPEC,
        entrypoint="bank",
        models={
            "scripted": OpenAIModel(
                name="scripted",
                model="test-model",
                base_url=base_url,
                api_key_env="CALLCC_TEST_OPENAI_KEY",
                max_retries=0,
                timeout=10,
            )
        },
        tools={"echo": python_tool("echo")},
        agents={"bank": agent("bank", "echo")},
        digest="sha256:test",
    )


def test_token_usage_of_the_openai_server_reaches_model_replied(
    openai_server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_TEST_OPENAI_KEY", "sk-test")
    openai_server.push(
        tool_calls=[{"id": "c1", "name": "echo", "arguments": {"text": "x"}}],
        usage={"prompt_tokens": 123, "completion_tokens": 45},
    )
    openai_server.push(text="done", usage={"prompt_tokens": 200, "completion_tokens": 7})
    seen: list[RunEvent] = []

    async def scenario() -> Outcome:
        runtime = Runtime(openai_spec(openai_server.base_url), observers=[seen.append])
        try:
            return await runtime.arun("echo x")
        finally:
            await runtime.aclose()

    assert finished(asyncio.run(scenario())).output == "done"
    replies = [e for e in seen if isinstance(e, ModelReplied)]
    assert [(r.input_tokens, r.output_tokens, r.turn) for r in replies] == [
        (123, 45, 1),
        (200, 7, 2),
    ]
    assert {(r.model, r.provider) for r in replies} == {("test-model", "openai")}
    assert all(r.latency > 0 for r in replies)
    assert [r.finish_reason for r in replies] == ["tool_calls", "stop"]


# -- astream -------------------------------------------------------------------------------------


async def collect(stream: AsyncIterator[RunEvent | Outcome]) -> list[RunEvent | Outcome]:
    return [item async for item in stream]


def test_astream_yields_the_events_and_ends_with_the_outcome() -> None:
    async def scenario() -> tuple[list[RunEvent | Outcome], list[RunEvent | Outcome]]:
        runtime = Runtime(NESTED, model_override=script(NESTED_TURNS))
        first = await collect(runtime.astream("pay bob", run_id="st-1"))
        waiting = first[-1]
        assert isinstance(waiting, Suspended)
        second = await collect(runtime.astream_resume(waiting.continuation.approve("w2")))
        return first, second

    first, second = asyncio.run(scenario())
    assert all(isinstance(e, RunEvent) for e in first[:-1])
    assert isinstance(first[0], RunStarted)
    assert isinstance(first[-2], RunSuspended)
    assert isinstance(first[-1], Suspended)
    assert isinstance(second[0], RunResumed)
    assert isinstance(second[-2], RunFinished)
    assert isinstance(second[-1], Finished) and second[-1].output == "all paid"


class Yielding:
    """The scripted model as a network client behaves: each call waits on the event loop
    once, so runs sharing the loop take turns at their model calls."""

    def __init__(self, turns: dict[str, list[dict[str, object]]]) -> None:
        self.model = script(turns)

    async def complete(self, request: ModelRequest) -> ModelReply:
        await asyncio.sleep(0)
        return self.model.reply(request)


def test_concurrent_streams_on_one_runtime_each_see_only_their_run() -> None:
    everything: list[RunEvent] = []
    runtime = Runtime(NESTED, model_override=Yielding(NESTED_TURNS), observers=[everything.append])

    async def scenario() -> list[list[RunEvent | Outcome]]:
        return list(
            await asyncio.gather(
                *(collect(runtime.astream("pay bob", run_id=f"con-{i}")) for i in range(3))
            )
        )

    streams = asyncio.run(scenario())
    alone: list[RunEvent] = []
    suspended(
        Runtime(NESTED, model_override=script(NESTED_TURNS), observers=[alone.append]).run(
            "pay bob", run_id="alone"
        )
    )
    for i, items in enumerate(streams):
        events = [e for e in items if isinstance(e, RunEvent)]
        assert {e.run_id for e in events} == {f"con-{i}"}
        assert shape(events) == shape(alone)
        assert isinstance(items[-1], Suspended) and items[-1].continuation.run_id == f"con-{i}"
    # the runs really interleaved: the runtime's own observer saw them alternate
    order = [e.run_id for e in everything]
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > 2
    assert sorted(order) == sorted(e.run_id for s in streams for e in s if isinstance(e, RunEvent))


HANGING = make_spec([agent("main", "hang")], [python_tool("hang")], name="hanging")
HANGING_TURNS = {"main": [calls(call("h1", "hang", {"key": "k1"})), say("never")]}


def test_a_consumer_leaving_early_cancels_the_run_and_recover_continues_it(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    loop_tools.CANCELLED.clear()

    async def leave_early() -> list[RunEvent | Outcome]:
        runtime = Runtime(HANGING, model_override=script(HANGING_TURNS), store=store_url)
        seen: list[RunEvent | Outcome] = []
        try:
            async with contextlib.aclosing(runtime.astream("go", run_id="gone-1")) as stream:
                async for item in stream:
                    seen.append(item)
                    if isinstance(item, ToolStarted):
                        break
        finally:
            runtime.close()
        return seen

    with caplog.at_level(logging.WARNING, logger="callcc"):
        seen = asyncio.run(leave_early())
    assert isinstance(seen[-1], ToolStarted) and seen[-1].call_id == "h1"
    assert loop_tools.CANCELLED == ["k1"]  # the tool's task was cancelled, not left running
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "run gone-1" in warnings[0] and "cancelled" in warnings[0]

    async def recover() -> list[RunEvent | Outcome]:
        runtime = Runtime(HANGING, model_override=script(HANGING_TURNS), store=store_url)
        try:
            return await collect(runtime.astream_recover("gone-1", force=True))
        finally:
            runtime.close()

    items = asyncio.run(recover())
    resumed = items[0]
    assert isinstance(resumed, RunResumed) and resumed.recovered
    waiting = items[-1]
    assert isinstance(waiting, Suspended)
    assert [(p.id, p.reason) for p in waiting.continuation.pending()] == [("h1", "error")]
    assert [t for t, _ in loop_tools.CALLS] == ["hang"]  # not run again: it is not idempotent


# -- observers that raise --------------------------------------------------------------------------


def test_an_observer_that_raises_is_logged_once_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls_made: list[str] = []

    def broken(event: RunEvent) -> None:
        calls_made.append(event.kind)
        raise RuntimeError("observer bug")

    class Counting:
        def __init__(self) -> None:
            self.kinds: list[str] = []

        def on_event(self, event: RunEvent) -> None:
            self.kinds.append(event.kind)

    counting = Counting()
    runtime = Runtime(NESTED, model_override=script(NESTED_TURNS), observers=[broken, counting])
    with caplog.at_level(logging.ERROR, logger="callcc"):
        waiting = suspended(runtime.run("pay bob"))
        outcome = runtime.resume(waiting.approve("w2"))

    assert finished(outcome).output == "all paid"
    assert [t for t, _ in loop_tools.CALLS] == ["echo", "transfer"]
    assert calls_made == counting.kinds and len(counting.kinds) == 14 + 15
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "observer" in errors[0].getMessage() and errors[0].exc_info is not None


def test_add_observer_returns_its_removal() -> None:
    runtime = Runtime(NESTED, model_override=script(NESTED_TURNS))
    seen: list[RunEvent] = []
    remove = runtime.add_observer(seen.append)
    suspended(runtime.run("pay bob"))
    count = len(seen)
    remove()
    suspended(runtime.run("pay bob"))
    assert count == 14 and len(seen) == count


def test_an_observer_that_could_never_receive_an_event_is_refused_when_added() -> None:
    async def asynchronous(event: RunEvent) -> None:
        pass

    class Watcher:
        async def on_event(self, event: RunEvent) -> None:
            pass

    runtime = Runtime(NESTED, model_override=script(NESTED_TURNS))
    for observer, why in [
        (asynchronous, "is async"),
        (Watcher(), "is async"),
        ("not callable", "must be a callable"),
    ]:
        with pytest.raises(TypeError, match=why):
            runtime.add_observer(observer)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=why):
            Runtime(NESTED, model_override=script(NESTED_TURNS), observers=[observer])  # type: ignore[list-item]
    assert not runtime.observers  # nothing was added


def test_an_observer_sees_the_arguments_but_cannot_change_what_an_approved_call_runs_with(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = make_spec([agent("main", "transfer")], [gated("transfer")], name="scrubbed")
    turns = {"main": [calls(call("t1", "transfer", {"to": "bob", "amount": 5})), say("done")]}
    seen: list[dict[str, object]] = []

    def scrub(event: RunEvent) -> None:  # an observer "normalising" what it logs, in place
        if isinstance(event, ToolStarted):
            seen.append(dict(event.arguments))
            event.arguments["amount"] = 5000  # type: ignore[index]

    runtime = Runtime(spec, model_override=script(turns), observers=[scrub])
    with caplog.at_level(logging.ERROR, logger="callcc"):
        finished(runtime.resume(suspended(runtime.run("pay bob 5")).approve("t1")))
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]
    assert seen == [{"to": "bob", "amount": 5}]
    assert "event data is read-only" in caplog.text  # the observer's error, logged once


def test_model_called_shows_each_turn_the_messages_sent_then_read_only_when_read_later() -> None:
    spec = make_spec([agent("main", "echo")], [python_tool("echo")], name="told")
    turns = {
        "main": [
            calls(call("e1", "echo", {"text": "a"})),
            calls(call("e2", "echo", {"text": "b"})),
            say("done"),
        ]
    }
    seen: list[ModelCalled] = []
    runtime = Runtime(
        spec,
        model_override=script(turns),
        observers=[lambda e: seen.append(e) if isinstance(e, ModelCalled) else None],
    )
    done = finished(runtime.run("echo twice"))
    # read only now, after the run went on and ended: each still shows what that turn sent
    assert [len(e.messages) for e in seen] == [1, 3, 5]
    for event in seen:
        assert event.messages == tuple(done.messages[: len(event.messages)])
        assert list(event.messages) == done.messages[: len(event.messages)]
    last = seen[-1].messages
    assert last[-1] == {"role": "tool", "tool_call_id": "e2", "content": "echo: b"}
    assert last[1:3] == tuple(done.messages[1:3])
    with pytest.raises(TypeError, match="event data is read-only"):
        last[0]["content"] = "changed"  # type: ignore[index]
    plain = copy.deepcopy(last)  # as the read-only error suggests: a copy to change
    plain[0]["content"] = "changed"
    assert done.messages[0]["content"] == "echo twice"
    data = json.loads(json.dumps(seen[1].to_dict()))
    assert data["messages"] == done.messages[:3]


def test_a_deep_copy_of_any_event_data_is_plain_and_changeable() -> None:
    spec = make_spec([agent("main", "echo")], [python_tool("echo")], name="copied")
    turns = {"main": [calls(call("e1", "echo", {"text": "a"})), say("done")]}
    seen: list[RunEvent] = []
    finished(Runtime(spec, model_override=script(turns), observers=[seen.append]).run("go"))
    [started] = [e for e in seen if isinstance(e, ToolStarted)]
    with pytest.raises(TypeError, match="event data is read-only"):
        started.arguments["text"] = "b"  # type: ignore[index]
    plain = copy.deepcopy(started.arguments)  # what the refusal tells an observer to do
    plain["text"] = "b"
    assert type(plain) is dict and started.arguments == {"text": "a"}
    nested = copy.deepcopy(read_only({"a": [{"b": 1}]}))  # at any depth
    nested["a"][0]["b"] = 2
    assert type(nested["a"]) is list and nested == {"a": [{"b": 2}]}


def test_async_with_after_the_sync_api_in_the_same_thread_closes_cleanly() -> None:
    spec = make_spec([agent("main")], [], name="twice")
    runtime = Runtime(spec, model_override=script({"main": [say("a"), say("b")]}))
    finished(runtime.run("x"))

    async def go() -> None:
        async with runtime:
            finished(await runtime.arun("y"))

    asyncio.run(go())  # raised "Cannot run the event loop while another loop is running"


# -- layering --------------------------------------------------------------------------------------

LOOP_MODULES = ("engine.loop", "engine.tooling", "engine._emit", "engine.steps", "engine.runners")
CONSUMERS = ("engine.journal", "engine.durable", "engine.store", "engine.cli", "engine.runtime")


def runtime_imports(module: str) -> set[str]:
    """The engine modules `module` imports when it runs (not those for type checking only)."""
    path = ENGINE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ENGINE.parent / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("engine.") and _exists(m)}


def _exists(module: str) -> bool:
    base = ENGINE.parent / module.replace(".", "/")
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def closure(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(runtime_imports(name))
    return seen


@pytest.mark.parametrize("module", LOOP_MODULES)
def test_the_loop_imports_no_consumer_of_its_events(module: str) -> None:
    reached = closure(module)
    assert not {m for m in reached if m.startswith(CONSUMERS)}, sorted(reached)


def test_the_tooling_and_the_runners_do_not_import_the_loop() -> None:
    for module in ("engine.tooling", "engine._emit", "engine.runners", "engine.steps"):
        assert "engine.loop" not in closure(module)


# -- the CLI's progress lines are an observer ------------------------------------------------------


def test_callcc_run_prints_the_progress_lines_the_readme_shows(tmp_path: Path) -> None:
    import io
    import re

    from engine.cli import main

    readme = (ENGINE.parent / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"```\n(· hr_agent: asks the model.*?)\nsuspended:", readme, re.S)
    assert shown is not None
    out, err = io.StringIO(), io.StringIO()
    state = str(tmp_path / "state.json")
    spec = str(ENGINE.parent / "specs" / "hr_agent.yaml")
    code = main(["run", spec, "--state", state, "-p", "Onboard Ada Lovelace"], out, err)
    assert code == 3
    lines = [line for line in out.getvalue().splitlines() if line.startswith("·")]
    assert lines == shown.group(1).splitlines()


def test_progress_lines_say_what_was_refused_gated_decided_and_limited() -> None:
    import io

    from engine.cli._output import ProgressLines

    spec = make_spec(
        [agent("main", "echo", "transfer", limits=Limits(max_tool_calls=3)), agent("unused")],
        [python_tool("echo"), gated("transfer")],
    )
    turns = {
        "main": [
            calls(call("u1", "nope"), call("t1", "transfer", {"to": "bob", "amount": 5})),
            calls(call("e1", "echo", {"text": "a"}), call("e2", "echo", {"text": "b"})),
            say("done"),
        ]
    }
    out = io.StringIO()
    runtime = Runtime(spec, model_override=script(turns), observers=[ProgressLines(out)])
    waiting = suspended(runtime.run("go"))
    waiting = suspended(runtime.resume(waiting.reject("t1", reason="no")))
    finished(runtime.resume(waiting.extend(waiting.pending()[0].id, turns=2)))
    assert out.getvalue() == (
        "· main: asks the model (turn 1)\n"
        "· main: calls nope, transfer\n"
        "· main: call u1 refused: error: unknown tool 'nope'; available tools: echo, transfer\n"
        "· main: transfer waits for approval (t1)\n"
        "· main: transfer (t1) decided: reject\n"
        "· main: asks the model (turn 2)\n"
        "· main: calls echo, echo\n"
        "· main: suspends (turn_limit: max_tool_calls: 2 used of 3, the model asks for 2 more)\n"
        "· main: runs echo (e1)\n"
        "· main: runs echo (e2)\n"
        "· main: asks the model (turn 3)\n"
        "· main: answers: done\n"
    )


def test_an_error_of_the_run_is_raised_from_its_stream() -> None:
    runtime = Runtime(NESTED, model_override=script(NESTED_TURNS))

    async def scenario() -> list[RunEvent | Outcome]:
        return await collect(runtime.astream("go", agent="nobody"))

    with pytest.raises(UsageError, match="unknown agent 'nobody'"):
        asyncio.run(scenario())


def test_a_fan_out_tells_its_invocations_apart() -> None:
    from engine.spec import load_spec

    spec = load_spec(ENGINE.parent / "specs" / "hr_agent.yaml")
    seen: list[RunEvent] = []
    fanout = str(ENGINE.parent / "specs" / "hr_agent.fanout.script.yaml")
    runtime = Runtime(spec, model_override=f"scripted:{fanout}", observers=[seen.append])
    waiting = suspended(runtime.run("Onboard Ada and Grace"))

    ran = [(e.path, e.invocation, e.call_id) for e in seen if isinstance(e, ToolStarted)]
    assert sorted(ran) == [
        ("hr_agent", "hr_agent", "call_hr_1"),
        ("hr_agent", "hr_agent", "call_hr_2"),
        ("hr_agent/account_agent", "hr_agent/account_agent@call_hr_1", "call_acc_1"),
        ("hr_agent/account_agent", "hr_agent/account_agent@call_hr_2", "call_acc_1"),
    ]
    gates = [e.entry.path for e in seen if isinstance(e, EntryAdded)]
    assert sorted(gates) == sorted(p.path for p in waiting.pending())
    for event in seen:
        assert event.invocation.replace("@call_hr_1", "").replace("@call_hr_2", "") == event.path


def test_a_stop_on_a_budget_rejects_the_calls_it_cut_off_and_ends_the_run_stopped() -> None:
    spec = make_spec(
        [agent("main", "echo", limits=Limits(max_tool_calls=1))], [python_tool("echo")]
    )
    turns = {"main": [calls(call("e1", "echo", {"text": "a"}), call("e2", "echo", {"text": "b"}))]}
    seen: list[RunEvent] = []
    runtime = Runtime(spec, model_override=script(turns), observers=[seen.append])
    waiting = suspended(runtime.run("go", run_id="stop-1"))
    [limit] = waiting.pending()
    seen.clear()
    runtime.resume(waiting.stop(limit.id))

    assert shape(seen) == [
        ("run_resumed", "main", None),
        ("agent_started", "main", None),
        ("decision_applied", "main", None),
        ("tool_finished", "main", "e1"),
        ("tool_finished", "main", "e2"),
        ("agent_ended", "main", None),
        ("run_finished", "main", None),
    ]
    decided, first, _, ended, end = seen[2], seen[3], seen[4], seen[5], seen[6]
    assert isinstance(decided, DecisionApplied)
    assert (decided.entry, decided.decision, decided.tool) == (limit.id, "stop", None)
    assert isinstance(first, ToolFinished) and (first.status, first.refused) == ("rejected", False)
    assert isinstance(ended, AgentEnded) and ended.status == "stopped"
    assert isinstance(end, RunFinished) and end.stopped
    assert loop_tools.CALLS == []
