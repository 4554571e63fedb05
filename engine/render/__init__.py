"""Pictures of specs and suspended call stacks.

Ownership: `graph.py` builds the public `networkx.DiGraph`s, `dot.py` writes DOT text,
`mermaid.py` writes Mermaid text, `text.py` writes the `callcc inspect` tree, this module runs
the Graphviz `dot` program for SVG and PNG. Only `render` needs `dot`; everything else is pure
Python.

    from engine.render import spec_graph, stack_graph, to_dot, render
    svg = render(stack_graph(continuation), "svg")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from engine._lazy import exports
from engine.errors import CallccError, UsageError

if TYPE_CHECKING:
    import networkx as nx

    from engine.render.dot import to_dot
    from engine.render.graph import spec_graph, stack_graph
    from engine.render.mermaid import to_mermaid
    from engine.render.text import inspect_text
else:  # on first use: `callcc inspect` draws text and needs neither networkx nor graphviz
    __getattr__, __dir__ = exports(
        __name__,
        {
            "to_dot": "engine.render.dot",
            "spec_graph": "engine.render.graph",
            "stack_graph": "engine.render.graph",
            "to_mermaid": "engine.render.mermaid",
            "inspect_text": "engine.render.text",
        },
    )

ImageFormat = Literal["svg", "png"]
FORMATS: tuple[str, ...] = ("svg", "png")


class DotNotFoundError(UsageError):
    """The Graphviz `dot` program is not installed (or not on PATH)."""

    def __init__(self) -> None:
        super().__init__(
            "the Graphviz `dot` program was not found on PATH, so SVG and PNG cannot be drawn; "
            "install it with `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` "
            "(macOS) or from https://graphviz.org/download/ — DOT and Mermaid output "
            "(`--format dot` / `--format mermaid`) work without it"
        )


class RenderError(CallccError):
    """`dot` was found but refused the input or crashed."""


def render(graph: nx.DiGraph[str], format: ImageFormat = "svg") -> bytes:
    """The graph drawn by Graphviz `dot` as SVG or PNG bytes."""
    import shutil
    import subprocess

    if format not in FORMATS:
        raise UsageError(f"unknown image format {format!r}; expected one of {', '.join(FORMATS)}")
    if shutil.which("dot") is None:
        raise DotNotFoundError()
    import graphviz  # type: ignore[import-untyped]  # the package ships no type hints

    from engine.render.dot import to_dot

    try:
        image: bytes = graphviz.pipe("dot", format, to_dot(graph).encode("utf-8"), quiet=True)
        return image
    except graphviz.ExecutableNotFound:
        raise DotNotFoundError() from None
    except (graphviz.CalledProcessError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        raise RenderError(f"dot failed: {detail.strip() or exc}") from None


__all__ = [
    "DotNotFoundError",
    "RenderError",
    "inspect_text",
    "render",
    "spec_graph",
    "stack_graph",
    "to_dot",
    "to_mermaid",
]
