"""`kind: mcp` tools: send the call to the tool's server over the run's connection.

The server's answer is the result the model reads (`isError`: a failed call it reads). A
server that cannot answer (it died, broke the connection, passed the timeout) makes the call
wait on an `error` entry: a person retries it (`approve`), supplies its result, or skips it;
it never runs again by itself, idempotent or not. Arguments a reviewer edited are checked
against the tool's schema as the server lists it now, before anything is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jsonschema.exceptions import best_match

from engine.errors import ToolServerError
from engine.runners.base import Call, Done, Outcome, Runner, Wait, error_entry, register
from engine.spec.model import McpTool, McpToolset

if TYPE_CHECKING:
    from engine.tooling import RunContext


class McpRunner(Runner):
    """Runs the tools of MCP servers."""

    async def run(self, call: Call, ctx: RunContext) -> Outcome:
        """Call the tool on its server."""
        tool = call.tool.spec
        assert isinstance(tool, McpTool) and ctx.toolsets is not None
        toolset = ctx.program.spec.tools[tool.server]
        assert isinstance(toolset, McpToolset)
        # an edit is checked only now (flat arguments by the quick check, as when sorted)
        bound, arguments = call.tool, call.arguments
        if not (bound.quick_check(arguments) or bound.validator.is_valid(arguments)):
            error = best_match(call.tool.validator.iter_errors(call.arguments))
            where = "/".join(str(p) for p in error.absolute_path) or "the arguments"
            return Done(
                f"error: not sent: the arguments do not match the parameters of "
                f"{call.tool.name} at {where}: {error.message}",
                failed=True,
            )
        try:
            connection = await ctx.toolsets.connection(toolset)
            text, failed = await connection.call(tool.remote, call.arguments, tool.timeout)
        except ToolServerError as exc:
            return Wait(error_entry(call, str(exc)))
        return Done(text, failed=failed)


register("mcp", McpRunner())
