"""Hostile model replies, served by the loopback OpenAI server: never a traceback, never a stuck
run. A malformed tool call is answered to the model with what was wrong (nothing runs); an
answer that is no chat completion at all suspends the run with reason `error` (resume asks
again); text with a lone surrogate is data, kept losslessly in documents and printable by the
CLI. Each runs without a store and with both store backends.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import loop_tools
import pytest
from store_fixtures import drop_schema, require_postgres, with_schema

from engine.cli import main
from engine.continuation import Continuation
from engine.runtime import Finished, Outcome, Runtime, Suspended
from engine.spec import load_spec
from engine.store import open_store

if TYPE_CHECKING:
    from openai_server import OpenAICompatServer

SPEC_YAML = """\
spec_version: 1
name: hostile_replies
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
    description: Say it back.
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {required: true}
agents:
  clerk:
    description: Echoes and pays.
    model: gpt
    instructions: Echo or pay when asked.
    tools: [echo, transfer]
entrypoint: clerk
"""


@pytest.fixture
def spec_file(
    openai_server: OpenAICompatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("CALLCC_TEST_API_KEY", "sk-test")
    path = tmp_path / "hostile.yaml"
    path.write_text(SPEC_YAML.replace("BASE_URL", openai_server.base_url), encoding="utf-8")
    return path


@pytest.fixture(params=["no store", "sqlite", "postgresql"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (no store), or the URL of an empty store of each backend."""
    if request.param == "no store":
        yield None
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
    else:
        server = require_postgres()
        schema = f"callcc_test_{uuid.uuid4().hex[:16]}"
        try:
            yield with_schema(server, schema)
        finally:
            drop_schema(server, schema)


def completion(message: Any, finish: Any = "tool_calls") -> dict[str, Any]:
    """A chat completion body around `message`, sent as it is."""
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


def calling(*tool_calls: Any) -> dict[str, Any]:
    return completion({"role": "assistant", "content": None, "tool_calls": list(tool_calls)})


def run(spec_file: Path, store: str | None, prompt: str = "go") -> tuple[Runtime, Outcome]:
    runtime = Runtime(load_spec(spec_file), store=store)
    return runtime, runtime.run(prompt, run_id="hostile-run")


def status(store: str | None) -> str | None:
    if store is None:
        return None
    opened = open_store(store)
    try:
        return opened.get_run("hostile-run").status
    finally:
        opened.close()


# -- a malformed tool call is answered with what was wrong ---------------------------------

MALFORMED_CALLS = {
    "arguments null": (
        {"id": "c1", "type": "function", "function": {"name": "echo", "arguments": None}},
        "error: `function.arguments` is missing: arguments must be a JSON string",
    ),
    "arguments an object": (
        {"id": "c1", "type": "function", "function": {"name": "echo", "arguments": {"text": "x"}}},
        "error: `function.arguments` is a JSON object: arguments must be a JSON string",
    ),
    "name null": (
        {"id": "c1", "type": "function", "function": {"name": None, "arguments": "{}"}},
        "error: the tool call names no function (`function.name` is missing or not text)",
    ),
    "not a function call": (
        {"id": "c1", "type": "custom", "custom": {"name": "echo", "input": "x"}},
        "error: tool calls of type 'custom' are not supported; call the tool as a function",
    ),
    "no function object": (
        {"id": "c1", "type": "function", "function": "echo"},
        "error: the tool call has no `function` object",
    ),
    "a lone surrogate in the arguments": (
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "echo", "arguments": '{"text": "\\ud800"}'},
        },
        "error: the arguments are not plain JSON: /text holds a lone surrogate (U+D800), which "
        "is not Unicode text; call echo again with valid arguments",
    ),
}


@pytest.mark.parametrize("shape", list(MALFORMED_CALLS))
def test_a_malformed_tool_call_is_answered_with_the_fault_and_nothing_runs(
    openai_server: OpenAICompatServer, spec_file: Path, store_at: str | None, shape: str
) -> None:
    raw_call, error = MALFORMED_CALLS[shape]
    openai_server.push(body=calling(raw_call))
    openai_server.push(text="I could not do it.")

    runtime, outcome = run(spec_file, store_at)
    runtime.close()

    assert isinstance(outcome, Finished), outcome
    assert outcome.output == "I could not do it."
    assert loop_tools.CALLS == []
    assistant, answer = openai_server.requests[1]["messages"][2:]
    (recorded,) = assistant["tool_calls"]
    assert recorded["id"] == "c1" and recorded["type"] == "function"
    assert isinstance(recorded["function"]["name"], str)
    assert isinstance(recorded["function"]["arguments"], str)
    assert answer["role"] == "tool" and answer["tool_call_id"] == "c1"
    assert answer["content"].startswith(error), answer["content"]
    assert status(store_at) in (None, "finished")


def test_malformed_calls_beside_a_good_one_do_not_stop_it(
    openai_server: OpenAICompatServer, spec_file: Path
) -> None:
    openai_server.push(
        body=calling(
            "not even an object",
            {"type": "function", "function": {"name": "echo", "arguments": '{"text": "hi"}'}},
            {"id": 7, "type": "function", "function": {"name": "echo", "arguments": []}},
        )
    )
    openai_server.push(text="Done.")

    runtime, outcome = run(spec_file, None)
    runtime.close()

    assert isinstance(outcome, Finished) and outcome.output == "Done."
    assert loop_tools.CALLS == [("echo", {"text": "hi"})]
    answers = [m for m in openai_server.requests[1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in answers] == ["call_1_0", "call_1_1", "call_1_2"]
    assert answers[0]["content"].startswith("error: the tool call is not an object")
    assert answers[1]["content"] == "echo: hi"
    assert answers[2]["content"].startswith("error: `function.arguments` is a JSON array")


# -- an answer that is no chat completion suspends with `error` ----------------------------

NOT_A_COMPLETION = {
    "HTML with status 200": (
        {"raw": b"<html>502 Bad Gateway</html>", "content_type": "text/html"},
        "the answer is not JSON (",
    ),
    "not JSON, said to be JSON": ({"raw": b'{"choices": [ cut'}, "the answer is not JSON ("),
    "not UTF-8": ({"raw": b"\xff\xfe\x00garbage"}, "the answer is not JSON ("),
    "an error object with status 200": (
        {"body": {"error": {"message": "overloaded"}}},
        "not a chat completion (no `choices` list): an error: {'message': 'overloaded'}",
    ),
    "choices an object": ({"body": {"choices": {"0": {}}}}, "no `choices` list"),
    "message null": ({"body": completion(None, "stop")}, "`choices[0].message` is not an"),
    "content a list": (
        {"body": completion({"role": "assistant", "content": [{"type": "text"}]}, "stop")},
        "the answer's `content` is a list, not what Chat Completions sends",
    ),
    "tool calls a string": (
        {"body": completion({"role": "assistant", "content": None, "tool_calls": "echo"})},
        "the answer's `tool_calls` is a str",
    ),
    "finish reason a number": (
        {"body": completion({"role": "assistant", "content": "hi"}, 3)},
        "the answer's `finish_reason` is a int",
    ),
}


@pytest.mark.parametrize("shape", list(NOT_A_COMPLETION))
def test_an_answer_that_is_no_chat_completion_suspends_with_error_then_resumes(
    openai_server: OpenAICompatServer, spec_file: Path, store_at: str | None, shape: str
) -> None:
    answer, fragment = NOT_A_COMPLETION[shape]
    openai_server.push(**answer)
    openai_server.push(text="Back again.")

    runtime, outcome = run(spec_file, store_at)
    try:
        assert isinstance(outcome, Suspended), outcome
        (entry,) = outcome.continuation.pending()
        assert (entry.reason, entry.decisions) == ("error", ("resume", "stop"))
        assert entry.detail is not None and fragment in entry.detail, entry.detail
        assert status(store_at) in (None, "suspended")
        again = runtime.resume(outcome.continuation.resume(entry.id))
    finally:
        runtime.close()

    assert isinstance(again, Finished) and again.output == "Back again."
    assert status(store_at) in (None, "finished")


def test_an_integer_of_too_many_digits_in_an_answer_is_not_json(
    openai_server: OpenAICompatServer, spec_file: Path
) -> None:
    openai_server.push(raw=b'{"choices": [], "created": 1' + b"0" * 5000 + b"}")

    runtime, outcome = run(spec_file, None)
    runtime.close()

    assert isinstance(outcome, Suspended)
    (entry,) = outcome.continuation.pending()
    assert entry.detail is not None and "the answer is not JSON (Exceeds the limit" in entry.detail


# -- a lone surrogate is data ---------------------------------------------------------------

SURROGATE = "a\ud800b"


@pytest.mark.parametrize("key", [None, "hostile-signing-key-0123456789"])
def test_a_lone_surrogate_survives_the_document_losslessly(
    openai_server: OpenAICompatServer, spec_file: Path, key: str | None
) -> None:
    """engine/_json.py dumps: orjson refuses the surrogate and the standard library fallback
    wrote it raw, so the document could be neither signed nor written as UTF-8."""
    openai_server.push(
        body=completion(
            {
                "role": "assistant",
                "content": SURROGATE,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "transfer", "arguments": '{"to": "bob", "amount": 5}'},
                    }
                ],
            }
        )
    )
    openai_server.push(text=f"paid {SURROGATE}")
    runtime = Runtime(load_spec(spec_file), secret_key=key)
    try:
        outcome = runtime.run("go")
        assert isinstance(outcome, Suspended), outcome
        for text in (outcome.continuation.to_json(), outcome.continuation.to_json(indent=2)):
            text.encode("utf-8")  # valid UTF-8: a file, a queue, a signature can take it
            loaded = runtime.load(text)
            assert loaded.frames()[0][1].messages[1]["content"] == SURROGATE
            assert loaded == outcome.continuation
        done = runtime.resume(runtime.load(outcome.continuation.to_json()).approve("t1"))
    finally:
        runtime.close()

    assert isinstance(done, Finished) and done.output == f"paid {SURROGATE}"
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]


def strict_stream() -> io.TextIOWrapper:
    """A stream that encodes like a UTF-8 terminal or pipe: a lone surrogate raises."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def written(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_the_cli_prints_a_lone_surrogate_without_a_traceback(
    openai_server: OpenAICompatServer, spec_file: Path, tmp_path: Path, output_format: str
) -> None:
    openai_server.push(text=SURROGATE)
    out, err = strict_stream(), strict_stream()

    code = main(["run", str(spec_file), "-p", "go", "--format", output_format], out, err)

    assert code == 0, written(err)
    if output_format == "json":
        assert json.loads(written(out))["output"] == SURROGATE  # the escape reads back as is
    else:
        assert written(out).splitlines()[-1] == "a\\ud800b"


def test_the_cli_writes_and_resumes_a_state_holding_lone_surrogates(
    openai_server: OpenAICompatServer,
    spec_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transient error whose message holds a surrogate: its `error` entry's fingerprint (and
    the signature) hashed text that UTF-8 refused."""
    monkeypatch.setenv("CALLCC_SECRET_KEY", "hostile-signing-key-0123456789")
    state = tmp_path / "state.json"
    openai_server.push(status=503, error=f"overloaded {SURROGATE}")
    openai_server.push(status=400, error=f"refused {SURROGATE}")
    out, err = strict_stream(), strict_stream()

    first = main(["run", str(spec_file), "-p", SURROGATE, "--state", str(state)], out, err)
    saved = state.read_text(encoding="utf-8")
    pending = main(["pending", str(state), "--format", "json"], out, err)
    second = main(["resume", str(state), "--continue", "error-1"], out, err)

    assert (first, pending, second) == (3, 3, 1), written(err)
    document = Continuation.from_json(saved, keys=(b"hostile-signing-key-0123456789",))
    (entry,) = document.pending()
    assert entry.detail is not None and f"overloaded {SURROGATE}" in entry.detail
    assert document.frames()[0][1].messages[0]["content"] == SURROGATE
    assert f"refused {SURROGATE}".encode("unicode_escape").decode() in written(err)
