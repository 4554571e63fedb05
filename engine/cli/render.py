"""`callcc render SPEC_OR_STATE` and `callcc inspect STATE`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli._exit import EXIT_OK
from engine.errors import UsageError

if TYPE_CHECKING:  # `inspect` writes text: networkx, graphviz and the spec checks load on demand
    import networkx as nx

    from engine.continuation import Continuation
    from engine.spec.model import Spec

FORMATS = ("dot", "svg", "png", "mermaid")
_EXTENSIONS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png", ".mmd": "mermaid",
               ".mermaid": "mermaid"}  # fmt: skip


def register(sub: Any) -> None:
    """Add the `render` and `inspect` subcommands to `sub` (argparse subparsers)."""
    render_cmd = sub.add_parser(
        "render",
        help="draw a spec's agent graph or a continuation's suspended call stack",
        description="Draw a spec (agents, tools, sub-agent calls) or a continuation (the "
        "suspended call stack and what it waits on) as DOT, SVG, PNG or Mermaid. The input "
        "kind is detected: a JSON continuation document or a YAML spec. The format comes from "
        "--format, else from -o's extension, else dot. SVG and PNG need Graphviz `dot`.",
    )
    render_cmd.add_argument("source", metavar="SPEC_OR_STATE", help="spec YAML or state JSON")
    render_cmd.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default: stdout, text formats only)"
    )
    render_cmd.add_argument("--format", choices=FORMATS, help="dot, svg, png or mermaid")
    render_cmd.add_argument(
        "--spec", metavar="SPEC", help="for a continuation: the spec, to show turn limits"
    )
    render_cmd.set_defaults(handler=run_render)
    inspect = sub.add_parser(
        "inspect",
        help="print a continuation's call stack as an indented tree",
        description="Print the suspended call stack as an indented tree for a terminal: frames "
        "under the calls that started them, `>>` before calls waiting for a decision, `!` "
        "before failed calls waiting for one, `=>` before decided calls not resumed yet.",
    )
    inspect.add_argument("state", metavar="STATE", help="the continuation JSON file")
    inspect.add_argument("--spec", metavar="SPEC", help="the spec, to show turn limits")
    inspect.set_defaults(handler=run_inspect)


def run_render(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Render the spec or continuation in `args.source`."""
    from engine.continuation import Continuation
    from engine.render import render, spec_graph, stack_graph

    fmt = args.format or _format_of(args.output)
    source = _load(args.source)
    if isinstance(source, Continuation):
        graph = stack_graph(source, _spec(args.spec))
    else:
        graph = spec_graph(source)
    if fmt in ("svg", "png"):
        if not args.output:
            raise UsageError(
                f"{fmt} is binary: write it to a file with -o FILE.{fmt} "
                "(or use --format dot / --format mermaid for stdout)"
            )
        Path(args.output).write_bytes(render(graph, "svg" if fmt == "svg" else "png"))
        return EXIT_OK
    text = _text(graph, fmt)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        stdout.write(text)
    return EXIT_OK


def run_inspect(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Print the call stack of the continuation in `args.state`."""
    from engine.continuation import Continuation
    from engine.render.text import inspect_text

    source = _load(args.state)
    if not isinstance(source, Continuation):
        raise UsageError(
            f"{args.state} is a spec, not a continuation; inspect reads a state file "
            "(draw a spec with `callcc render`)"
        )
    stdout.write(inspect_text(source, _spec(args.spec)))
    return EXIT_OK


def _format_of(output: str | None) -> str:
    if not output:
        return "dot"
    suffix = Path(output).suffix.lower()
    if suffix not in _EXTENSIONS:
        known = ", ".join(sorted(_EXTENSIONS))
        raise UsageError(
            f"cannot tell the format from {output!r}; use an extension ({known}) or --format"
        )
    return _EXTENSIONS[suffix]


def _text(graph: nx.DiGraph[str], fmt: str) -> str:
    from engine.render import to_dot, to_mermaid

    return to_mermaid(graph) if fmt == "mermaid" else to_dot(graph)


def _load(path: str) -> Continuation | Spec:
    """A continuation when the file is JSON with the continuation format, else a spec."""
    from engine.continuation import FORMAT, Continuation

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw.lstrip()[:1] == b"{":
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("format") == FORMAT:
            return Continuation.from_json(raw)
    from engine.spec import load_spec

    return load_spec(path)


def _spec(path: str | None) -> Spec | None:
    if not path:
        return None
    from engine.spec import load_spec

    return load_spec(path)
