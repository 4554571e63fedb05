"""The CLI's output streams: whatever a run holds, writing it never raises.

`guarded`: a reader may leave early (`callcc runs list | head` closes the pipe). A command
keeps going when its reader leaves (a run must not stop half way because nobody reads its
progress); what it would print is dropped, and it exits with its own code, quietly.

`escaping`: text from a model or a document may hold a lone surrogate (JSON `"\\ud800"` reads
as one); a UTF-8 terminal or pipe refuses to encode it (`sys.stdout` is strict), which would
turn a finished run into a traceback. Every write goes through `Escaping`, which writes such a code
point as its JSON escape `\\ud800`: inside `--format json` output that is the same string,
lossless; in text output it is at least visible.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, TextIO, cast


class Escaping:
    """A text stream that writes to `stream` with lone surrogates escaped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        """Where the text goes."""

    def write(self, text: str) -> int:
        """Write `text`, escaped; return the length of `text` (as `TextIO.write` does)."""
        if text.isascii():  # no surrogate; and `--help` loads no JSON module
            self.stream.write(text)
        else:
            from engine._json import escape_surrogates

            self.stream.write(escape_surrogates(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)  # flush, isatty, encoding, getvalue, ...


def escaping(stream: TextIO) -> TextIO:
    """`stream` wrapped in `Escaping` (once)."""
    return stream if isinstance(stream, Escaping) else cast(TextIO, Escaping(stream))


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
