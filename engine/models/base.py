"""What the loop asks of a model, and what a model answers: plain data, no HTTP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine._frozen import quick_init


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCall:
    """One function call the model asked for."""

    id: str
    """The call id the model chose; tool results answer it."""
    name: str
    """The tool's name."""
    arguments: str
    """The arguments exactly as the model wrote them (JSON text, possibly malformed)."""
    problem: str | None = None
    """Why the call cannot run as the server sent it (no name, arguments that are not a JSON
    string, not a function call); the loop answers the call with this error, running nothing."""


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class ModelRequest:
    """Everything one model call needs."""

    agent: str
    """Name of the agent asking."""
    instructions: str
    """The system prompt."""
    messages: Sequence[Mapping[str, Any]]
    """The conversation so far in OpenAI Chat Completions format, without the system prompt."""
    tools: Sequence[Mapping[str, Any]]
    """Tool definitions in OpenAI format (`{"type": "function", "function": {...}}`)."""
    attempt: int
    """How many model calls this agent invocation made before this one (0 for the first)."""
    path: str = ""
    """Which invocation asks: the ids of the calls that started it, root to here (`""` for
    the entry agent, `"/call_hr_1"` for the sub-agent call_hr_1 started). The same after a
    resume in any process, so a scripted model can key its turns by it."""
    tool_choice: str | None = None
    """The agent's `tool_choice` for this turn: `auto`, `required`, `none` or the name of
    the one tool the model must call; None: the request names none (the server's default)."""

    @property
    def parent_call(self) -> str | None:
        """The id of the call that started this invocation (None for the entry agent)."""
        return self.path.rpartition("/")[2] or None


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class ModelReply:
    """One assistant turn."""

    content: str | None
    """The text of the reply (None when the model only called tools)."""
    tool_calls: tuple[ToolCall, ...] = ()
    """Function calls, in the order the model gave them."""
    finish_reason: str = "stop"
    """`stop`, `tool_calls`, `length`, `content_filter`, ...: anything else than the first
    two makes the run fail with that reason."""
    usage: Mapping[str, int] = field(default_factory=dict)
    """Token counts as the server reported them."""


class ModelClient(Protocol):
    """A model the loop can call. Raise `engine.errors.ModelError` on failure.

    A client may also have `name` (the model as its server knows it) and `provider`
    attributes; run events and traces report them (`model_identity`)."""

    async def complete(self, request: ModelRequest) -> ModelReply:
        """Answer one turn."""
        ...


def model_identity(model: object) -> tuple[str, str]:
    """A client's `name` and `provider`, or its class name and `unknown` when it has none."""
    name = getattr(model, "name", None)
    provider = getattr(model, "provider", None)
    return (
        name if isinstance(name, str) else type(model).__name__,
        provider if isinstance(provider, str) else "unknown",
    )
