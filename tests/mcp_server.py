"""An MCP server for the tests, written with the official SDK (`MCPServer`).

Every execution is appended to the file `MCP_LOG` names, one JSON line (`{"tool": ..., ...}`),
so a test sees exactly what ran; `MCP_STARTED` names a file that gets a line per start.
`MCP_SCHEMA=2` offers `erase` with another schema (a new required `reason`), for the test of
a schema that changed between suspend and resume. `hang` writes a line to the FIFO
`MCP_SIGNAL` names (so a test knows the call is running) and never returns.

`python mcp_server.py` serves over stdio; `python mcp_server.py --http` binds a free loopback
port, prints it on a line of its own once the socket listens, and serves streamable HTTP at
`/mcp` on it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from typing import Any

from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("test-ledger")
SCHEMA = os.environ.get("MCP_SCHEMA", "1")


def _log(tool: str, **arguments: Any) -> None:
    with open(os.environ["MCP_LOG"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"tool": tool, "pid": os.getpid(), **arguments}) + "\n")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup(account: str) -> str:
    """The balance of an account."""
    _log("lookup", account=account)
    return f"{account}: 100"


if SCHEMA == "1":

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    def erase(account: str) -> str:
        """Erase an account."""
        _log("erase", account=account)
        return f"erased {account}"

else:

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    def erase(account: str, reason: str) -> str:  # type: ignore[misc]
        """Erase an account, saying why."""
        _log("erase", account=account, reason=reason)
        return f"erased {account}: {reason}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def fail(account: str) -> str:
    """Always fails (the result has isError)."""
    _log("fail", account=account)
    raise ToolError(f"no such account: {account}")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def crash(account: str) -> str:
    """The server dies in the middle of the call."""
    _log("crash", account=account)
    os._exit(1)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def hang(account: str) -> str:
    """Says it runs, then never answers (the test kills the process driving the run)."""
    _log("hang", account=account)
    with open(os.environ["MCP_SIGNAL"], "w", encoding="utf-8") as fifo:
        fifo.write("running\n")
    threading.Event().wait()
    return "never"


@server.tool(annotations=ToolAnnotations(read_only_hint=True), structured_output=False)
def chart(account: str) -> list[Any]:
    """A text and a picture."""
    _log("chart", account=account)
    return [f"chart of {account}", Image(data=b"\x89PNG0123", format="png")]


def _serve_http() -> None:
    import anyio
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    anyio.run(lambda: uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    if os.environ.get("MCP_STARTED"):  # who started a server, and when: one line a start
        with open(os.environ["MCP_STARTED"], "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
    if "--http" in sys.argv:
        _serve_http()
    else:
        server.run()
