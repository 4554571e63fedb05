"""Token usage: what model replies cost, summed per frame and per run.

Each frame counts the tokens of its own model replies (`Frame.input_tokens`,
`Frame.output_tokens`, kept in the continuation's `counters` and in every checkpoint) plus
those of its sub-agents that ended: when a sub-agent's frame is dropped (it answered, was
stopped, or failed for good), its counts fold into the frame that called it. So the run's
total is always the sum over the frames of the stack as it stands (`of_stack`), whether a
sub-agent is still waiting (its own frame holds its tokens) or long gone (its caller's does).

Input and output follow the OpenTelemetry GenAI names (`gen_ai.usage.input_tokens`,
`gen_ai.usage.output_tokens`); an OpenAI-compatible server reports them as `prompt_tokens`
and `completion_tokens`, which is what `ModelReply.usage` holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine._frozen import quick_init
from engine.frames import Frame, stack_frames

__all__ = ["Usage", "count", "fold", "of_stack", "reply_tokens"]


@quick_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    """Tokens spent, as the model servers reported them."""

    input_tokens: int = 0
    """Prompt tokens (`gen_ai.usage.input_tokens`)."""
    output_tokens: int = 0
    """Completion tokens (`gen_ai.usage.output_tokens`)."""

    @property
    def total_tokens(self) -> int:
        """Input and output together."""
        return self.input_tokens + self.output_tokens

    def __bool__(self) -> bool:
        return bool(self.input_tokens or self.output_tokens)

    def to_dict(self) -> dict[str, int]:
        """`{"input_tokens": N, "output_tokens": M}`, as documents and `--format json` show it."""
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}

    def describe(self) -> str:
        """`1,234 tokens (1,000 in, 234 out)`, for a person."""
        return (
            f"{self.total_tokens:,} tokens ({self.input_tokens:,} in, {self.output_tokens:,} out)"
        )


def reply_tokens(usage: Mapping[str, Any]) -> tuple[int, int]:
    """Input and output tokens of one reply's `usage`: `prompt_tokens`/`completion_tokens`
    (the OpenAI names) or `input_tokens`/`output_tokens`; 0 for what the server left out."""
    return _count(usage, "prompt_tokens", "input_tokens"), _count(
        usage, "completion_tokens", "output_tokens"
    )


MAX_TOKENS = 2**40
"""More tokens than one reply can hold: a count beyond it (a hostile or broken server) is
read as none, so totals stay within what every store column and JSON reader keeps."""


def _count(usage: Mapping[str, Any], name: str, other: str) -> int:
    value = usage.get(name, usage.get(other, 0))
    return value if type(value) is int and 0 < value <= MAX_TOKENS else 0


def count(frame: Frame, usage: Mapping[str, Any]) -> None:
    """Add one model reply's `usage` to the frame that asked."""
    if usage:
        spent_in, spent_out = reply_tokens(usage)
        frame.input_tokens += spent_in
        frame.output_tokens += spent_out


def fold(parent: Frame, child: Frame) -> None:
    """Add an ended sub-agent's counts (its own and its ended sub-agents') to its caller."""
    parent.input_tokens += child.input_tokens
    parent.output_tokens += child.output_tokens


def of_stack(root: Frame) -> Usage:
    """The run's total: the sum over every frame of the stack."""
    spent_in = spent_out = 0
    for frame in stack_frames(root):
        spent_in += frame.input_tokens
        spent_out += frame.output_tokens
    return Usage(input_tokens=spent_in, output_tokens=spent_out)
