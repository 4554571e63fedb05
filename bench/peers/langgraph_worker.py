"""LangGraph's side, run in bench/.venvs/langgraph.

As its "Interrupts" and "Add human-in-the-loop" guides show: a `StateGraph` over
`MessagesState` with a model node and a prebuilt `ToolNode`; the tool calls `interrupt()`; the
graph is compiled with a checkpointer (`InMemorySaver`) and run on a `thread_id`; a person's
answer comes back as `Command(resume=...)`. Sub-agents are compiled graphs invoked inside a
tool; they inherit the caller's checkpointer, so an interrupt deep inside surfaces at the top.

Suspend in one process, resume in another is modelled with two long-lived compiled graphs,
each with its own saver: the thread's latest checkpoint in every namespace, with its pending
writes (which hold the interrupt), is read through the saver API, serialized to bytes with the
saver's `serde`, and written into the other saver through `put` / `put_writes`. This is the
least a LangGraph run needs to resume; a database checkpointer would also keep the history.
"""

from __future__ import annotations

import itertools
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt

from bench.peers import script
from bench.peers.worker import Workload, serve

INTERRUPT = "__interrupt__"


class ScriptChatModel(BaseChatModel):
    """The shared script: the turn follows from the tool messages since the human's."""

    agent: str

    @property
    def _llm_type(self) -> str:
        return "bench-script"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptChatModel:
        return self  # the script already knows which tool each turn calls

    def _generate(self, messages: list[BaseMessage], *args: Any, **kw: Any) -> ChatResult:
        seen = 0
        for message in messages:
            if isinstance(message, HumanMessage):
                seen = 0
            elif isinstance(message, ToolMessage):
                seen += 1
        turn = script.turn(self.agent, seen)
        calls = []
        if turn.tool:
            calls = [{"name": turn.tool, "args": dict(turn.arguments), "id": turn.call_id}]
        message = AIMessage(content=turn.text or "", tool_calls=calls)
        return ChatResult(generations=[ChatGeneration(message=message)])


@tool
def transfer(to: str, amount: int) -> str:
    """Move money; a person approves every call first."""
    decision = interrupt({"tool": "transfer", "args": {"to": to, "amount": amount}})
    if decision != "approve":
        return "rejected"
    return script.transfer(to, amount)


@tool
def echo(text: str) -> str:
    """Echo the text."""
    return script.echo(text)


def agent_graph(model: BaseChatModel, tools: list[BaseTool], checkpointer: Any = None) -> Any:
    """model -> tools -> model ... until the model answers without tool calls."""
    bound = model.bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer)


def sub_agent(name: str, graph: Any) -> BaseTool:
    """A compiled graph as a tool taking `request`; its final text is the tool's result."""

    def run(request: str) -> str:
        out = graph.invoke({"messages": [HumanMessage(request)]})
        return str(out["messages"][-1].content)

    return tool(name, description=f"delegate to {name}")(run)


def nested_tools() -> list[BaseTool]:
    """root's tools: child -> grandchild -> transfer, sub-graphs sharing the root's saver."""
    _, child, leaf = script.NESTED
    below: BaseTool = transfer
    for name in (leaf, child):
        below = sub_agent(name, agent_graph(ScriptChatModel(agent=name), [below]))
    return [below]


def latest(saver: InMemorySaver, thread: str) -> list[Any]:
    """The latest checkpoint of every namespace of the thread, with its pending writes (the
    thread is deleted from the saver): what resuming it needs, as live objects."""
    found: dict[str, Any] = {}
    for saved in saver.list({"configurable": {"thread_id": thread}}):
        ns = saved.config["configurable"]["checkpoint_ns"]
        if ns not in found:
            found[ns] = (ns, saved.checkpoint, saved.metadata, saved.pending_writes)
    saver.delete_thread(thread)
    return list(found.values())


def export(saver: InMemorySaver, thread: str) -> bytes:
    """`latest`, as bytes."""
    kind, data = saver.serde.dumps_typed(latest(saver, thread))
    assert kind == "msgpack", kind
    return data


def load(saver: InMemorySaver, thread: str, data: bytes) -> list[Any]:
    """Write an exported thread into `saver`; return the interrupts it waits on.

    An interrupt deep in a sub-graph is recorded in every namespace above it, under one id."""
    interrupts: dict[str, Any] = {}
    for ns, checkpoint, metadata, writes in saver.serde.loads_typed(("msgpack", data)):
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
        saved = saver.put(config, checkpoint, metadata, checkpoint["channel_versions"])
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for task, channel, value in writes:
            by_task.setdefault(task, []).append((channel, value))
            if channel == INTERRUPT:
                interrupts.update((i.id, i) for i in value)
        for task, task_writes in by_task.items():
            saver.put_writes(saved, task_writes, task)
    return list(interrupts.values())


def approval(make_graph: Any, final: str) -> Workload:
    """invoke -> interrupt -> bytes -> other saver -> Command(resume) -> final message."""
    first, second = InMemorySaver(), InMemorySaver()
    suspender, resumer = make_graph(first), make_graph(second)
    threads = itertools.count()
    last: list[bytes] = [b""]

    def suspended() -> str:
        thread = f"t{next(threads)}"
        out = suspender.invoke({"messages": [HumanMessage(script.PROMPT)]}, _config(thread))
        assert len(out[INTERRUPT]) == 1, out
        return thread

    def suspend() -> tuple[str, bytes]:
        thread = suspended()
        return thread, export(first, thread)

    def cycle() -> None:
        thread, data = suspend()
        last[0] = data
        [pending] = load(second, thread, data)
        assert pending.value == {"tool": "transfer", "args": script.TRANSFER_ARGS}, pending
        out = resumer.invoke(Command(resume="approve"), _config(thread))
        second.delete_thread(thread)
        assert out["messages"][-1].content == final, out["messages"][-1]
        assert out["messages"][-2].content in (script.TRANSFER_RESULT, "child done")

    return Workload(
        cycle=cycle,
        state_bytes=lambda: len(last[0]),
        suspend=lambda: suspend()[1],
        live=lambda: latest(first, suspended()),
    )


def _config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def long_loop() -> Workload:
    """50 turns each calling `echo`, then the answer; the state is the final graph state."""
    graph = agent_graph(ScriptChatModel(agent="looper"), [echo])
    config = {"recursion_limit": 2 * script.TURNS + 2}  # one step for the model, one for tools
    last: list[Any] = []
    serde = InMemorySaver().serde

    def cycle() -> None:
        out = graph.invoke({"messages": [HumanMessage("loop")]}, config)
        assert out["messages"][-1].content == script.LOOP_FINAL, out["messages"][-1]
        assert len(out["messages"]) == 2 + 2 * script.TURNS, len(out["messages"])
        last[:] = [out]

    return Workload(cycle=cycle, state_bytes=lambda: len(serde.dumps_typed(last[0])[1]))


def make(name: str, server: str | None) -> Workload | str:
    """The workload `name`."""
    if name == "approval_cycle":
        model = ScriptChatModel(agent="payer")
        return approval(lambda saver: agent_graph(model, [transfer], saver), script.FINAL)
    if name == "over_http":
        model = ChatOpenAI(model="bench", base_url=server, api_key="bench")
        return approval(lambda saver: agent_graph(model, [transfer], saver), script.FINAL)
    if name == "nested_approval":
        root = ScriptChatModel(agent=script.NESTED[0])
        tools = nested_tools()
        final = f"{script.NESTED[0]} done"
        return approval(lambda saver: agent_graph(root, tools, saver), final)
    if name == "long_loop":
        return long_loop()
    raise KeyError(name)


if __name__ == "__main__":
    serve(make)
