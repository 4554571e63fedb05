"""Tools a server lists at run time (`kind: mcp`): a run's connections, an agent's tools bound
to its servers' listings, the check of a resumed call against a changed schema, and
`validate --resolve`'s check of a spec against the listings. What a listing becomes (the
names the model sees, approvals from annotations) is `engine.server_tools`.

Lifecycle (`Toolsets`, one per drive of a run). A server is connected when an agent that uses
it first runs (`RunContext.tools_of`), once per drive, and every connection is closed (a stdio
server stops) when the drive ends: the run finished, failed or suspended. `engine.mcp` does
the talking and is imported only then.

Schemas. A frame keeps, per server, the fingerprint of each tool's schema its agent was shown
(`Frame.toolsets`, in the continuation). When a frame is bound again (a resume in any
process), a call a decision would now send (approved, edited, retried) whose tool's schema
changed since, or that the server no longer lists, is refused instead of sent: the model reads
why, and may call the tool again as it is now.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.compile import BoundAgent, BoundTool, tool_definition
from engine.errors import Diagnostic, SpecError, ToolServerError
from engine.frames import Frame
from engine.server_tools import (
    RemoteTool,
    collisions,
    expand,
    located,
    model_name,
    selected,
)
from engine.spec.model import McpToolset, Spec
from engine.spec.yamlload import escape
from engine.tooling import refuse_call

if TYPE_CHECKING:
    from engine.tooling import RunContext

__all__ = ["Connection", "Toolsets", "resolve"]

_SENDS = frozenset({"approve", "edit", "resume"})
"""Decisions that send a call to its server."""


class Connection(Protocol):
    """An open connection to one server (`engine.mcp.McpConnection`)."""

    tools: tuple[RemoteTool, ...]

    async def call(
        self, tool: str, arguments: dict[str, Any], timeout: float | None
    ) -> tuple[str, bool]:
        """The call's result text and whether the server reports it failed."""
        ...

    async def aclose(self) -> None:
        """Close the connection (a stdio server stops)."""
        ...


class Toolsets:
    """One drive's connections to tool servers and the agents bound to their listings."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._opening: dict[str, asyncio.Task[Connection]] = {}
        self._bound: dict[str, BoundAgent] = {}

    async def connection(self, toolset: McpToolset) -> Connection:
        """The open connection to `toolset`'s server, connecting on first use (once, however
        many frames ask at the same time)."""
        task = self._opening.get(toolset.name)
        if task is None:
            from engine import mcp  # the SDK loads only for a run that uses a server

            folder = str(Path(self.spec.path).resolve().parent) if self.spec.path else None
            task = asyncio.ensure_future(mcp.connect(toolset, folder=folder))
            self._opening[toolset.name] = task
        return await asyncio.shield(task)

    async def bind(self, frame: Frame, agent: BoundAgent, ctx: RunContext) -> BoundAgent:
        """`agent` with its servers' tools; refuses the frame's decided calls whose tool's
        schema changed, and records what the frame's agent is shown now."""
        bound = self._bound.get(agent.spec.name)
        listed: dict[str, dict[str, str]] = {}
        for toolset in agent.toolsets:
            connection = await self.connection(toolset)
            listed[toolset.name] = {
                model_name(toolset.name, t.name): t.fingerprint
                for t in selected(toolset, connection.tools)
            }
        if bound is None:
            bound = await self._expand(agent)
            self._bound[agent.spec.name] = bound
        _refuse_changed(frame, listed, ctx)
        undecided = {p.tool for p in frame.pending if p.tool is not None and p.decision is None}
        shown = dict(frame.toolsets)  # replaced whole: copies of the frame share the old one
        for server, tools in listed.items():
            before = frame.toolsets.get(server, {})
            shown[server] = tools | {t: before[t] for t in undecided if t in before}
        frame.toolsets = shown
        return bound

    async def _expand(self, agent: BoundAgent) -> BoundAgent:
        listed = {t.name: expand(t, (await self.connection(t)).tools) for t in agent.toolsets}
        problems = collisions(self.spec, agent.tools, listed)
        if problems:
            raise SpecError(problems)
        tools = dict(agent.tools)
        defs = list(agent.tool_defs)
        for server_tools in listed.values():
            for tool in server_tools:
                tools[tool.name] = tool
                defs.append(tool_definition(tool, tool.spec.description))
        return dataclasses.replace(agent, tools=tools, tool_defs=tuple(defs))

    async def aclose(self) -> None:
        """Close every connection (stopping stdio servers); never raises for a dead one."""
        tasks, self._opening = list(self._opening.values()), {}
        for task in tasks:
            if not task.done():
                task.cancel()
            try:
                connection = await task
            except (Exception, asyncio.CancelledError):  # never opened: nothing to close
                continue
            await connection.aclose()


def _refuse_changed(frame: Frame, listed: Mapping[str, Mapping[str, str]], ctx: RunContext) -> None:
    for entry in list(frame.pending):
        decision = entry.decision
        if entry.tool is None or decision is None or decision.kind not in _SENDS:
            continue
        for server, seen in frame.toolsets.items():
            if entry.tool not in seen or server not in listed:
                continue
            now = listed[server].get(entry.tool)
            if now == seen[entry.tool]:
                break
            frame.pending.remove(entry)
            change = (
                "no longer offers it"
                if now is None
                else "now offers a different schema for it than when the call was made"
            )
            refuse_call(
                frame,
                entry.id,
                entry.tool,
                f"error: refused: MCP server {server!r} {change}; the call was not sent. "
                f"Call {entry.tool} again as the server describes it now",
                ctx,
            )
            break


async def resolve(spec: Spec) -> list[Diagnostic]:
    """`callcc validate --resolve` for tool servers: connect to each, list its tools, and
    report (at the spec's line) a server that cannot be reached, `include`, `exclude` and
    approval names that match none of its tools (with the closest), and name collisions."""
    toolsets = Toolsets(spec)
    found: list[Diagnostic] = []
    listings: dict[str, list[BoundTool]] = {}
    try:
        for toolset in spec.tools.values():
            if not isinstance(toolset, McpToolset):
                continue
            base = f"/tools/{escape(toolset.name)}"
            try:
                connection = await toolsets.connection(toolset)
            except ToolServerError as exc:
                found.append(located(spec, base, "mcp-unreachable", str(exc), _reach_hint(toolset)))
                continue
            names = [t.name for t in connection.tools]
            found.extend(_unmatched(spec, toolset, names))
            listings[toolset.name] = expand(toolset, connection.tools)
    finally:
        await toolsets.aclose()
    for agent in spec.agents.values():
        static = [n for n in agent.tools if not isinstance(spec.tools.get(n), McpToolset)]
        mine = {n: listings[n] for n in agent.tools if n in listings}
        for problem in collisions(spec, static, mine):
            if problem not in found:
                found.append(problem)
    return found


def _unmatched(spec: Spec, toolset: McpToolset, names: list[str]) -> list[Diagnostic]:
    base = f"/tools/{escape(toolset.name)}"
    places = [(f"{base}/include/{i}", p) for i, p in enumerate(toolset.include)]
    places += [(f"{base}/exclude/{i}", p) for i, p in enumerate(toolset.exclude)]
    places += [(f"{base}/approval/tools/{escape(p)}", p) for p in toolset.approval.tools]
    out = []
    for pointer, pattern in places:
        if any(fnmatch.fnmatchcase(n, pattern) for n in names):
            continue
        close = difflib.get_close_matches(pattern, names, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else None
        listed = ", ".join(names) or "none"
        message = f"'{pattern}' matches no tool of server '{toolset.name}' (its tools: {listed})"
        out.append(located(spec, pointer, "mcp-unknown-tool", message, hint))
    return out


def _reach_hint(toolset: McpToolset) -> str:
    if toolset.command:
        return "check that the command starts the server from the spec's folder"
    return "check that the server is running and the url is its MCP endpoint"
