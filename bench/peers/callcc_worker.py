"""callcc's side of every workload, run in the project's environment.

The spec is built once (as a deployment would load its YAML once); every iteration starts a
new run, serializes the continuation to bytes, parses it into a fresh object graph, decides
and resumes. Tools are bench/bench_tools.py, the same bodies the peers call.

Three paths. The headline (`callcc`) is the production path, as a service or a worker drives
runs: `await runtime.arun(...)` / `aresume(...)` on its running event loop, the model an async
client (`AsyncScript`), as every real model client is; it plays the script without waiting,
like the peers' scripted models (the peers with an async API are awaited on a running loop
the same way; LangGraph's `invoke` is plain sync code). `callcc_sync` (`--sync`) is the sync
API a script calls, `runtime.run` / `resume`, which enter the event loop and leave it once per
call. The eager path (`callcc_eager`, `--eager`) hands the sync API the scripted model itself,
whose runs it drives without the event loop (engine/_eager.py): only scripted models with
sync tools get that, so no production run does.

    .venv/bin/python -m bench.peers.callcc_worker [--sync | --eager]   # the worker protocol
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.peers import script
from bench.peers.worker import Workload, on_loop, serve
from engine import Continuation, Finished, Outcome, Runtime, Suspended
from engine.models.base import ModelReply, ModelRequest
from engine.models.scripted import ScriptedModel
from engine.spec.model import (
    Agent,
    AgentTool,
    Approval,
    Limits,
    OpenAIModel,
    PythonTool,
    Spec,
)
from engine.spec.model import ScriptedModel as ScriptSpec

BENCH = Path(__file__).resolve().parent.parent
AGENTS = ("payer", "looper", *script.NESTED)


def _agent(name: str, *tools: str) -> Agent:
    return Agent(
        name=name,
        description=name,
        model="m",
        instructions=f"You are {name}.",
        tools=tools,
        limits=Limits(max_turns=script.TURNS + 1),
    )


def spec(server: str | None = None) -> Spec:
    """Every agent of the workloads; on the loopback server when `server` is given."""
    model = OpenAIModel(name="m", model="bench", base_url=server) if server else None
    root, child, leaf = script.NESTED
    tools = {
        "transfer": PythonTool(
            name="transfer",
            description="Move money.",
            ref="bench_tools:transfer",
            approval=Approval(required=True),
        ),
        "echo": PythonTool(name="echo", description="Echo.", ref="bench_tools:echo"),
        child: AgentTool(name=child, description="delegate", agent=child),
        leaf: AgentTool(name=leaf, description="delegate", agent=leaf),
    }
    agents = [
        _agent("payer", "transfer"),
        _agent("looper", "echo"),
        _agent(root, child),
        _agent(child, leaf),
        _agent(leaf, "transfer"),
    ]
    return Spec(
        spec_version=1,
        name="bench",
        path=str(BENCH / "bench.yaml"),
        entrypoint="payer",
        models={"m": model or ScriptSpec(name="m", script="-")},
        tools=tools,
        agents={a.name: a for a in agents},
        digest="sha256:bench",
    )


def scripted() -> ScriptedModel:
    """The shared script as callcc script data (turn n of an agent = `script.turn(agent, n)`)."""
    turns: dict[str, list[dict[str, Any]]] = {}
    for agent in AGENTS:
        turns[agent] = []
        for seen in range(script.TURNS + 1):
            t = script.turn(agent, seen)
            if t.text is not None:
                turns[agent].append({"text": t.text})
                break
            call = {"id": t.call_id, "name": t.tool, "arguments": t.arguments}
            turns[agent].append({"tool_calls": [call]})
    return ScriptedModel.from_data({"agents": turns}, source="bench")


class AsyncScript:
    """The scripted model as an async client: what the runtime sees of any real model (so it
    drives the run on its event loop); it answers at once, as the peers' scripted models do."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model

    async def complete(self, request: ModelRequest) -> ModelReply:
        """The scripted turn."""
        return self.model.reply(request)


def approval(runtime: Runtime, agent: str, final: str) -> Workload:
    """run -> Suspended -> bytes -> fresh Continuation -> approve -> resume -> Finished, and
    the tool's result is the last the agent saw (as the peers check theirs)."""
    last: list[bytes] = [b""]
    result = script.TRANSFER_RESULT if agent == "payer" else f"{script.NESTED[1]} done"

    def held() -> Continuation:
        return suspended(runtime.run(script.PROMPT, agent=agent))

    def suspend() -> bytes:
        return held().to_json().encode()

    def decided(data: bytes) -> Continuation:
        last[0] = data
        loaded = Continuation.from_json(data)
        [entry] = loaded.pending()
        assert (entry.tool, entry.arguments) == ("transfer", script.TRANSFER_ARGS), entry
        return loaded.approve(entry.path)

    def check(outcome: Outcome) -> None:
        assert isinstance(outcome, Finished) and outcome.output == final, outcome
        assert outcome.messages[-2]["content"] == result, outcome.messages[-2]

    def cycle() -> None:
        check(runtime.resume(decided(suspend())))

    async def acycle() -> None:
        outcome = await runtime.arun(script.PROMPT, agent=agent)
        data = suspended(outcome).to_json().encode()
        check(await runtime.aresume(decided(data)))

    kw: dict[str, Any] = {"state_bytes": lambda: len(last[0]), "suspend": suspend, "live": held}
    if SYNC or EAGER:
        return Workload(cycle=cycle, **kw)
    return on_loop(acycle, **kw)


def suspended(outcome: Outcome) -> Continuation:
    """The continuation of a run that must have suspended."""
    assert isinstance(outcome, Suspended), outcome
    return outcome.continuation


def long_loop(runtime: Runtime) -> Workload:
    """50 turns each calling `echo`, then the answer; the state is the finished transcript."""
    last: list[Finished] = []

    def check(outcome: Outcome) -> None:
        assert isinstance(outcome, Finished) and outcome.output == script.LOOP_FINAL, outcome
        assert len(outcome.messages) == 2 + 2 * script.TURNS
        outputs = [m["content"] for m in outcome.messages if m["role"] == "tool"]
        assert outputs == ECHOES, outputs
        last[:] = [outcome]

    def cycle() -> None:
        check(runtime.run("loop", agent="looper"))

    async def acycle() -> None:
        check(await runtime.arun("loop", agent="looper"))

    def state_bytes() -> int:
        return len(json.dumps(last[0].messages, separators=(",", ":")).encode())

    if SYNC or EAGER:
        return Workload(cycle=cycle, state_bytes=state_bytes)
    return on_loop(acycle, state_bytes=state_bytes)


ECHOES = [script.echo(f"t{i}") for i in range(script.TURNS)]
"""What long_loop's tool returns, turn by turn."""

EAGER = "--eager" in sys.argv
"""Drive the scripted model eagerly (`callcc_eager`), not through the event loop."""
SYNC = "--sync" in sys.argv
"""Time the sync API (`callcc_sync`), which enters the event loop once per call."""


def model() -> ScriptedModel | AsyncScript:
    """The script as this worker's path plays it (see the module doc)."""
    return scripted() if EAGER else AsyncScript(scripted())


def make(name: str, server: str | None) -> Workload | str:
    """The workload `name` (the list is in `bench/peers/__init__.py`)."""
    if name == "over_http":
        return approval(Runtime(spec(server)), "payer", script.FINAL)
    runtime = Runtime(spec(), model_override=model())
    if name == "approval_cycle":
        return approval(runtime, "payer", script.FINAL)
    if name == "nested_approval":
        return approval(runtime, script.NESTED[0], f"{script.NESTED[0]} done")
    if name == "long_loop":
        return long_loop(runtime)
    if name in ("store_sqlite", "store_postgresql"):
        stored = Runtime(spec(), model_override=model(), store=_store_url(name))
        return approval(stored, "payer", script.FINAL)
    raise KeyError(name)


def _store_url(name: str) -> str:
    """A fresh store for the run: a SQLite file, or a PostgreSQL schema dropped at exit."""
    if name == "store_sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='callcc-bench-')}/runs.db"
    server = os.environ.get("CALLCC_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1/test"
    schema = f"callcc_bench_{uuid.uuid4().hex[:12]}"

    def drop() -> None:
        import psycopg

        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    atexit.register(drop)
    return f"{server}?schema={schema}"


if __name__ == "__main__":
    serve(make)
