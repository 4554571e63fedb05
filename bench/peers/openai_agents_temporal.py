"""The OpenAI Agents SDK on Temporal (`temporalio.contrib.openai_agents`), in
bench/.venvs/openai_agents_temporal: the peer of bench/bench_temporal.py.

The SDK's documented way, end to end. `OpenAIAgentsPlugin` on the client runs every model
call as an activity (`invoke_model_activity`), and its `model_provider` (the plugin's hook
"for testing or custom model integrations") answers from the same script callcc's scripted
model plays. Tools that do I/O are activities (`workflow.activity_as_tool`, as the
integration's README says of them), and `authorize_account` is one with `needs_approval`;
`account_agent` is `Agent.as_tool()`. Approval follows the SDK's human-in-the-loop guide
inside the workflow: the run returns `interruptions`, the workflow waits for the `approve`
update, then `state = result.to_state(); state.approve(item); Runner.run(agent, state)`.

    python -m bench.peers.openai_agents_temporal worker ADDRESS QUEUE SCRIPTS  # until SIGTERM
    python -m bench.peers.openai_agents_temporal drive ADDRESS QUEUE           # requests on stdin

The worker prints `worker ready` once it polls. The driver answers one JSON line a request:
`{"op": "cycles", "n", "script", "in_workflow"}` -> seconds of each approval cycle (start,
wait for the approval, approve, finished) and the history of the last; `{"op": "history",
"script", "turns"}` -> events and bytes of one finished loop run; `{"op": "quit"}`. SCRIPTS
is the folder of the callcc scripts (JSON) the bench wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from agents import Agent, Runner, function_tool, set_tracing_disabled
    from agents.items import ModelResponse
    from agents.models.interface import Model, ModelProvider
    from agents.testing import assistant_message, function_call
    from agents.usage import Usage
    from temporalio.contrib.openai_agents import workflow as agents_workflow

TIMEOUT = timedelta(seconds=60)
HR_PROMPT = "Onboard Ada"
AGENT_TOOLS = {"account_agent"}
"""Tools that are agents (`Agent.as_tool()` takes `{"input": ...}`, callcc `{"request": ...}`)."""


# -- the model: callcc's script, served from the worker ------------------------------------


class ScriptModel(Model):
    """Turn k of `agent` in a callcc script, k = tool-result batches since the user spoke."""

    def __init__(self, turns: list[dict[str, Any]], agent: str) -> None:
        self.turns, self.agent = turns, agent

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kw: Any):
        turn, previous = 0, None
        for item in [] if isinstance(input, str) else input:
            kind = item.get("type") or item.get("role")
            if kind == "user":
                turn = 0
            elif kind == "function_call_output" and previous != "function_call_output":
                turn += 1
            previous = kind
        if turn >= len(self.turns):
            raise RuntimeError(f"the script of {self.agent} has no turn {turn}")
        step = self.turns[turn]
        output: list[Any] = [assistant_message(step["text"])] if step.get("text") else []
        for call in step.get("tool_calls", []):
            arguments = call["arguments"]
            if call["name"] in AGENT_TOOLS:
                arguments = {"input": arguments["request"]}
            output.append(function_call(call["name"], arguments, call_id=call["id"]))
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError("the benchmark does not stream")


class ScriptProvider(ModelProvider):
    """Model name `FILE:AGENT`: that agent's turns in SCRIPTS/FILE (a callcc script, JSON)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scripts: dict[str, dict[str, Any]] = {}

    def get_model(self, model_name: str | None) -> Model:
        file, _, agent = (model_name or "").partition(":")
        if file not in self.scripts:
            self.scripts[file] = json.loads((self.folder / file).read_text())
        return ScriptModel(self.scripts[file]["agents"][agent], agent)


# -- the tools: activities, as the integration's README has tools that do I/O; or, for the
# -- variant `in_workflow`, the same functions as plain function tools run in the workflow --


@activity.defn
async def create_account(username: str, full_name: str) -> str:
    """Create a user account."""
    return json.dumps({"username": username, "full_name": full_name, "status": "created"})


@activity.defn
async def authorize_account(username: str, role: str) -> str:
    """Grant a role to an existing account."""
    return json.dumps({"username": username, "role": role, "status": "authorized"})


@activity.defn
async def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to one recipient."""
    return f"email to {to} with subject {subject!r} queued ({len(body)} characters)"


@activity.defn
async def note(text: str) -> str:
    """Note a line."""
    return "noted: " + text


ACTIVITIES = [create_account, authorize_account, send_email, note]


def tool(fn: Any, in_workflow: bool = False, **changes: Any) -> Any:
    """`fn` as an activity tool, or as a function tool run in the workflow."""
    if in_workflow:
        return replace(function_tool(fn), **changes)
    return replace(agents_workflow.activity_as_tool(fn, start_to_close_timeout=TIMEOUT), **changes)


def hr_agent(script: str, in_workflow: bool) -> Agent:
    """specs/hr_agent.yaml's two agents with the SDK: the account agent is a tool of HR's."""
    account = Agent(
        name="account_agent",
        instructions="You create user accounts and authorize them with the requested role.",
        model=f"{script}:account_agent",
        tools=[
            tool(create_account, in_workflow),
            tool(authorize_account, in_workflow, needs_approval=True),
        ],
    )
    return Agent(
        name="hr_agent",
        instructions="You onboard new employees.",
        model=f"{script}:hr_agent",
        tools=[
            account.as_tool(
                tool_name="account_agent",
                tool_description="Create and authorize a user account.",
            ),
            tool(send_email, in_workflow),
        ],
    )


# -- the workflows --------------------------------------------------------------------------


@dataclass
class Pending:
    """A call waiting for approval."""

    call_id: str
    tool: str
    arguments: str


@workflow.defn(name="bench.onboard")
class OnboardWorkflow:
    """The HR run: to the approval, wait for `approve`, resume, finish."""

    def __init__(self) -> None:
        self.pending: list[Pending] | None = None
        self.approved: set[str] | None = None
        self.output: str | None = None

    @workflow.run
    async def run(self, script: str, in_workflow: bool) -> str:
        agent = hr_agent(script, in_workflow)
        result = await Runner.run(agent, HR_PROMPT)
        while result.interruptions:
            self.pending = [
                Pending(i.call_id or "", i.tool_name or "", i.arguments or "")
                for i in result.interruptions
            ]
            await workflow.wait_condition(lambda: self.approved is not None)
            state = result.to_state()
            for item in result.interruptions:
                (state.approve if item.call_id in (self.approved or ()) else state.reject)(item)
            self.pending, self.approved = None, None
            result = await Runner.run(agent, state)
        self.output = str(result.final_output)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.output

    @workflow.update(name="waiting")
    async def waiting(self) -> list[Pending]:
        """The calls the run waits on, once it waits (empty when it ended)."""
        await workflow.wait_condition(lambda: self.pending is not None or self.output is not None)
        return self.pending or []

    @workflow.update(name="approve")
    async def approve(self, call_ids: list[str]) -> str:
        """Approve these calls (the rest are rejected); the run's output once it ends."""
        self.approved = set(call_ids)
        await workflow.wait_condition(lambda: self.output is not None)
        return self.output or ""

    @approve.validator
    def _known(self, call_ids: list[str]) -> None:
        known = {p.call_id for p in self.pending or ()}
        if self.pending is None or self.approved is not None or not set(call_ids) <= known:
            raise ApplicationError(f"the run waits on {sorted(known)}, not {sorted(call_ids)}")


@workflow.defn(name="bench.loop")
class LoopWorkflow:
    """callcc's loop spec with the SDK: the model calls `note`, then answers."""

    @workflow.run
    async def run(self, script: str, turns: int) -> str:
        agent = Agent(name="main", instructions="Note.", model=f"{script}:main", tools=[tool(note)])
        result = await Runner.run(agent, "go", max_turns=turns + 1)
        return str(result.final_output)


# -- the processes --------------------------------------------------------------------------


def plugin(scripts: Path | None) -> Any:
    """The SDK's plugin; on a worker, models answer from the scripts in `scripts`."""
    from temporalio.contrib.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin

    params = ModelActivityParameters(start_to_close_timeout=TIMEOUT)
    provider = ScriptProvider(scripts) if scripts else None
    return OpenAIAgentsPlugin(model_params=params, model_provider=provider)


async def worker(address: str, queue: str, scripts: Path) -> None:
    """Poll `queue` until SIGTERM."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address, plugins=[plugin(scripts)])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[OnboardWorkflow, LoopWorkflow],
        activities=ACTIVITIES,
    ):
        print("worker ready", flush=True)
        await stop.wait()


async def drive(address: str, queue: str) -> None:
    """Answer the bench's requests on stdin."""
    from temporalio.client import Client

    from bench.peers.temporal_history import history

    client = await Client.connect(address, plugins=[plugin(None)])
    out, sys.stdout = sys.stdout, sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        if request["op"] == "cycles":
            samples, run_id = [], ""
            for _ in range(request["n"]):
                began = time.perf_counter()
                run_id = await cycle(client, queue, request["script"], request["in_workflow"])
                samples.append(time.perf_counter() - began)
            answer: dict[str, Any] = {"samples": samples, "history": await history(client, run_id)}
        else:
            run_id = uuid.uuid4().hex
            output = await client.execute_workflow(
                LoopWorkflow.run,
                args=[request["script"], request["turns"]],
                id=run_id,
                task_queue=queue,
            )
            assert output == "done", output
            answer = await history(client, run_id)
        out.write(json.dumps(answer) + "\n")
        out.flush()


async def cycle(client: Any, queue: str, script: str, in_workflow: bool) -> str:
    """One HR cycle: start, the approval seen, approve, finished; its workflow id."""
    run_id = uuid.uuid4().hex
    handle = await client.start_workflow(
        OnboardWorkflow.run, args=[script, in_workflow], id=run_id, task_queue=queue
    )
    [pending] = await handle.execute_update(OnboardWorkflow.waiting)
    assert pending.tool == "authorize_account", pending
    assert json.loads(pending.arguments) == {"username": "ada", "role": "engineer"}, pending
    output = await handle.execute_update(OnboardWorkflow.approve, [pending.call_id])
    assert output.startswith("Ada Lovelace is onboarded"), output
    return run_id


def main(argv: list[str]) -> None:
    set_tracing_disabled(True)
    # workflows must come from an importable module, not __main__, for Temporal's sandbox
    from bench.peers import openai_agents_temporal as this

    if argv[0] == "worker":
        asyncio.run(this.worker(argv[1], argv[2], Path(argv[3])))
    elif argv[0] == "drive":
        asyncio.run(this.drive(argv[1], argv[2]))
    else:
        raise SystemExit(f"usage: {__doc__}")
    sys.stdout.flush()
    sys.stderr.flush()
    # temporalio's core threads can outlive the interpreter's teardown and abort the process
    # ("PyGILState_Release", temporalio/sdk-python#300): skip the teardown, the work is done
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
