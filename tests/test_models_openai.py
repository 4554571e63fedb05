"""The openai adapter, with the real `openai` client against a scripted server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from engine.errors import ModelError
from engine.models.base import ModelReply, ModelRequest, ToolCall
from engine.models.openai import OpenAIChatModel, build_model
from engine.spec.model import OpenAIModel

if TYPE_CHECKING:
    from openai_server import OpenAICompatServer

LOOKUP_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
    },
}


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def model_for(base_url: str, **fields: Any) -> OpenAIChatModel:
    return build_model(OpenAIModel(name="main", model="test-model", base_url=base_url, **fields))


def request(
    messages: Sequence[Mapping[str, Any]] = ({"role": "user", "content": "hello"},),
    *,
    instructions: str = "Be brief.",
    tools: Sequence[Mapping[str, Any]] = (),
) -> ModelRequest:
    return ModelRequest(
        agent="main", instructions=instructions, messages=messages, tools=tools, attempt=0
    )


def complete(model: OpenAIChatModel, *requests: ModelRequest) -> list[ModelReply]:
    """Run the requests in order on one event loop, then close the client."""

    async def go() -> list[ModelReply]:
        try:
            return [await model.complete(r) for r in requests]
        finally:
            await model.aclose()

    return asyncio.run(go())


def failure(model: OpenAIChatModel, req: ModelRequest | None = None) -> ModelError:
    with pytest.raises(ModelError) as caught:
        complete(model, req or request())
    return caught.value


def test_text_reply(openai_server: OpenAICompatServer) -> None:
    openai_server.push(text="hi there", usage={"prompt_tokens": 7, "completion_tokens": 2})

    [reply] = complete(model_for(openai_server.base_url), request())

    assert reply == ModelReply(
        content="hi there",
        tool_calls=(),
        finish_reason="stop",
        usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    )


def test_tool_calls_keep_ids_names_and_raw_arguments(openai_server: OpenAICompatServer) -> None:
    openai_server.push(
        tool_calls=[
            {"id": "call_a", "name": "lookup", "arguments": '{"word": "cat"}'},
            {"id": "call_b", "name": "lookup", "arguments": '{"word": '},  # malformed on purpose
        ]
    )

    [reply] = complete(model_for(openai_server.base_url), request(tools=[LOOKUP_TOOL]))

    assert reply.content is None
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls == (
        ToolCall(id="call_a", name="lookup", arguments='{"word": "cat"}'),
        ToolCall(id="call_b", name="lookup", arguments='{"word": '),
    )


def test_request_body(openai_server: OpenAICompatServer) -> None:
    openai_server.push(text="ok")
    openai_server.push(text="ok again")
    history = [
        {"role": "user", "content": "define cat"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"word": "cat"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "a small feline"},
    ]
    model = model_for(openai_server.base_url, params={"temperature": 0.2, "top_k": 5})

    complete(
        model,
        request(history, tools=[LOOKUP_TOOL]),
        request([{"role": "user", "content": "hi"}], instructions=""),
    )

    with_tools, bare = openai_server.requests
    assert with_tools == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            history[0],
            {**history[1], "content": ""},
            history[2],
        ],
        "tools": [LOOKUP_TOOL],
        "stream": False,
        "temperature": 0.2,
        "top_k": 5,
    }
    assert history[1]["content"] is None, "the caller's messages must not be modified"
    assert "tools" not in bare
    assert bare["messages"] == [{"role": "user", "content": "hi"}]


def test_finish_reason_length_passes_through(openai_server: OpenAICompatServer) -> None:
    openai_server.push(text="truncat", finish_reason="length")

    [reply] = complete(model_for(openai_server.base_url), request())

    assert (reply.content, reply.finish_reason) == ("truncat", "length")


def test_key_from_named_env_var_is_sent(
    openai_server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_TEST_KEY", "sk-test-123")
    openai_server.push(text="ok")

    complete(model_for(openai_server.base_url, api_key_env="CALLCC_TEST_KEY"), request())

    assert openai_server.request_headers[0]["authorization"] == "Bearer sk-test-123"


def test_client_is_reused_across_calls(openai_server: OpenAICompatServer) -> None:
    openai_server.push(text="one")
    openai_server.push(text="two")
    model = model_for(openai_server.base_url)

    async def go() -> tuple[object, object]:
        try:
            await model.complete(request())
            first = model._client
            await model.complete(request())
            return first, model._client
        finally:
            await model.aclose()

    first, second = asyncio.run(go())
    assert first is not None and first is second


def test_server_error_then_success_is_retried(openai_server: OpenAICompatServer) -> None:
    openai_server.push(status=500, retry_after_ms=1)
    openai_server.push(text="recovered")

    [reply] = complete(model_for(openai_server.base_url, max_retries=1), request())

    assert reply.content == "recovered"
    assert len(openai_server.requests) == 2


def test_server_error_without_retries_is_transient(openai_server: OpenAICompatServer) -> None:
    openai_server.push(status=500, error="upstream exploded")

    error = failure(model_for(openai_server.base_url, max_retries=0))

    assert error.transient is True
    assert error.model == "main"
    assert "HTTP 500" in str(error)
    assert "upstream exploded" in str(error)
    assert openai_server.base_url in str(error)


def test_rate_limit_is_transient(openai_server: OpenAICompatServer) -> None:
    openai_server.push(status=429, error="slow down")

    assert failure(model_for(openai_server.base_url, max_retries=0)).transient is True


def test_bad_request_is_permanent(openai_server: OpenAICompatServer) -> None:
    openai_server.push(status=400, error="messages: invalid role")

    error = failure(model_for(openai_server.base_url, max_retries=2))

    assert error.transient is False
    assert "HTTP 400" in str(error)
    assert len(openai_server.requests) == 1, "a 400 is not retried"


def test_auth_error_names_the_variable_never_the_key(
    openai_server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_TEST_KEY", "sk-secret-xyz")
    # Some servers echo the key they refused; the error must still not show it.
    openai_server.push(status=401, error="Incorrect API key provided: sk-secret-xyz")

    error = failure(model_for(openai_server.base_url, api_key_env="CALLCC_TEST_KEY"))

    assert error.transient is False
    assert "HTTP 401" in str(error)
    assert "CALLCC_TEST_KEY" in str(error)
    assert "sk-secret-xyz" not in str(error)


def test_timeout_is_transient(openai_server: OpenAICompatServer) -> None:
    openai_server.push(text="too late", delay=2.0)

    error = failure(model_for(openai_server.base_url, timeout=0.3, max_retries=0))

    assert error.transient is True
    assert "0.3 s" in str(error)


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes

    error = failure(model_for(f"http://127.0.0.1:{port}/v1", max_retries=0))

    assert error.transient is True
    assert f"127.0.0.1:{port}" in str(error)


def test_named_key_variable_unset_is_permanent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLCC_MISSING_KEY", raising=False)

    error = failure(model_for("http://127.0.0.1:9/v1", api_key_env="CALLCC_MISSING_KEY"))

    assert error.transient is False
    assert "CALLCC_MISSING_KEY" in str(error)


def test_no_choices_is_transient(openai_server: OpenAICompatServer) -> None:
    openai_server.push(
        body={"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}
    )

    error = failure(model_for(openai_server.base_url))

    assert error.transient is True
    assert "no choices" in str(error)


def test_params_may_not_override_the_request(openai_server: OpenAICompatServer) -> None:
    error = failure(model_for(openai_server.base_url, params={"messages": []}))

    assert error.transient is False
    assert "messages" in str(error)
    assert openai_server.requests == []


def test_unscripted_request_fails_at_once(openai_server: OpenAICompatServer) -> None:
    error = failure(model_for(openai_server.base_url, max_retries=2))

    assert "no answer pushed" in str(error)
    assert len(openai_server.requests) == 1, "x-should-retry: false stops the client retrying"
    openai_server.reset()


def test_server_json_is_openai_shaped(openai_server: OpenAICompatServer) -> None:
    """Other tests build on the server; pin the wire format it speaks."""
    import http.client

    openai_server.push(tool_calls=[{"name": "lookup", "arguments": {"word": "cat"}}])
    conn = http.client.HTTPConnection("127.0.0.1", openai_server.port)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m"}))
        answer = conn.getresponse()
        body = json.loads(answer.read())
    finally:
        conn.close()

    assert answer.status == 200
    assert body["object"] == "chat.completion"
    assert body["model"] == "m"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0_0",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"word": "cat"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
            "logprobs": None,
        }
    ]
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
