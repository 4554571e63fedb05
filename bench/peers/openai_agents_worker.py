"""The OpenAI Agents SDK's side, run in bench/.venvs/openai_agents.

As its "Human-in-the-loop" guide shows: `function_tool(needs_approval=True)`, the run returns
`interruptions`, `result.to_state().to_string()` serializes the paused run,
`RunState.from_string(agent, text)` loads it, `state.approve(item)` decides, and
`Runner.run(agent, state)` resumes. Sub-agents are `Agent.as_tool()`; the guide says approvals
raised inside them surface on the outer run, which the nested workload checks.

The scripted model implements `Model.get_response` (the SDK's custom-model interface). Tracing
is disabled: there is no key to export to, and callcc does no tracing either.
"""

from __future__ import annotations

import json
from typing import Any

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    RunState,
    function_tool,
    set_tracing_disabled,
)
from agents.items import ModelResponse, ToolCallOutputItem
from agents.models.interface import Model
from agents.testing import assistant_message, function_call
from agents.usage import Usage
from openai import AsyncOpenAI

from bench.peers import script
from bench.peers.worker import LOOP, Workload, on_loop, serve

set_tracing_disabled(True)


class ScriptModel(Model):
    """The shared script: the turn follows from the tool outputs in the input."""

    def __init__(self, agent: str) -> None:
        self.agent = agent

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kw: Any):
        seen = 0
        for item in [] if isinstance(input, str) else input:
            if item.get("role") == "user":
                seen = 0
            elif item.get("type") == "function_call_output":
                seen += 1
        turn = script.turn(self.agent, seen)
        if turn.tool is None:
            output = [assistant_message(turn.text or "")]
        else:
            arguments = turn.arguments
            if turn.tool in script.NESTED:  # Agent.as_tool() takes {"input": ...}
                arguments = {"input": arguments["request"]}
            output = [function_call(turn.tool, arguments, call_id=turn.call_id)]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError("the benchmark does not stream")


def transfer(to: str, amount: int) -> str:
    """Move money."""
    return script.transfer(to, amount)


def echo(text: str) -> str:
    """Echo the text."""
    return script.echo(text)


def payer(model: Model) -> Agent:
    tool = function_tool(transfer, needs_approval=True)
    return Agent(name="payer", instructions="Pay.", model=model, tools=[tool])


def nested() -> Agent:
    """root -> child -> grandchild, each a tool of the one above; the last pays."""
    root, child, leaf = script.NESTED
    below = Agent(
        name=leaf,
        instructions=f"You are {leaf}.",
        model=ScriptModel(leaf),
        tools=[function_tool(transfer, needs_approval=True)],
    )
    for name in (child, root):
        tool = below.as_tool(tool_name=below.name, tool_description="delegate")
        below = Agent(
            name=name, instructions=f"You are {name}.", model=ScriptModel(name), tools=[tool]
        )
    return below


def approval(agent: Agent, final: str) -> Workload:
    """run -> interruptions -> to_string -> from_string -> approve -> run -> final output,
    awaited on the worker's running loop."""
    last: list[bytes] = [b""]

    async def aheld() -> Any:
        result = await Runner.run(agent, script.PROMPT)
        assert len(result.interruptions) == 1, result.interruptions
        return result.to_state()

    def held() -> Any:
        return LOOP.run_until_complete(aheld())

    def suspend() -> bytes:
        return held().to_string().encode()

    async def acycle() -> None:
        data = last[0] = (await aheld()).to_string().encode()
        state = await RunState.from_string(agent, data.decode())
        [item] = state.get_interruptions()
        assert item.tool_name == "transfer", item
        assert json.loads(item.arguments or "") == script.TRANSFER_ARGS, item
        state.approve(item)
        result = await Runner.run(agent, state)
        assert result.final_output == final, result.final_output
        outputs = [i.output for i in result.new_items if isinstance(i, ToolCallOutputItem)]
        assert outputs[-1] in (script.TRANSFER_RESULT, "child done"), outputs

    return on_loop(acycle, state_bytes=lambda: len(last[0]), suspend=suspend, live=held)


def long_loop() -> Workload:
    """50 turns each calling `echo`, then the answer; the state is the serialized RunState."""
    agent = Agent(
        name="looper",
        instructions="Loop.",
        model=ScriptModel("looper"),
        tools=[function_tool(echo)],
    )
    last: list[Any] = []

    async def acycle() -> None:
        result = await Runner.run(agent, "loop", max_turns=script.TURNS + 1)
        assert result.final_output == script.LOOP_FINAL, result.final_output
        outputs = [i for i in result.new_items if isinstance(i, ToolCallOutputItem)]
        assert len(outputs) == script.TURNS, len(outputs)
        last[:] = [result]

    def state_bytes() -> int:
        return len(last[0].to_state().to_string().encode())

    return on_loop(acycle, state_bytes=state_bytes)


def make(name: str, server: str | None) -> Workload | str:
    """The workload `name`."""
    if name == "approval_cycle":
        return approval(payer(ScriptModel("payer")), script.FINAL)
    if name == "over_http":
        client = AsyncOpenAI(base_url=server, api_key="bench")
        return approval(payer(OpenAIChatCompletionsModel("bench", client)), script.FINAL)
    if name == "nested_approval":
        return approval(nested(), f"{script.NESTED[0]} done")
    if name == "long_loop":
        return long_loop()
    raise KeyError(name)


if __name__ == "__main__":
    serve(make)
