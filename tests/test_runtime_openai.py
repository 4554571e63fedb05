"""A run on the real `openai` client against a loopback server: suspend, approve, resume."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import loop_tools
import pytest
from builders import VIRTUAL_SPEC, agent, finished, gated, suspended

from engine.models.openai import OpenAIChatModel
from engine.runtime import Outcome, Runtime
from engine.spec.model import OpenAIModel, Spec

if TYPE_CHECKING:
    from openai_server import OpenAICompatServer


def openai_spec(base_url: str) -> Spec:
    bank = agent("bank", "transfer")
    return Spec(
        spec_version=1,
        name="openai-bank",
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
        tools={"transfer": gated("transfer")},
        agents={"bank": bank},
        digest="sha256:test",
    )


def test_an_approval_round_trip_over_the_openai_client(
    openai_server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_TEST_OPENAI_KEY", "sk-test")
    openai_server.push(
        tool_calls=[{"id": "call_1", "name": "transfer", "arguments": {"to": "bob", "amount": 5}}]
    )
    openai_server.push(text="Sent 5 to bob.")

    async def scenario() -> tuple[Outcome, Outcome]:
        runtime = Runtime(openai_spec(openai_server.base_url))
        model = runtime.program.agents["bank"].model
        assert isinstance(model, OpenAIChatModel)
        try:
            first = await runtime.arun("Send bob 5", run_id="oa-1")
            continuation = suspended(first)
            assert [p.path for p in continuation.pending()] == ["bank/call_1"]
            assert loop_tools.CALLS == []
            second = await runtime.aresume(continuation.approve("call_1"))
        finally:
            await model.aclose()
        return first, second

    _, outcome = asyncio.run(scenario())

    assert finished(outcome).output == "Sent 5 to bob."
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]
    first, second = openai_server.requests
    assert first["messages"] == [
        {"role": "system", "content": "You are bank."},
        {"role": "user", "content": "Send bob 5"},
    ]
    assert [t["function"]["name"] for t in first["tools"]] == ["transfer"]
    assert second["messages"] == [
        {"role": "system", "content": "You are bank."},
        {"role": "user", "content": "Send bob 5"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "transfer",
                        "arguments": json.dumps({"to": "bob", "amount": 5}),
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": '{"ok": true, "to": "bob", "amount": 5}',
        },
    ]
    assert openai_server.request_headers[0]["authorization"] == "Bearer sk-test"
