"""The MCP client: the only module that imports the `mcp` SDK (`pip install callcc[mcp]`).

`connect(toolset)` opens one server of a `kind: mcp` toolset, over stdio (`command`: the
program starts in the spec's folder with the toolset's `env` added; `python` or `python3`
there is the interpreter running callcc) or streamable HTTP
(`url`, with its `headers`), initializes the session and lists every tool (all pages). The
SDK's transports are anyio task groups, which must be left by the task that entered them:
one task per connection owns them, and `aclose` asks it to leave (stopping a stdio server).

`McpConnection.call` maps a result onto what the model reads (`result_text`): text blocks as
they are, structured content as JSON (unless a text block holds the same), images, audio and
resources described in words; `isError` is a failed call the model reads. A call the server
cannot answer (it died, the connection broke, the timeout passed) raises `ToolServerError`:
the runner makes it a failed call under the usual rules (an `error` entry a person decides
on; nothing re-runs by itself).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any

try:
    from mcp import types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED
except ImportError as exc:  # pragma: no cover - the `mcp` extra is part of `all`
    raise ImportError("MCP tool servers need the mcp SDK: pip install 'callcc[mcp]'") from exc

from engine.errors import ToolServerError
from engine.server_tools import RemoteTool
from engine.spec.model import McpToolset

__all__ = ["CONNECT_TIMEOUT", "McpConnection", "connect", "result_text"]

_PYTHON = frozenset({"python", "python3"})
"""Programs that mean the Python running callcc (so a server written with the SDK finds it)."""
CONNECT_TIMEOUT = 30.0
"""Seconds to start, initialize and list a server when the toolset gives no `timeout`."""


async def connect(toolset: McpToolset, *, folder: str | None = None) -> McpConnection:
    """An open, listed connection to `toolset`'s server, or a `ToolServerError`."""
    connection = McpConnection(toolset, folder=folder)
    await connection.open()
    return connection


class McpConnection:
    """One session with one server, owned by a task of its own."""

    def __init__(self, toolset: McpToolset, *, folder: str | None = None) -> None:
        self.toolset = toolset
        self.folder = folder
        self.tools: tuple[RemoteTool, ...] = ()
        """The server's tools, as listed when connected."""
        self._session: ClientSession | None = None
        self._closing = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None
        self._broken: str | None = None

    async def open(self) -> None:
        """Start (or reach) the server, initialize, list its tools."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._owner = asyncio.ensure_future(self._own(ready))
        limit = self.toolset.timeout or CONNECT_TIMEOUT
        try:
            await asyncio.wait_for(asyncio.shield(ready), limit)
        except TimeoutError:
            await self.aclose()
            raise self._error(f"no answer within {limit:g} s of connecting") from None
        except BaseException:
            await self.aclose()
            raise

    async def _own(self, ready: asyncio.Future[None]) -> None:
        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self.tools = tuple(_remote(t) for t in await _list_all(session))
                self._session = session
                ready.set_result(None)
                await self._closing.wait()
        except BaseException as exc:
            why = _describe(exc)
            self._broken = why
            if not ready.done():
                ready.set_exception(self._error(f"cannot connect: {why}"))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._session = None

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        toolset = self.toolset
        if toolset.command:
            program, *args = toolset.command
            if program in _PYTHON:  # the interpreter running callcc, with its packages
                program = sys.executable
            params = StdioServerParameters(
                command=program, args=args, env=dict(toolset.env) or None, cwd=self.folder
            )
            async with stdio_client(params) as (read, write):
                yield read, write
            return
        assert toolset.url is not None
        client = create_mcp_http_client(headers=dict(toolset.headers) or None)
        async with client, streamable_http_client(toolset.url, http_client=client) as streams:
            yield streams[0], streams[1]

    async def call(
        self, tool: str, arguments: dict[str, Any], timeout: float | None
    ) -> tuple[str, bool]:
        """What the model reads of calling `tool`, and whether the server says it failed."""
        session = self._session
        if session is None:
            raise self._error(f"the connection is closed ({self._broken or 'not open'})")
        try:  # a timeout scope, not `wait_for`: on 3.11 that starts a task for every call
            async with asyncio.timeout(timeout):
                result = await session.call_tool(tool, arguments)
        except TimeoutError:
            raise self._error(f"{tool} did not answer within {timeout:g} s") from None
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                why = self._broken or "the server closed the connection"
                raise self._error(f"the connection broke during {tool}: {why}") from None
            return f"error: the server refused the call: {exc.message}", True
        except Exception as exc:
            raise self._error(f"the connection broke during {tool}: {_describe(exc)}") from None
        return result_text(result), bool(result.is_error)

    async def aclose(self) -> None:
        """Leave the session (a stdio server is stopped) and wait until it is left."""
        self._closing.set()
        owner, self._owner = self._owner, None
        if owner is not None:
            with suppress(Exception, asyncio.CancelledError):  # it is closed either way
                await owner

    def _error(self, message: str) -> ToolServerError:
        return ToolServerError(self.toolset.name, message)


async def _list_all(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def _remote(tool: types.Tool) -> RemoteTool:
    annotations = (
        tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
    )
    return RemoteTool(
        name=tool.name,
        description=tool.description or tool.title or "",
        input_schema=dict(tool.input_schema or {}),
        annotations=annotations,
    )


def result_text(result: types.CallToolResult) -> str:
    """What the model reads of a tool's result (see the module docstring)."""
    parts = [_block_text(block) for block in result.content]
    structured = result.structured_content
    if isinstance(structured, dict) and list(structured) == ["result"]:  # a wrapped value
        inner = structured["result"]
        if any(p == inner or _same_json(p, inner) for p in parts):
            structured = None
    if structured is not None and not any(_same_json(p, structured) for p in parts):
        parts.append(json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts)


def _block_text(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        kind = "image" if isinstance(block, types.ImageContent) else "audio"
        return f"[{kind} {block.mime_type}, {_size(block.data)} bytes, not shown]"
    if isinstance(block, types.ResourceLink):
        return f"[resource {block.name} at {block.uri}" + (
            f": {block.description}]" if block.description else "]"
        )
    if isinstance(block, types.EmbeddedResource):
        content = block.resource
        if isinstance(content, types.TextResourceContents):
            return f"[resource {content.uri}]\n{content.text}"
        mime = content.mime_type or "binary"
        return f"[resource {content.uri}, {mime}, {_size(content.blob)} bytes, not shown]"
    return f"[{getattr(block, 'type', 'content')} content, not shown]"


def _size(base64: str) -> int:
    return len(base64) * 3 // 4 - base64[-2:].count("=")


def _same_json(text: str, value: Any) -> bool:
    try:
        return bool(json.loads(text) == value)
    except ValueError:
        return False


def _describe(exc: BaseException) -> str:
    """The innermost cause worth reading (anyio wraps failures in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, asyncio.CancelledError):
        return "closed"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text
