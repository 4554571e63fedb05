"""Tool runners, one per tool kind, in one registry (`engine.runners.base` documents the
interface). Importing this package registers the built-in kinds: `python`, `agent`,
`external`."""

from engine.runners import agent, external, python
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
    "python",
    "register",
    "runner_for",
    "tool_result_text",
]
