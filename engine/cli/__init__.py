"""The `callcc` command line: `main(argv, stdout, stderr) -> exit code`.

Exit codes (`cli/_exit`): 0 ok / finished, 1 the run failed, 2 the input was bad, 3 the run is
suspended. Each subcommand lives in its own module exposing `register(subparsers)`; the
registered handler takes `(args, stdout, stderr)` and returns the exit code. A subcommand
module imports at its top only what building the parser needs: what a command runs on (the
runtime, the spec loader, a store, the renderer) is imported by its handler, so `--help`,
`pending` and `inspect` start in about the time of `import yaml`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import Any, TextIO

from engine.cli._exit import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_SUSPENDED
from engine.cli._streams import escaping, guarded
from engine.errors import CallccError, ContinuationError, RunError, SpecError, UsageError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "EXIT_SUSPENDED", "build_parser", "main"]


COMMANDS = {
    "validate": "validate",
    "schema": "validate",
    "run": "run",
    "pending": "run",
    "resume": "run",
    "keygen": "run",
    "decide": "inbox",
    "render": "render",
    "inspect": "render",
    "runs": "runs",
    "recover": "runs",
    "serve": "serve",
    "worker": "worker",
}
"""Each subcommand and the module under `engine.cli` that registers it, in `--help` order."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered; given the `command` about to run,
    only the subcommands of its module (the same parser for that command: building all of
    them, with argparse's message look-ups, takes longer than `callcc pending` itself)."""
    parser = _Parser(
        prog="callcc",
        description="Run YAML-declared agents that suspend and resume from a continuation.",
        epilog="Exit codes: 0 ok, 1 run failed, 2 bad input, 3 suspended (waiting).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = dict.fromkeys(COMMANDS.values())
    for module in [COMMANDS[command]] if command in COMMANDS else modules:
        importlib.import_module(f"engine.cli.{module}").register(sub)
    return parser


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, as wide as `shutil.get_terminal_size()` says, measured
    without importing shutil (and the compression modules shutil imports: a millisecond and
    a half): argparse makes a formatter for every argument added, and only help uses one."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _columns() - 2  # as argparse's own default
        super().__init__(prog, indent_increment, max_help_position, width)


def _columns() -> int:
    """`shutil.get_terminal_size().columns`: `$COLUMNS` when a positive number, else the
    width of the terminal on standard output, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
        return 80


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` formatting with `_Formatter`; its subparsers are `_Parser`s too
    (argparse makes them of the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def main(
    argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the CLI and return its exit code; never calls `sys.exit`. Whatever a run holds,
    printing it never raises: a reader that closes the output early (`| head`) costs nothing
    but the rest of the output, and model text with lone surrogates is written escaped."""
    out = guarded(escaping(stdout if stdout is not None else sys.stdout))
    err = guarded(escaping(stderr if stderr is not None else sys.stderr))
    try:
        return _main(argv, out, err)
    finally:
        out.flush()
        err.flush()


def _named(exc: UsageError, args: argparse.Namespace) -> str:
    """`FILE: ` when a document read from the file the command was given is what is wrong (a
    pointer such as /frames/0/messages/0 says where inside, this says which file)."""
    if not isinstance(exc, ContinuationError):
        return ""
    for name in ("state", "source"):
        given = getattr(args, name, None)
        if isinstance(given, str) and given not in str(exc) and os.path.isfile(given):
            return f"{given}: "
    return ""


def _main(argv: list[str] | None, out: TextIO, err: TextIO) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words else None)  # `callcc -h run`: the full parser
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        code: int = args.handler(args, out, err)
    except SpecError as exc:  # every finding, located, with its help line (as `validate`)
        from engine.cli.validate import render_text

        err.write(render_text(exc.diagnostics, files=sorted({d.file for d in exc.diagnostics})))
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"callcc: error: {_named(exc, args)}{exc}", file=err)
        return EXIT_BAD_INPUT
    except RunError as exc:
        print(f"callcc: run failed: {exc}", file=err)
        return EXIT_FAILED
    except CallccError as exc:
        print(f"callcc: error: {exc}", file=err)
        return EXIT_FAILED
    return code
