"""Output streams that outlive their reader: `callcc runs list | head` closes the pipe early.

A command keeps going when its reader leaves (a run must not stop half way because nobody
reads its progress); what it would print is dropped, and it exits with its own code, quietly.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, TextIO, cast


class _PipeGuard:
    """A text stream that drops everything once writing to it met a closed pipe."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._reader_left()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def _reader_left(self) -> None:
        """Point the file descriptor at /dev/null, so the interpreter's own flush of what is
        still buffered (at exit) does not fail again and print a traceback."""
        self._gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guarded(stream: TextIO) -> TextIO:
    """`stream`, made to drop its output quietly once its reader has gone."""
    return cast(TextIO, _PipeGuard(stream))
