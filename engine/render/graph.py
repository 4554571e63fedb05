"""Specs and continuations as `networkx.DiGraph`s: the public, exporter-neutral picture.

Every node carries `kind` (agent, tool, frame, pending, call, legend), a `title` and `rows`
(tuples of `(caption, text)`, text already cleaned and shortened, never escaped), Graphviz
style attributes (`shape`, `style`, `fillcolor`, `color`, `penwidth`, `fontcolor`), and the
flags `table` (draw as an HTML table), `strike` (struck through) and `cluster` (`"legend"`
for the legend, which DOT draws as one small table of swatches). Domain fields sit beside
them (`agent`, `tool`, `call_id`, `status`, `reason`, `decisions`, `decision`, `reachable`,
...), so users can query or re-style the graph before exporting it. A stack's frames show the
last user and assistant text, its finished calls their result (masked and shortened). Edges
carry `kind`, `label` and the same style attributes. Graph attributes: `kind` (spec or
stack), `title` (for a stack: spec, run id and what waits) and `rankdir`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from engine.continuation import Continuation
from engine.frames import Frame, Pending
from engine.render._text import (
    calls_by_id,
    compact_arguments,
    compact_result,
    content_text,
    last_assistant,
    results_by_id,
    secret_names,
    shorten,
)
from engine.render.styles import (
    AGENT,
    APPROVAL,
    DECIDED,
    EXTERNAL,
    FADED,
    FRAME,
    MCP,
    MCP_APPROVAL,
    PYTHON,
    STATUS,
    STOPPED,
    WAITING,
    add_legend,
)
from engine.server_tools import RemoteTool, approval_of, selected
from engine.spec.model import (
    DEFAULT_MAX_TOOL_CALLS,
    DEFAULT_MAX_TURNS,
    Agent,
    AgentTool,
    ExternalTool,
    McpToolset,
    OpenAIModel,
    PythonTool,
    Spec,
)

TEXT_WIDTH = 70
"""Characters of a frame's user and assistant text shown."""
RESULT_WIDTH = 70
"""Characters of a finished call's result shown."""
_TITLE_ITEMS = 2
"""Waiting entries named in a stack picture's title; the rest are counted."""
_REASONS = {
    "approval": "waits for approval",
    "external": "waits for an external result",
    "turn_limit": "reached a limit",
    "pause": "paused",
    "error": "failed; waits for a decision",
}


def spec_graph(
    spec: Spec, listings: Mapping[str, Sequence[RemoteTool]] | None = None
) -> nx.DiGraph[str]:
    """Agents (rounded boxes), their tools (ellipses by kind), MCP servers (a node each, a row
    per tool marked by approval) and sub-agent calls (edges). A server's tools are those its
    `listings` entry gives (as `engine.mcp` lists them), else those the spec names."""
    graph: nx.DiGraph[str] = nx.DiGraph(kind="spec", title=f"spec {spec.name}", rankdir="TB")
    reachable = _reachable(spec)
    for name, agent in spec.agents.items():
        on = name in reachable
        rows = [("", shorten(agent.description, 60))] if agent.description else []
        rows += [("model", _model_name(spec, agent)), ("limits", _limits(agent))]
        if name == spec.entrypoint:
            rows.insert(0, ("", "entrypoint"))
        style = dict(AGENT, **({} if on else FADED))
        if name == spec.entrypoint:
            style["penwidth"] = "2"
        graph.add_node(
            f"agent:{name}",
            kind="agent",
            agent=name,
            title=name,
            rows=tuple(rows),
            reachable=on,
            **style,
        )
    for name, agent in spec.agents.items():
        for tool_name in agent.tools:
            tool = spec.tools[tool_name]
            if isinstance(tool, AgentTool):
                _agent_edge(graph, name, tool)
            elif isinstance(tool, McpToolset):
                node = f"tool:{tool_name}"
                if node not in graph:
                    _server_node(graph, node, tool, (listings or {}).get(tool_name))
                graph.add_edge(f"agent:{name}", node, kind="uses", label="", color="#9e9e9e")
            else:
                node = f"tool:{tool_name}"
                if node not in graph:
                    _tool_node(graph, node, tool)
                graph.add_edge(f"agent:{name}", node, kind="uses", label="", color="#9e9e9e")
    for node, data in graph.nodes(data=True):
        if data["kind"] == "tool":
            users = [u for u, _ in graph.in_edges(node)]
            data["reachable"] = any(graph.nodes[u]["reachable"] for u in users)
            if not data["reachable"]:
                data.update(fontcolor="#9e9e9e", color="#9e9e9e", fillcolor="#f5f5f5")
    servers = any(isinstance(t, McpToolset) for t in spec.tools.values())
    add_legend(graph, "spec", servers=servers)
    return graph


def _server_node(
    graph: nx.DiGraph[str], node: str, toolset: McpToolset, listed: Sequence[RemoteTool] | None
) -> None:
    where = f"stdio: {' '.join(toolset.command)}" if toolset.command else f"http: {toolset.url}"
    rows: list[tuple[str, str]] = [("", "MCP server"), ("", shorten(where, 60))]
    marks: list[tuple[str, bool | None]] = []
    if listed is not None:
        for remote in selected(toolset, listed):
            approval, why, _ = approval_of(toolset, remote)
            marks.append((remote.name, approval.required))
            rows.append((remote.name, _server_mark(approval.required, why)))
    else:  # not listed: the tools the spec names, their approval as far as the spec says
        named = [p for p in toolset.include if not any(c in p for c in "*?[")]
        named += [p for p in toolset.approval.tools if p not in named]
        for pattern in named:
            override = toolset.approval.tools.get(pattern)
            required = override.required if override is not None else None
            marks.append((pattern, required))
            rows.append((pattern, _server_mark(required, None)))
        if not named:
            rows.append(("tools", "as listed; approval from annotations"))
    if toolset.timeout is not None:
        rows.append(("timeout", f"{toolset.timeout:g} s"))
    needs = any(required is not False for _, required in marks)
    graph.add_node(
        node,
        kind="tool",
        tool=toolset.name,
        tool_kind="mcp",
        title=toolset.name,
        rows=tuple(rows),
        approval=any(required for _, required in marks),
        server_tools=tuple(marks),
        **(MCP_APPROVAL if needs and marks else MCP),
    )


def _server_mark(required: bool | None, why: str | None) -> str:
    if required is None:
        return "approval from annotations"
    if not required:
        return "runs at once"
    return "needs approval" + (f" ({why.split(' as ', 1)[-1]})" if why and " as " in why else "")


def _agent_edge(graph: nx.DiGraph[str], caller: str, tool: AgentTool) -> None:
    label = tool.name
    attrs: dict[str, Any] = {"color": "#1565c0", "penwidth": "1.5"}
    if tool.approval.required:
        label += " (needs approval)"
        attrs = {"color": "#e65100", "penwidth": "2.5", "style": "bold", "fontcolor": "#e65100"}
    graph.add_edge(
        f"agent:{caller}",
        f"agent:{tool.agent}",
        kind="subagent",
        tool=tool.name,
        label=label,
        approval=tool.approval.required,
        **attrs,
    )


def _tool_node(graph: nx.DiGraph[str], node: str, tool: PythonTool | ExternalTool) -> None:
    rows: list[tuple[str, str]] = [("", tool.kind)]
    style = dict(EXTERNAL if isinstance(tool, ExternalTool) else PYTHON)
    if isinstance(tool, ExternalTool):
        rows[0] = ("", "external: the result arrives later")
    if tool.approval.required:
        rows.append(("", "needs approval"))
        if tool.approval.when is not None:
            rows.append(("when", shorten(tool.approval.when)))
        rows.append(("decide", " | ".join(tool.approval.decisions)))
        style = dict(APPROVAL)
    if tool.timeout is not None:
        rows.append(("timeout", f"{tool.timeout:g} s"))
    graph.add_node(
        node,
        kind="tool",
        tool=tool.name,
        tool_kind=tool.kind,
        title=tool.name,
        rows=tuple(rows),
        approval=tool.approval.required,
        **style,
    )


def _reachable(spec: Spec) -> set[str]:
    seen, todo = {spec.entrypoint}, [spec.entrypoint]
    while todo:
        agent = spec.agents.get(todo.pop())
        for tool_name in agent.tools if agent else ():
            tool = spec.tools.get(tool_name)
            if isinstance(tool, AgentTool) and tool.agent not in seen:
                seen.add(tool.agent)
                todo.append(tool.agent)
    return seen


def _model_name(spec: Spec, agent: Agent) -> str:
    model = spec.models.get(agent.model)
    if isinstance(model, OpenAIModel):
        return f"{agent.model} ({model.model})"
    return agent.model


def _limits(agent: Agent) -> str:
    limits, parts = agent.limits, []
    parts.append(f"{limits.max_turns} turns")
    if limits.max_tool_calls != DEFAULT_MAX_TOOL_CALLS or limits.max_turns != DEFAULT_MAX_TURNS:
        parts.append(f"{limits.max_tool_calls} tool calls")
    if limits.timeout is not None:
        parts.append(f"{limits.timeout:g} s")
    if agent.suspend.every_turns:
        parts.append(f"pause every {agent.suspend.every_turns} turns")
    return " · ".join(parts)


def stack_graph(
    continuation: Continuation,
    spec: Spec | None = None,
    *,
    status: str | None = None,
    forked: tuple[str, int] | None = None,
) -> nx.DiGraph[str]:
    """The suspended call stack: frames, the calls that started them, what each waits on and
    what its ledger already holds. With `spec`, turns show their maximum and the secret names
    of `api_key_env` are masked too. `status` (a stored run's, such as `stopped`) goes in the
    title, and a stopped run's frames are drawn grey; so does `forked` (the run and step a
    stored fork was made from)."""
    secrets = secret_names(spec)
    title = stack_title(continuation, status=status, forked=forked)
    graph: nx.DiGraph[str] = nx.DiGraph(kind="stack", rankdir="TB", title=title)
    ids: dict[int, str] = {}
    for index, (path, frame) in enumerate(continuation.frames()):
        node = f"frame:{index}"
        ids[id(frame)] = node
        graph.add_node(
            node,
            kind="frame",
            agent=frame.agent,
            path="/".join(path),
            depth=len(path) - 1,
            turns=frame.turns,
            title=frame.agent,
            rows=_frame_rows(frame, spec),
            table=True,
            **(STOPPED if status == "stopped" else FRAME),
        )
        calls = calls_by_id(frame)
        results = results_by_id(frame)
        for entry in frame.pending:
            if entry.child is not None:
                continue
            _pending_node(graph, node, f"pending:{index}:{entry.id}", entry, secrets)
        waiting = {p.id for p in frame.pending}
        for call_id, call_status in frame.ledger.items():
            if call_id in waiting:
                continue
            tool = calls.get(call_id, ("?", {}))[0]
            call = f"call:{index}:{call_id}"
            rows = [("", f"{call_id} · {call_status}")]
            if call_id in results:
                rows.append(("result", compact_result(results[call_id], secrets, RESULT_WIDTH)))
            graph.add_node(
                call,
                kind="call",
                call_id=call_id,
                tool=tool,
                status=call_status,
                title=tool,
                rows=tuple(rows),
                strike=call_status == "rejected",
                **STATUS.get(call_status, STATUS["running"]),
            )
            graph.add_edge(node, call, kind="call", label="", color="#9e9e9e", style="dashed")
    for _, frame in continuation.frames():
        for entry in frame.pending:
            if entry.child is not None:
                graph.add_edge(
                    ids[id(frame)],
                    ids[id(entry.child)],
                    kind="subagent",
                    tool=entry.tool,
                    call_id=entry.id,
                    color="#1565c0",
                    label=f"{entry.tool} · {entry.id}",
                    penwidth="1.5",
                )
    add_legend(graph, "stack")
    return graph


def _frame_rows(frame: Frame, spec: Spec | None) -> tuple[tuple[str, str], ...]:
    agent = spec.agents.get(frame.agent) if spec else None
    turns = f"{frame.turns}"
    if agent is not None:
        turns += f" of {agent.limits.max_turns + frame.extra_turns}"
    rows = [("turns", turns)]
    user = next((m for m in reversed(frame.messages) if m.get("role") == "user"), None)
    if user is not None:
        rows.append(("user", shorten(content_text(user.get("content")), TEXT_WIDTH) or "(empty)"))
    rows.append(("assistant", shorten(last_assistant(frame), TEXT_WIDTH)))
    rows.extend(("grant", shorten(grant.line(), TEXT_WIDTH)) for grant in frame.grants)  # root's
    return tuple(rows)


def stack_title(
    continuation: Continuation,
    *,
    status: str | None = None,
    forked: tuple[str, int] | None = None,
) -> str:
    """`spec · run id · what waits`: the first line a decider reads. A run that waits no
    more (`status` finished, stopped, failed) says so instead. A fork names its origin
    after its id (`run b · forked from a at step 5`)."""
    waiting = [p for p in continuation.pending() if p.decision is None]
    if status is not None and status not in ("suspended", "running"):
        state = status
    elif waiting:
        what = [_waits_for(p.reason, p.tool, p.agent) for p in waiting[:_TITLE_ITEMS]]
        more = len(waiting) - _TITLE_ITEMS
        state = "waits for " + ", ".join(what) + (f" and {more} more" if more > 0 else "")
    elif continuation.pending():
        state = "decided: resume it to carry on"
    else:
        state = "waits on nothing"
    origin = f" · forked from {forked[0]} at step {forked[1]}" if forked else ""
    return f"{continuation.spec_name} · run {continuation.run_id}{origin} · {state}"


def _waits_for(reason: str, tool: str | None, agent: str) -> str:
    if reason == "approval":
        return f"approval of {tool}"
    if reason == "external":
        return f"the result of {tool}"
    if reason == "turn_limit":
        return f"more budget for {agent}"
    if reason == "pause":
        return f"resume before {tool}" if tool else f"resume of {agent} (paused)"
    if reason == "error":
        return f"a decision on failed {tool}" if tool else f"a decision on {agent}'s model error"
    return f"{reason} in {agent}"


def _pending_node(
    graph: nx.DiGraph[str], frame_node: str, node: str, entry: Pending, secrets: frozenset[str]
) -> None:
    rows: list[tuple[str, str]] = [("", f"{entry.id} · {_REASONS.get(entry.reason, entry.reason)}")]
    if entry.arguments:
        rows.append(("args", compact_arguments(entry.arguments, secrets)))
    if entry.prompt:
        rows.append(("ask", shorten(entry.prompt)))
    if entry.detail:
        rows.append(("detail", shorten(entry.detail)))
    if entry.policy is not None:
        rows.append(("why", shorten(entry.policy.line())))
    decision = entry.decision.kind if entry.decision else None
    if decision is None:
        rows.append(("decide", " | ".join(entry.decisions) or "inside the sub-agent"))
        style = WAITING
    else:
        rows.append(("decided", f"{decision} (not resumed yet)"))
        style = DECIDED
    title = entry.tool or entry.reason.replace("_", " ")
    graph.add_node(
        node,
        kind="pending",
        call_id=entry.id,
        tool=entry.tool,
        reason=entry.reason,
        decisions=tuple(entry.decisions),
        decision=decision,
        title=title,
        rows=tuple(rows),
        **style,
    )
    graph.add_edge(
        frame_node,
        node,
        kind="waits",
        label=entry.id,
        color="#e65100",
        penwidth="2.5",
        style="bold",
    )
