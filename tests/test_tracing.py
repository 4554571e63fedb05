"""OpenTelemetry traces of runs, with the real SDK and its in-memory exporter: span names and
nesting by the GenAI conventions, attributes, usage, content only when opted in, suspension
ending every span, and a resume in another process whose spans link to the suspended half."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import (
    ROOT,
    agent,
    call,
    calls,
    check_document,
    finished,
    make_spec,
    python_tool,
    say,
    script,
    sub_agent,
    suspended,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_usage import hr_script_with_usage

from engine import Continuation, Runtime, load_spec
from engine.errors import ContinuationError, UsageError
from engine.models.scripted import ScriptedModel
from engine.tracing import CAPTURE_ENV, TRACING_ENV

HERE = Path(__file__).parent
HR_SPEC = ROOT / "specs" / "hr_agent.yaml"
PENDING = "hr_agent/account_agent@call_hr_1/call_acc_2"
KEY = "trace-test-key-0123456789abcdef0123456789"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


def tree(spans: tuple[ReadableSpan, ...]) -> list[str]:
    """Every span as `name <- parent name` in start order, for whole-structure asserts."""
    names = {s.context.span_id: s.name for s in spans if s.context is not None}
    ordered = sorted(spans, key=lambda s: s.start_time or 0)
    return [
        f"{s.name} <- {names.get(s.parent.span_id, 'outside') if s.parent else 'none'}"
        for s in ordered
    ]


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_suspending_run_traces_agents_models_and_tools_nested_and_ends_every_span(
    provider: TracerProvider, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    model = f"scripted:{hr_script_with_usage(tmp_path)}"
    with Runtime(load_spec(HR_SPEC), model_override=model, tracing=provider) as runtime:
        waiting = suspended(runtime.run("Onboard Ada Lovelace as an engineer", run_id="t-1"))
    check_document(waiting)  # the schema knows `trace`

    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        "invoke_agent hr_agent <- none",
        "chat scripted <- invoke_agent hr_agent",
        "execute_tool account_agent <- invoke_agent hr_agent",
        "invoke_agent account_agent <- execute_tool account_agent",  # nested under its call
        "chat scripted <- invoke_agent account_agent",
        "execute_tool create_account <- invoke_agent account_agent",
    ]
    assert len({s.context.trace_id for s in spans if s.context}) == 1
    assert all(s.attributes and s.attributes["gen_ai.conversation.id"] == "t-1" for s in spans)
    (root,) = named(spans, "invoke_agent hr_agent")
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "hr_agent"
    hr_chat, account_chat = named(spans, "chat scripted")
    assert dict(hr_chat.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "scripted",
        "gen_ai.request.model": "scripted",
        "gen_ai.agent.name": "hr_agent",
        "gen_ai.conversation.id": "t-1",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 1,
        "gen_ai.response.finish_reasons": ("tool_calls",),
    }
    assert (account_chat.attributes or {})["gen_ai.usage.input_tokens"] == 100
    (tool,) = named(spans, "execute_tool create_account")
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "create_account"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_acc_1"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert "gen_ai.tool.call.arguments" not in tool.attributes  # content is opt-in

    # the suspension ended every span still open, saying why and on what
    open_at_suspension = {"invoke_agent hr_agent", "execute_tool account_agent"}
    open_at_suspension.add("invoke_agent account_agent")
    for span in spans:
        events = [e for e in span.events if e.name == "callcc.suspended"]
        if span.name in open_at_suspension:
            (event,) = events
            assert dict(event.attributes or {}) == {
                "callcc.suspend.reasons": ("approval",),
                "callcc.pending.ids": (PENDING,),
            }
        else:
            assert events == []
    # the document holds the root span's W3C context, and nothing else
    assert waiting.trace is not None and set(waiting.trace) == {"traceparent"}
    assert root.context is not None
    assert waiting.trace["traceparent"] == (
        f"00-{root.context.trace_id:032x}-{root.context.span_id:016x}-"
        f"{int(root.context.trace_flags):02x}"
    )
    assert json.loads(waiting.to_json())["trace"] == waiting.trace


def test_the_resume_starts_a_new_trace_linked_to_the_suspended_root(
    provider: TracerProvider, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    model = f"scripted:{hr_script_with_usage(tmp_path)}"
    with Runtime(load_spec(HR_SPEC), model_override=model, tracing=provider) as runtime:
        waiting = suspended(runtime.run("Onboard Ada", run_id="t-2"))
        (first_root,) = named(exporter.get_finished_spans(), "invoke_agent hr_agent")
        exporter.clear()
        done = finished(runtime.resume(waiting.approve("call_acc_2")))

    spans = exporter.get_finished_spans()
    assert done.run_id == "t-2"
    assert tree(spans) == [
        "invoke_agent hr_agent <- none",
        "execute_tool account_agent <- invoke_agent hr_agent",  # the sub-agent carries on
        "invoke_agent account_agent <- execute_tool account_agent",
        "execute_tool authorize_account <- invoke_agent account_agent",
        "chat scripted <- invoke_agent account_agent",
        "chat scripted <- invoke_agent hr_agent",
        "execute_tool send_email <- invoke_agent hr_agent",
        "chat scripted <- invoke_agent hr_agent",
    ]
    (root,) = named(spans, "invoke_agent hr_agent")
    assert root.context is not None and first_root.context is not None
    assert root.context.trace_id != first_root.context.trace_id
    (link,) = root.links
    assert (link.context.trace_id, link.context.span_id) == (
        first_root.context.trace_id,
        first_root.context.span_id,
    )
    assert (root.attributes or {})["callcc.run.resumed"] is True
    decisions = [e for e in spans for e in e.events if e.name == "callcc.decision"]
    assert [dict(e.attributes or {}) for e in decisions] == [
        {"callcc.entry.id": "call_acc_2", "callcc.decision": "approve"}
    ]
    assert all(not [e for e in s.events if e.name == "callcc.suspended"] for s in spans)


def test_content_is_recorded_only_when_the_user_opts_in(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = load_spec(HR_SPEC)
    with Runtime(spec, tracing=provider) as runtime:
        runtime.run("Onboard Ada Lovelace")
    quiet = exporter.get_finished_spans()
    kept = {k for s in quiet for k in (s.attributes or {})}
    assert not {k for k in kept if "messages" in k or "arguments" in k or "result" in k}
    assert not any("Ada Lovelace" in str(v) for s in quiet for v in (s.attributes or {}).values())

    exporter.clear()
    monkeypatch.setenv(CAPTURE_ENV, "true")
    with Runtime(spec, tracing=provider) as runtime:
        runtime.run("Onboard Ada Lovelace")
    spans = exporter.get_finished_spans()
    first_chat = sorted(named(spans, "chat scripted"), key=lambda s: s.start_time or 0)[0]
    messages = json.loads(str((first_chat.attributes or {})["gen_ai.input.messages"]))
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": "Onboard Ada Lovelace"}]}
    ]
    output = json.loads(str((first_chat.attributes or {})["gen_ai.output.messages"]))
    assert output[0]["finish_reason"] == "tool_calls"
    assert output[0]["parts"][-1] == {"type": "tool_call", "id": "call_hr_1"}
    (tool,) = named(spans, "execute_tool create_account")
    arguments = json.loads(str((tool.attributes or {})["gen_ai.tool.call.arguments"]))
    assert arguments == {"username": "ada", "full_name": "Ada Lovelace"}
    assert "gen_ai.tool.call.result" in (tool.attributes or {})


def test_openai_chat_spans_carry_the_server_reported_usage(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    openai_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test_runtime_openai import openai_spec

    monkeypatch.setenv("CALLCC_TEST_OPENAI_KEY", "sk-test")
    openai_server.push(
        tool_calls=[{"id": "call_1", "name": "transfer", "arguments": {"to": "bob", "amount": 5}}],
        usage={"prompt_tokens": 57, "completion_tokens": 12},
    )
    runtime = Runtime(openai_spec(openai_server.base_url), tracing=provider)
    try:
        suspended(runtime.run("Send bob 5", run_id="oa-t"))
    finally:
        runtime.close()
    (chat,) = named(exporter.get_finished_spans(), "chat test-model")
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "test-model"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        57,
        12,
    )
    assert chat.kind.name == "CLIENT"


RESUME_ELSEWHERE = """
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from engine import Runtime, load_spec

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
spec, model, state = sys.argv[1:4]
with Runtime(load_spec(spec), model_override=model, tracing=provider) as runtime:
    with open(state, encoding="utf-8") as text:
        continuation = runtime.load(text.read())
    outcome = runtime.resume(continuation.approve("call_acc_2"))
root = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent hr_agent"][0]
print(json.dumps({
    "kind": outcome.kind,
    "links": [[l.context.trace_id, l.context.span_id] for l in root.links],
    "trace_id": root.context.trace_id,
}))
"""


def test_a_resume_in_another_process_links_to_the_span_that_suspended(
    provider: TracerProvider, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    model = f"scripted:{hr_script_with_usage(tmp_path)}"
    spec = load_spec(HR_SPEC)
    with Runtime(spec, model_override=model, tracing=provider, secret_key=KEY) as runtime:
        waiting = suspended(runtime.run("Onboard Ada", run_id="t-far"))
    state = tmp_path / "state.json"
    state.write_text(waiting.to_json(), encoding="utf-8")
    (first_root,) = named(exporter.get_finished_spans(), "invoke_agent hr_agent")
    assert first_root.context is not None

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCC_", "OTEL_"))}
    environment["CALLCC_SECRET_KEY"] = KEY
    result = subprocess.run(
        [sys.executable, "-c", RESUME_ELSEWHERE, str(HR_SPEC), model, str(state)],
        cwd=ROOT,
        env=environment | {"PYTHONPATH": str(HERE)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    there = json.loads(result.stdout)
    assert there["kind"] == "finished"
    assert there["links"] == [[first_root.context.trace_id, first_root.context.span_id]]
    assert there["trace_id"] != first_root.context.trace_id


def test_a_stored_run_keeps_its_trace_context_for_the_resume(
    provider: TracerProvider, exporter: InMemorySpanExporter, store_url: str
) -> None:
    spec = load_spec(HR_SPEC)
    with Runtime(spec, tracing=provider, store=store_url) as runtime:
        waiting = suspended(runtime.run("Onboard Ada", run_id="t-kept"))
        (first_root,) = named(exporter.get_finished_spans(), "invoke_agent hr_agent")
        exporter.clear()
        loaded = runtime.load_run("t-kept")  # rebuilt from the store's checkpoints
        assert loaded.trace == waiting.trace is not None
        finished(runtime.resume(loaded.approve("call_acc_2")))
    (root,) = named(exporter.get_finished_spans(), "invoke_agent hr_agent")
    assert first_root.context is not None
    assert [link.context.span_id for link in root.links] == [first_root.context.span_id]


def test_an_edited_trace_context_is_refused_by_the_signature(
    provider: TracerProvider, tmp_path: Path
) -> None:
    with Runtime(load_spec(HR_SPEC), tracing=provider, secret_key=KEY) as runtime:
        waiting = suspended(runtime.run("Onboard Ada"))
        text = waiting.to_json()
        assert waiting.trace is not None
        traceparent = waiting.trace["traceparent"]
        forged = text.replace(traceparent, traceparent[:36] + "0" * 16 + traceparent[52:])
        assert forged != text
        with pytest.raises(ContinuationError, match="signature"):
            runtime.load(forged)
        assert runtime.load(text).trace == waiting.trace

    unsigned = waiting.to_dict()
    unsigned["trace"] = {"traceparent": "not a trace", "exporter": "https://user:pw@collector"}
    with pytest.raises(ContinuationError, match="traceparent") as caught:
        Continuation.from_dict(unsigned)
    assert caught.value.pointer == "/trace"


def test_tracing_true_without_opentelemetry_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # `import opentelemetry` fails
    with pytest.raises(UsageError, match=r"pip install 'callcc\[otel\]'"):
        Runtime(load_spec(HR_SPEC), tracing=True)
    monkeypatch.setenv(TRACING_ENV, "1")
    with pytest.raises(UsageError, match=f"unset {TRACING_ENV}"):
        Runtime(load_spec(HR_SPEC))


def test_a_console_exporter_without_the_sdk_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m.startswith("opentelemetry.sdk")] + [
        "opentelemetry.sdk"
    ]:  # the API alone is installed
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setenv(TRACING_ENV, "1")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    with pytest.raises(
        UsageError, match=r"only its API is installed: pip install 'callcc\[otel\]'"
    ):
        Runtime(load_spec(HR_SPEC))


def test_tracing_asked_for_with_nowhere_to_export_warns_and_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(TRACING_ENV, "1")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with caplog.at_level(logging.WARNING, logger="callcc"):
        runtime = Runtime(load_spec(HR_SPEC))
    assert runtime.observers  # still traced: a provider set later receives the spans
    (record,) = [r for r in caplog.records if "no tracer provider" in r.getMessage()]
    assert "OTEL_TRACES_EXPORTER=otlp is not read by callcc itself" in record.getMessage()
    assert "OTEL_TRACES_EXPORTER=console" in record.getMessage()


OFF_OR_GLOBAL = """
import sys
from engine import Runtime, load_spec
runtime = Runtime(load_spec("specs/hr_agent.yaml"))
print("observers" if runtime.observers else "none", "opentelemetry" in sys.modules)
if sys.argv[1] == "global":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    runtime = Runtime(load_spec("specs/hr_agent.yaml"))
    runtime.run("Onboard Ada")
    print(sorted({s.name for s in exporter.get_finished_spans()}))
"""


@pytest.mark.parametrize("mode", ["off", "global"])
def test_tracing_is_off_and_free_by_default_and_on_once_a_provider_is_configured(
    mode: str,
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCC_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", OFF_OR_GLOBAL, mode],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "none False"  # no observer, so no event is built; no OpenTelemetry import
    if mode == "global":
        assert json.loads(lines[1].replace("'", '"')) == [
            "chat scripted",
            "execute_tool account_agent",
            "execute_tool create_account",
            "invoke_agent account_agent",
            "invoke_agent hr_agent",
        ]


def test_two_invocations_of_one_sub_agent_running_interleaved_keep_their_spans_apart(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_ENV, "true")  # the contents tell whose span is whose
    # both workers call `call_w_1` from the same agent path, boss/worker; only the events'
    # `invocation` tells them apart, and the rendezvous makes their events interleave
    spec = make_spec(
        [agent("boss", "worker"), agent("worker", "rendezvous")],
        [sub_agent("worker"), python_tool("rendezvous", ref="trace_tools:rendezvous")],
    )
    turns: dict[str, Any] = {
        "boss": [
            calls(
                call("call_b_1", "worker", {"request": "a"}),
                call("call_b_2", "worker", {"request": "b"}),
            ),
            say("both met"),
        ],
        "worker": {
            "call_b_1": [calls(call("call_w_1", "rendezvous", {"who": "ann"})), say("ann ok")],
            "call_b_2": [calls(call("call_w_1", "rendezvous", {"who": "bob"})), say("bob ok")],
        },
    }
    model = ScriptedModel.from_data({"script_version": 1, "agents": turns})
    with Runtime(spec, model_override=model, tracing=provider) as runtime:
        assert finished(runtime.run("go")).output == "both met"

    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans if s.context is not None}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None
        return by_id[span.parent.span_id]

    def call_of(span: ReadableSpan) -> Any:  # the boss call whose worker `span` is under
        invocation = parent(span)
        assert invocation.name == "invoke_agent worker"
        outer = parent(invocation)
        assert outer.name == "execute_tool worker"
        return (outer.attributes or {})["gen_ai.tool.call.id"]

    tools = named(spans, "execute_tool rendezvous")
    chats = [s for s in named(spans, "chat scripted") if parent(s).name == "invoke_agent worker"]
    assert len(tools) == 2 and len(chats) == 4
    first, second = sorted(tools, key=lambda s: s.start_time or 0)
    assert (second.start_time or 0) < (first.end_time or 0)  # they did interleave
    who = {"call_b_1": "ann", "call_b_2": "bob"}
    for tool in tools:  # each result under the worker that asked for it
        assert (tool.attributes or {})["gen_ai.tool.call.result"] == f"met {who[call_of(tool)]}"
    answers = {
        call_of(s): json.loads(str((s.attributes or {})["gen_ai.output.messages"]))
        for s in chats
        if (s.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    }
    assert {k: v[0]["parts"] for k, v in answers.items()} == {
        "call_b_1": [{"type": "text", "content": "ann ok"}],
        "call_b_2": [{"type": "text", "content": "bob ok"}],
    }
    assert len({parent(s).context.span_id for s in tools if parent(s).context}) == 2


def test_the_cli_prints_spans_to_stderr_when_asked_with_no_provider(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCC_", "OTEL_"))}
    environment |= {TRACING_ENV: "1", "OTEL_TRACES_EXPORTER": "console"}
    state = tmp_path / "state.json"
    argv = ["run", str(HR_SPEC), "--state", str(state), "-q", "-p", "Onboard Ada"]
    result = subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    decoder = json.JSONDecoder()
    spans, text = [], result.stderr
    at = text.find("{")
    while at >= 0:
        span, end = decoder.raw_decode(text, at)
        spans.append(span)
        at = text.find("{", end)
    root = next(s for s in spans if s["name"] == "invoke_agent hr_agent")
    assert root["resource"]["attributes"]["service.name"] == "callcc"
    traceparent = json.loads(state.read_text())["trace"]["traceparent"]
    assert traceparent.split("-")[1:3] == [
        root["context"]["trace_id"][2:],
        root["context"]["span_id"][2:],
    ]
    assert "opentelemetry" not in result.stdout  # stdout keeps the run's own report


def test_a_drive_cut_short_ends_its_spans_and_leaves_nothing_in_the_tracer() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spec = make_spec([agent("main", "fetch")], [python_tool("fetch")], name="cut_short")
    turn = [calls(call("f1", "fetch", {"key": "k"})), say("done")]
    runtime = Runtime(spec, model_override=script({"main": turn}), tracing=provider)

    async def leave_early() -> None:
        for i in range(3):
            async with contextlib.aclosing(runtime.astream("x", run_id=f"r{i}")) as stream:
                async for event in stream:
                    if event.kind == "tool_started":  # fetch awaits: the run is mid-way
                        break

    asyncio.run(leave_early())
    assert runtime._tracer is not None and runtime._tracer._runs == {}  # no run held on to
    roots = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent main"]
    assert len(roots) == 3  # each ended (and exported) although its drive was cancelled
