"""PydanticAI's side, run in bench/.venvs/pydantic_ai.

As its "Deferred Tools" documentation shows: the tool has `requires_approval=True`, the agent's
`output_type` includes `DeferredToolRequests`, the run ends with those requests, the message
history is serialized with `ModelMessagesTypeAdapter`, and a new run continues it with
`DeferredToolResults`. The scripted model is a `FunctionModel`.

Nested approval is not native: a tool that runs a delegate agent whose own tool needs approval
gets `DeferredToolRequests` back as that agent's output, and nothing carries it up to the
caller (pydantic/pydantic-ai#3274, #3527); the documented way out is to stash the delegate's
history by hand and raise `ApprovalRequired`, which is application code, not the framework's.
"""

from __future__ import annotations

from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.usage import UsageLimits

from bench.peers import script
from bench.peers.worker import LOOP, Workload, on_loop, serve

NESTED_UNSUPPORTED = (
    "no native propagation of a delegate agent's DeferredToolRequests to the caller "
    "(pydantic/pydantic-ai#3274, #3527)"
)


def scripted(agent: str) -> FunctionModel:
    """The shared script as a `FunctionModel`: the turn follows from the tool returns seen."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen = 0
        for message in messages:
            if isinstance(message, ModelRequest):
                for part in message.parts:
                    if isinstance(part, UserPromptPart):
                        seen = 0
                    elif isinstance(part, ToolReturnPart):
                        seen += 1
        turn = script.turn(agent, seen)
        if turn.tool is None:
            return ModelResponse(parts=[TextPart(turn.text or "")])
        call = ToolCallPart(turn.tool, dict(turn.arguments), tool_call_id=turn.call_id)
        return ModelResponse(parts=[call])

    return FunctionModel(answer)


def payer(model: Model) -> Agent[None, str | DeferredToolRequests]:
    """One agent, one tool that needs approval."""
    agent = Agent(model, output_type=[str, DeferredToolRequests], instructions="Pay.")
    agent.tool_plain(requires_approval=True)(script.transfer)
    return agent


def approval(agent: Agent[None, str | DeferredToolRequests]) -> Workload:
    """run -> DeferredToolRequests -> bytes -> fresh messages -> approve -> run -> text,
    awaited on the worker's running loop."""
    last: list[bytes] = [b""]

    async def aheld() -> list[ModelMessage]:
        result = await agent.run(script.PROMPT)
        assert isinstance(result.output, DeferredToolRequests), result.output
        return result.all_messages()

    def held() -> list[ModelMessage]:
        return LOOP.run_until_complete(aheld())

    def suspend() -> bytes:
        return ModelMessagesTypeAdapter.dump_json(held())

    async def acycle() -> None:
        data = last[0] = ModelMessagesTypeAdapter.dump_json(await aheld())
        messages = ModelMessagesTypeAdapter.validate_json(data)
        last_response = messages[-1]
        assert isinstance(last_response, ModelResponse)
        [call] = last_response.tool_calls
        assert (call.tool_name, call.args_as_dict()) == ("transfer", script.TRANSFER_ARGS)
        decided = DeferredToolResults(approvals={call.tool_call_id: True})
        result = await agent.run(message_history=messages, deferred_tool_results=decided)
        assert result.output == script.FINAL, result.output
        returns = [
            p.content
            for m in result.new_messages()
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        ]
        assert returns == [script.TRANSFER_RESULT], returns

    return on_loop(acycle, state_bytes=lambda: len(last[0]), suspend=suspend, live=held)


def long_loop() -> Workload:
    """50 turns each calling `echo`, then the answer; the state is the message history."""
    agent = Agent(scripted("looper"), instructions="Loop.")
    agent.tool_plain(script.echo)
    last: list[list[ModelMessage]] = []
    limits = UsageLimits(request_limit=script.TURNS + 1)  # the default is 50 requests

    async def acycle() -> None:
        result = await agent.run("loop", usage_limits=limits)
        assert result.output == script.LOOP_FINAL, result.output
        messages = result.all_messages()
        assert len(messages) == 2 + 2 * script.TURNS, len(messages)
        last[:] = [messages]

    def state_bytes() -> int:
        return len(ModelMessagesTypeAdapter.dump_json(last[0]))

    return on_loop(acycle, state_bytes=state_bytes)


def make(name: str, server: str | None) -> Workload | str:
    """The workload `name`, or why PydanticAI cannot do it natively."""
    if name == "approval_cycle":
        return approval(payer(scripted("payer")))
    if name == "over_http":
        provider = OpenAIProvider(base_url=server, api_key="bench")
        return approval(payer(OpenAIChatModel("bench", provider=provider)))
    if name == "nested_approval":
        return NESTED_UNSUPPORTED
    if name == "long_loop":
        return long_loop()
    raise KeyError(name)


if __name__ == "__main__":
    serve(make)
