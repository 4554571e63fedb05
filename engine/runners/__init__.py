"""Tool runners, one per tool kind, in one registry (`engine.runners.base` documents the
interface). Importing this package registers the built-in kinds: `python`, `agent`,
`external`, `mcp` (which loads the MCP SDK only when a run connects to a server)."""

from engine.runners import agent, external, mcp, python
from engine.runners.base import (
    Call,
    Done,
    Failure,
    Outcome,
    Runner,
    Wait,
    register,
    runner_for,
    tool_result_text,
)

__all__ = [
    "Call",
    "Done",
    "Failure",
    "Outcome",
    "Runner",
    "Wait",
    "agent",
    "external",
    "mcp",
    "python",
    "register",
    "runner_for",
    "tool_result_text",
]
