"""Tools that take their `ToolContext` in every way a signature can spell it.

`from __future__ import annotations` makes every annotation text; `ToolContext` itself is
imported only for type checkers, so the bare spelling does not resolve at run time, while
`tools.ToolContext` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional, Union

from engine import tools

if TYPE_CHECKING:
    from engine.tools import ToolContext


def _seen(key: str, ctx: object) -> str:
    if isinstance(ctx, tools.ToolContext):
        return f"{key}@{ctx.idempotency_key}"
    return f"{key}@{ctx!r}"


def optional_ctx(key: str, ctx: tools.ToolContext | None = None) -> str:
    """`X | None` with a default, resolvable."""
    return _seen(key, ctx)


def typing_optional(key: str, context: Optional[tools.ToolContext] = None) -> str:  # noqa: UP045
    """`Optional[X]`, the old spelling."""
    return _seen(key, context)


def union_none(key: str, c: Union[None, tools.ToolContext] = None) -> str:  # noqa: UP007, RUF036 - None first on purpose
    """`Union[None, X]`, None first."""
    return _seen(key, c)


def annotated(key: str, ctx: Annotated[tools.ToolContext, "injected"]) -> str:
    """`Annotated[X, ...]`."""
    return _seen(key, ctx)


def text_only(key: str, ctx: ToolContext | None = None) -> str:
    """`ToolContext` named only under TYPE_CHECKING: the annotation stays text."""
    return _seen(key, ctx)


def text_plain(key: int, ctx: ToolContext) -> str:
    """The same without `| None`; `key` still resolves to an integer."""
    return _seen(str(key), ctx)


def not_a_context(key: str, contexts: list[tools.ToolContext] | None = None) -> str:
    """A list of contexts is no context parameter."""
    return _seen(key, contexts)
