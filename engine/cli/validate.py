"""`callcc validate FILE...` and `callcc schema`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from engine.cli._exit import EXIT_BAD_INPUT, EXIT_OK

if TYPE_CHECKING:
    from engine.errors import Diagnostic


def register(sub: Any) -> None:
    """Add the `validate` and `schema` subcommands to `sub` (argparse subparsers)."""
    validate = sub.add_parser(
        "validate",
        help="check spec files and point at every mistake",
        description="Validate spec files against the schema and the semantic rules, and the "
        "scripts their scripted models play against the spec. "
        "Exit 0 when valid (warnings allowed), 2 when any file has an error.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="spec files to check")
    validate.add_argument(
        "--resolve",
        action="store_true",
        help="also import every python tool ref and check its signature against parameters, "
        "and connect to every MCP server to check the tool names the spec gives",
    )
    validate.add_argument(
        "--allow-command",
        action="append",
        metavar="PROGRAM",
        help="only allow MCP stdio servers started with PROGRAM (repeatable)",
    )
    validate.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text for people (default), json for tools",
    )
    validate.set_defaults(handler=run_validate)
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the spec format",
        description="Print the JSON Schema (draft 2020-12) that spec files follow, or with "
        "--continuation the one continuation documents follow.",
    )
    schema.add_argument(
        "--continuation", action="store_true", help="the continuation document's schema"
    )
    schema.set_defaults(handler=run_schema)


def run_validate(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Validate the files named in `args`; print findings; return 0 or 2."""
    from engine.models.script_check import check_spec_scripts
    from engine.spec import validate_files
    from engine.spec.check import sort_diagnostics

    diagnostics = validate_files(args.files, resolve=args.resolve)
    if args.resolve or args.allow_command:
        diagnostics += _servers(args.files, diagnostics, args.resolve, args.allow_command)
    diagnostics = sort_diagnostics(diagnostics + check_spec_scripts(args.files, diagnostics))
    if args.format == "json":
        json.dump([d.to_dict() for d in diagnostics], stdout, indent=2, ensure_ascii=False)
        stdout.write("\n")
    else:
        stdout.write(render_text(diagnostics, files=args.files))
    has_error = any(d.severity == "error" for d in diagnostics)
    return EXIT_BAD_INPUT if has_error else EXIT_OK


def _servers(
    files: Sequence[str],
    found: Sequence[Diagnostic],
    resolve: bool,
    allowed: Sequence[str] | None,
) -> list[Diagnostic]:
    """`--allow-command` refusals, and with `--resolve` what the MCP servers list (the spec
    layer starts nothing; this connects, through `engine.toolsets`)."""
    import asyncio

    from engine.spec.load import load_spec_quietly
    from engine.spec.model import McpToolset

    broken = {d.file for d in found if d.severity == "error"}
    out: list[Diagnostic] = []
    for path in files:
        if path in broken:
            continue
        spec = load_spec_quietly(path)
        if allowed:
            out += _refused_commands(spec, allowed)
        if resolve and any(isinstance(t, McpToolset) for t in spec.tools.values()):
            from engine.toolsets import resolve as resolve_servers

            out += asyncio.run(resolve_servers(spec))
    return out


def _refused_commands(spec: Any, allowed: Sequence[str]) -> list[Diagnostic]:
    from engine.errors import Diagnostic
    from engine.spec._semantic import command_allowed
    from engine.spec.model import McpToolset
    from engine.spec.yamlload import escape

    out = []
    for tool in spec.tools.values():
        if isinstance(tool, McpToolset) and tool.command:
            if command_allowed(tool.command[0], allowed):
                continue
            pointer = f"/tools/{escape(tool.name)}"
            line, col = spec.locations.get(pointer, (1, 1))
            out.append(
                Diagnostic(
                    code="command-not-allowed",
                    message=f"program '{tool.command[0]}' is not allowed by --allow-command "
                    f"({', '.join(allowed)})",
                    file=spec.path,
                    line=line,
                    col=col,
                    pointer=pointer,
                    suggestion=f"pass --allow-command {tool.command[0]}, or start the server "
                    "with an allowed program",
                )
            )
    return out


def run_schema(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Print the spec schema (or the continuation schema)."""
    from engine.spec.schema import CONTINUATION_SCHEMA_NAME, SCHEMA_NAME, schema_text

    stdout.write(schema_text(CONTINUATION_SCHEMA_NAME if args.continuation else SCHEMA_NAME))
    return EXIT_OK


def render_text(diagnostics: Sequence[Diagnostic], *, files: Sequence[str]) -> str:
    """Compiler-style text: location, severity and code, the source line, a caret, help."""
    sources: dict[str, list[str]] = {}
    parts: list[str] = []
    for diag in diagnostics:
        parts.append(f"{diag.location()}: {diag.severity}[{diag.code}]: {diag.message}\n")
        if diag.file not in sources:
            sources[diag.file] = [] if diag.code == "file-too-large" else _lines(diag.file)
        lines = sources[diag.file]
        if 1 <= diag.line <= len(lines):
            text, caret = _window(lines[diag.line - 1].rstrip("\n").replace("\t", " "), diag.col)
            gutter = f"{diag.line:>5} | "
            parts.append(f"{gutter}{text}\n")
            parts.append(" " * (len(gutter) - 2) + "| " + " " * caret + "^\n")
        if diag.suggestion:
            parts.append(f"  help: {diag.suggestion}\n")
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    count = len(files)
    verdict = "invalid" if errors else "valid"
    parts.append(
        f"{verdict}: {count} file{'s' if count != 1 else ''} checked, "
        f"{errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}\n"
    )
    return "".join(parts)


WINDOW = 100
"""The most of a source line shown under a diagnostic (a JSON file is one line of any length)."""


def _window(text: str, col: int) -> tuple[str, int]:
    """The part of a long line around column `col` (with `...` where cut), and how far in the
    caret goes."""
    if len(text) <= WINDOW:
        return text, col - 1
    start = max(0, min(col - 1 - WINDOW // 3, len(text) - WINDOW))
    head = "..." if start else ""
    tail = "..." if start + WINDOW < len(text) else ""
    return head + text[start : start + WINDOW] + tail, len(head) + col - 1 - start


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readlines()
    except OSError:
        return []
