"""`callcc render SPEC_OR_STATE|RUN_ID` and `callcc inspect STATE|RUN_ID` (a run id with
`--store`: see `cli/_stored`)."""

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
    render_cmd.add_argument(
        "source",
        metavar="SPEC_OR_STATE|RUN_ID",
        help="spec YAML, state JSON, or the id of a run in --store",
    )
    render_cmd.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default: stdout, text formats only)"
    )
    render_cmd.add_argument("--format", choices=FORMATS, help="dot, svg, png or mermaid")
    render_cmd.add_argument(
        "--spec", metavar="SPEC", help="for a continuation: the spec, to show turn limits"
    )
    _store_option(render_cmd)
    render_cmd.set_defaults(handler=run_render)
    inspect = sub.add_parser(
        "inspect",
        help="print a continuation's call stack as an indented tree",
        description="Print the suspended call stack as an indented tree for a terminal: frames "
        "under the calls that started them, `>>` before calls waiting for a decision, `!` "
        "before failed calls waiting for one, `=>` before decided calls not resumed yet.",
    )
    inspect.add_argument(
        "state", metavar="STATE|RUN_ID", help="the continuation JSON file, or a run id of --store"
    )
    inspect.add_argument("--spec", metavar="SPEC", help="the spec, to show turn limits")
    inspect.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text, the tree (default); json: the run and its pending entries, as "
        "`callcc pending --format json` lists them (with `limit` on turn_limit entries)",
    )
    _store_option(inspect)
    inspect.set_defaults(handler=run_inspect)


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help="read a RUN_ID from this run store (default $CALLCC_STORE); a path that exists "
        "is read as a file",
    )


def run_render(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Render the spec or continuation in `args.source`."""
    from engine.cli._stored import stored_run
    from engine.continuation import Continuation
    from engine.render import render, spec_graph, stack_graph

    fmt = args.format or _format_of(args.output)
    stored = stored_run(args.source, args, stderr)
    source = stored[0] if stored is not None else _load(args.source, args, stderr)
    if isinstance(source, Continuation):
        run = stored[1] if stored is not None else None
        forked = (run.forked_from, run.forked_at or 0) if run and run.forked_from else None
        graph = stack_graph(source, _spec(args.spec), forked=forked)
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
    from engine._codec import grants_to_data
    from engine.continuation import Continuation
    from engine.render.text import inspect_text

    source = _load(args.state, args, stderr)
    if not isinstance(source, Continuation):
        raise UsageError(
            f"{args.state} is a spec, not a continuation; inspect reads a state file "
            "(draw a spec with `callcc render`)"
        )
    if args.format == "json":
        data = {
            "run_id": source.run_id,
            "spec": source.spec_name,
            "pending": [p.to_dict() for p in source.pending()],
            "grants": grants_to_data(source.grants()),
            "usage": source.usage.to_dict(),
        }
        json.dump(data, stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
        return EXIT_OK
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


def _load(path: str, args: argparse.Namespace, stderr: TextIO) -> Continuation | Spec:
    """A continuation when the file is JSON with the continuation format, else a spec; the
    stack of a stored run when `path` is no file but a run id of the store."""
    from engine.cli._stored import no_such_file, stored_stack
    from engine.continuation import FORMAT, Continuation

    stored = stored_stack(path, args, stderr)
    if stored is not None:
        return stored
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise no_such_file(path) from None
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
