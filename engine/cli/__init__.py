"""The `callcc` command line: `main(argv, stdout, stderr) -> exit code`.

Exit codes: 0 ok / finished, 1 the run failed, 2 the input was bad, 3 the run is suspended.
Each subcommand lives in its own module exposing `register(subparsers)`; the registered
handler takes `(args, stdout, stderr)` and returns the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TextIO

from engine.cli._pipe import guarded
from engine.errors import CallccError, RunError, SpecError, UsageError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SUSPENDED = 3


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered."""
    from engine.cli import render as render_cmd
    from engine.cli import run as run_cmd
    from engine.cli import runs as runs_cmd
    from engine.cli import validate as validate_cmd

    parser = argparse.ArgumentParser(
        prog="callcc",
        description="Run YAML-declared agents that suspend and resume from a continuation.",
        epilog="Exit codes: 0 ok, 1 run failed, 2 bad input, 3 suspended (waiting).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    validate_cmd.register(sub)
    run_cmd.register(sub)
    render_cmd.register(sub)
    runs_cmd.register(sub)
    return parser


def main(
    argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the CLI and return its exit code; never calls `sys.exit`. A reader that closes
    the output early (`| head`) costs nothing but the rest of the output."""
    out = guarded(stdout if stdout is not None else sys.stdout)
    err = guarded(stderr if stderr is not None else sys.stderr)
    try:
        return _main(argv, out, err)
    finally:
        out.flush()
        err.flush()


def _main(argv: list[str] | None, out: TextIO, err: TextIO) -> int:
    parser = build_parser()
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
        print(f"callcc: error: {exc}", file=err)
        return EXIT_BAD_INPUT
    except RunError as exc:
        print(f"callcc: run failed: {exc}", file=err)
        return EXIT_FAILED
    except CallccError as exc:
        print(f"callcc: error: {exc}", file=err)
        return EXIT_FAILED
    return code
