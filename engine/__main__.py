"""`python -m engine` and the `callcc` console script: `engine.cli.main`, then the process
exits with its code.

A command that spoke to Temporal (`--temporal`, `callcc worker`) leaves the threads of
temporalio's Rust runtime alive, and they may touch Python while the interpreter finalizes:
CPython then aborts (`PyGILState_Release ... finalizing`, exit 134 instead of the command's
own 0/1/2/3, now and then, more often under load). Such a process flushes its output and
ends with `os._exit`, skipping a teardown it has nothing left for: every store write is
committed and every connection closed by the command itself before `main` returns.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import NoReturn

from engine.cli import main

RUNTIME_MODULE = "temporalio"
"""The module whose runtime threads outlive `main` once imported (a client was made)."""


def console() -> NoReturn:
    """Run the CLI on `sys.argv` and exit with its code (0, 1, 2 or 3)."""
    try:
        code = main()
    except BaseException as exc:  # a bug or Ctrl-C: the traceback and code Python gives
        if RUNTIME_MODULE not in sys.modules:
            raise
        traceback.print_exc()
        code = 130 if isinstance(exc, KeyboardInterrupt) else 1
    if RUNTIME_MODULE in sys.modules:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console()
